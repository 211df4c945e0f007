"""Discord's JSON objects as the simulator sends them.

Fields Discord always sends are required here (so `omit_defaults` never drops them); fields it
sends only sometimes default to None and are left out when unset, as Discord leaves them out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from adapter.domain.ids import snowflake_time_ms


class User(msgspec.Struct, kw_only=True):
    id: str
    username: str
    global_name: str | None
    discriminator: str = "0"
    avatar: str | None = None
    bot: bool = False
    public_flags: int = 0


class Attachment(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    filename: str
    size: int
    url: str
    proxy_url: str
    content_type: str
    width: int | None = None
    height: int | None = None


class EmbedImage(msgspec.Struct, kw_only=True, omit_defaults=True):
    url: str
    proxy_url: str | None = None
    width: int | None = None
    height: int | None = None


class EmbedFooter(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str
    icon_url: str | None = None


class Embed(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    title: str | None = None
    description: str | None = None
    color: int | None = None
    image: EmbedImage | None = None
    footer: EmbedFooter | None = None


class Emoji(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    id: str | None = None


class ButtonComponent(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: int  # 2
    style: int  # 1 primary, 2 secondary, 3 success (a settings toggle that is on), 5 link
    label: str | None = None
    emoji: Emoji | None = None
    custom_id: str | None = None
    url: str | None = None
    disabled: bool | None = None


class ActionRow(msgspec.Struct, kw_only=True):
    type: int  # 1
    components: list[ButtonComponent]


class TextInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: int  # 4
    custom_id: str
    style: int  # 1 short, 2 paragraph
    label: str
    value: str | None = None
    placeholder: str | None = None
    required: bool = True
    min_length: int | None = None
    max_length: int | None = None


class ModalRow(msgspec.Struct, kw_only=True):
    type: int  # 1
    components: list[TextInput]


class MessageInteraction(msgspec.Struct, kw_only=True):
    """The deprecated `interaction` field: only on answers to slash commands."""

    id: str
    type: int
    name: str
    user: User


class InteractionMetadata(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    type: int  # 2 command, 3 component, 5 modal submit
    user: User
    authorizing_integration_owners: dict[str, str]
    name: str | None = None  # commands only
    command_type: int | None = None
    interacted_message_id: str | None = None  # buttons only
    triggering_interaction_metadata: InteractionMetadata | None = None  # modal submits


class MessageReference(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: int  # 0 default (reply)
    message_id: str
    channel_id: str
    guild_id: str | None = None


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    type: int  # 0 default, 19 reply, 20 chat-input command
    content: str
    channel_id: str
    author: User
    attachments: list[Attachment]
    embeds: list[Embed]
    mentions: list[User]
    mention_roles: list[str]
    pinned: bool
    mention_everyone: bool
    tts: bool
    timestamp: str
    edited_timestamp: str | None
    flags: int
    components: list[ActionRow]
    guild_id: str | None = None
    nonce: str | None = None
    application_id: str | None = None
    webhook_id: str | None = None
    interaction: MessageInteraction | None = None
    interaction_metadata: InteractionMetadata | None = None
    message_reference: MessageReference | None = None
    referenced_message: Message | None = None

    def custom_ids(self) -> set[str]:
        return {c.custom_id for row in self.components for c in row.components if c.custom_id}


def iso_timestamp(snowflake: str) -> str:
    """Discord's timestamp format, derived from the id so the two always agree."""
    when = dt.datetime.fromtimestamp(snowflake_time_ms(snowflake) / 1000, tz=dt.UTC)
    return when.isoformat(timespec="microseconds")


def now_iso() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat(timespec="microseconds")


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def button(
    *,
    label: str | None = None,
    emoji: str | None = None,
    custom_id: str | None = None,
    style: int = 2,
    url: str | None = None,
) -> ButtonComponent:
    return ButtonComponent(
        type=2,
        style=style,
        label=label,
        emoji=Emoji(name=emoji) if emoji else None,
        custom_id=custom_id,
        url=url,
    )


def row(*buttons: ButtonComponent) -> ActionRow:
    return ActionRow(type=1, components=list(buttons))
