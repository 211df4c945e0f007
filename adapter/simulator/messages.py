"""Posting, editing and deleting bot messages: the store and the gateway events in one step, so
history (GET /messages) and MESSAGE_CREATE/UPDATE/DELETE never disagree."""

from __future__ import annotations

import msgspec

from adapter.simulator.commands import BOT_USERS
from adapter.simulator.context import SimContext
from adapter.simulator.wire import (
    ActionRow,
    Attachment,
    Embed,
    InteractionMetadata,
    Message,
    MessageInteraction,
    MessageReference,
    User,
    iso_timestamp,
    now_iso,
)

EPHEMERAL = 64
LOADING = 128  # a deferred interaction answer: the bot is "thinking" (message flag 1 << 7)


class Origin(msgspec.Struct, kw_only=True):
    """How a bot message points back at what caused it."""

    user_id: str
    session_id: str
    nonce: str | None = None
    metadata: InteractionMetadata | None = None
    interaction: MessageInteraction | None = None  # slash commands only
    reference: Message | None = None  # the source message of a follow-up


def command_origin(
    *, interaction_id: str, name: str, user: User, guild_id: str | None, nonce: str | None, session_id: str
) -> Origin:
    owners = {"0": guild_id or "0", "1": user.id}  # "0" when used in the bot's DM
    return Origin(
        user_id=user.id,
        session_id=session_id,
        nonce=nonce,
        metadata=InteractionMetadata(id=interaction_id, type=2, user=user, authorizing_integration_owners=owners, name=name, command_type=1),
        interaction=MessageInteraction(id=interaction_id, type=2, name=name, user=user),
    )


def component_origin(
    *, interaction_id: str, user: User, guild_id: str | None, nonce: str | None, session_id: str, source: Message,
    modal_submit_id: str | None = None,
) -> Origin:
    """A button press (or the modal it opened, answered by `modal_submit_id`)."""
    owners = {"0": guild_id or "0", "1": user.id}  # "0" when used in the bot's DM
    button_meta = InteractionMetadata(
        id=interaction_id, type=3, user=user, authorizing_integration_owners=owners, interacted_message_id=source.id
    )
    meta = button_meta
    if modal_submit_id is not None:
        meta = InteractionMetadata(
            id=modal_submit_id, type=5, user=user, authorizing_integration_owners=owners, triggering_interaction_metadata=button_meta
        )
    return Origin(user_id=user.id, session_id=session_id, nonce=nonce, metadata=meta, reference=source)


class Messenger:
    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx

    def build(
        self,
        *,
        app_id: str,
        channel_id: str,
        content: str = "",
        origin: Origin | None = None,
        with_nonce: bool = True,
        first_response: bool = False,
        embeds: list[Embed] | None = None,
        attachments: list[Attachment] | None = None,
        components: list[ActionRow] | None = None,
        flags: int = 0,
    ) -> Message:
        message_id = self.ctx.ids.next()
        channel = self.ctx.world.channels[channel_id]
        reference = origin.reference if origin else None
        mentions = []
        if origin is not None and (user := self.ctx.world.users.get(origin.user_id)) is not None:
            mentions = [user.user]
        if reference is not None:
            mtype = 19
        elif first_response and origin is not None and origin.interaction is not None:
            mtype = 20
        else:
            mtype = 0
        return Message(
            id=message_id,
            type=mtype,
            content=content,
            channel_id=channel_id,
            guild_id=channel.guild_id,
            author=BOT_USERS[app_id],
            attachments=attachments or [],
            embeds=embeds or [],
            mentions=mentions,
            mention_roles=[],
            pinned=False,
            mention_everyone=False,
            tts=False,
            timestamp=iso_timestamp(message_id),
            edited_timestamp=None,
            flags=flags,
            components=components or [],
            nonce=origin.nonce if origin is not None and with_nonce else None,
            application_id=app_id if origin is not None else None,
            webhook_id=app_id if origin is not None else None,
            interaction=origin.interaction if origin is not None and first_response else None,
            interaction_metadata=origin.metadata if origin is not None else None,
            message_reference=MessageReference(type=0, message_id=reference.id, channel_id=reference.channel_id, guild_id=reference.guild_id)
            if reference is not None
            else None,
            referenced_message=msgspec.structs.replace(reference, referenced_message=None) if reference is not None else None,
        )

    def post(self, message: Message, *, ephemeral_for: str | None = None) -> Message:
        if ephemeral_for is not None:
            message.flags |= EPHEMERAL
            self.ctx.world.add_ephemeral(ephemeral_for, message)
            self.ctx.hub.to_user(ephemeral_for, "MESSAGE_CREATE", message)
            return message
        self.ctx.world.channels[message.channel_id].add(message)
        self.ctx.hub.to_channel(message.channel_id, "MESSAGE_CREATE", message)
        return message

    def edit(
        self,
        message: Message,
        *,
        content: str | None = None,
        embeds: list[Embed] | None = None,
        attachments: list[Attachment] | None = None,
        components: list[ActionRow] | None = None,
        flags: int | None = None,
    ) -> Message:
        if content is not None:
            message.content = content
        if embeds is not None:
            message.embeds = embeds
        if attachments is not None:
            message.attachments = attachments
        if components is not None:
            message.components = components
        if flags is not None:
            message.flags = flags
        message.edited_timestamp = now_iso()
        # Discord puts the nonce on MESSAGE_CREATE only, never on MESSAGE_UPDATE
        update = msgspec.structs.replace(message, nonce=None)
        if message.flags & EPHEMERAL:
            owner = message.interaction_metadata.user.id if message.interaction_metadata else None
            if owner:
                self.ctx.hub.to_user(owner, "MESSAGE_UPDATE", update)
        else:
            self.ctx.hub.to_channel(message.channel_id, "MESSAGE_UPDATE", update)
        return message

    def delete(self, message: Message) -> None:
        channel = self.ctx.world.channels.get(message.channel_id)
        if channel is None or channel.remove(message.id) is None:
            return
        event = {"id": message.id, "channel_id": message.channel_id}
        if channel.guild_id is not None:  # DMs have no guild_id
            event["guild_id"] = channel.guild_id
        self.ctx.hub.to_channel(message.channel_id, "MESSAGE_DELETE", event)
