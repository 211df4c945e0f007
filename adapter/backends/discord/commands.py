"""Interaction payloads (slash commands, buttons, modal submits) and the application-command
cache they need: command ids and versions drift, so they are read from the
application-command-index and re-read when Discord says a version is stale.

An account may drive the bot in a guild channel or in its direct-message channel with the bot.
In a DM there is no guild: payloads leave `guild_id` out (as Discord's own client does) and the
command index is the channel's (`/channels/{C}/application-command-index`) instead of the
guild's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from adapter.backends.discord.rest import DiscordRest, UploadedAttachment


class Command(msgspec.Struct, frozen=True):
    id: str
    version: str
    name: str
    application_id: str


class CommandCache:
    def __init__(self, rest: DiscordRest, guild_id: str | None, channel_id: str | None = None) -> None:
        if not guild_id and not channel_id:
            raise ValueError("a command cache needs a guild or a (DM) channel")
        self._rest = rest
        self._guild_id = guild_id or None
        self._channel_id = channel_id
        self._by_key: dict[tuple[str, str], Command] = {}
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def get(self, application_id: str, name: str) -> Command:
        cmd = self._by_key.get((application_id, name))
        if cmd is None:
            await self.refresh()
            cmd = self._by_key.get((application_id, name))
        if cmd is None:
            where = "in this guild" if self._guild_id else "in this channel"
            raise LookupError(f"the /{name} command of application {application_id} is not available {where}")
        return cmd

    async def refresh(self) -> None:
        async with self._lock:
            if self._guild_id:
                raw = await self._rest.get_command_index(self._guild_id)
            else:
                assert self._channel_id is not None
                raw = await self._rest.get_channel_command_index(self._channel_id)
            fresh: dict[tuple[str, str], Command] = {}
            for c in raw:
                try:
                    cmd = Command(id=str(c["id"]), version=str(c["version"]), name=str(c["name"]), application_id=str(c["application_id"]))
                except (KeyError, TypeError):
                    continue
                fresh[(cmd.application_id, cmd.name)] = cmd
            self._by_key = fresh
            self.refreshes += 1


class Channel(msgspec.Struct, frozen=True):
    guild_id: str | None  # None: a DM channel
    channel_id: str


def _place(payload: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """Where an interaction happens: the channel, and the guild unless it is a DM."""
    if channel.guild_id:
        payload["guild_id"] = channel.guild_id
    payload["channel_id"] = channel.channel_id
    return payload


def slash_command(
    *,
    channel: Channel,
    session_id: str,
    nonce: str,
    command: Command,
    options: Sequence[dict[str, Any]] = (),
    attachments: Sequence[UploadedAttachment] = (),
) -> dict[str, Any]:
    return _place({"type": 2, "application_id": command.application_id}, channel) | {
        "session_id": session_id,
        "nonce": nonce,
        "data": {
            "version": command.version,
            "id": command.id,
            "name": command.name,
            "type": 1,
            "options": list(options),
            "application_command": {
                "id": command.id,
                "application_id": command.application_id,
                "version": command.version,
                "name": command.name,
                "type": 1,
            },
            "attachments": [
                {"id": str(i), "filename": a.filename, "uploaded_filename": a.uploaded_filename}
                for i, a in enumerate(attachments)
            ],
        },
    }


def string_option(name: str, value: str) -> dict[str, Any]:
    return {"type": 3, "name": name, "value": value}


def attachment_option(name: str, index: int) -> dict[str, Any]:
    # type 11 options point at data.attachments[index]
    return {"type": 11, "name": name, "value": index}


def button_press(
    *, channel: Channel, session_id: str, nonce: str, application_id: str, message_id: str, message_flags: int, custom_id: str
) -> dict[str, Any]:
    return _place({"type": 3, "nonce": nonce}, channel) | {
        "message_flags": message_flags,
        "message_id": message_id,
        "application_id": application_id,
        "session_id": session_id,
        "data": {"component_type": 2, "custom_id": custom_id},
    }


def modal_submit(
    *,
    channel: Channel,
    session_id: str,
    nonce: str,
    application_id: str,
    modal_interaction_id: str,
    modal_custom_id: str,
    values: dict[str, str],
) -> dict[str, Any]:
    return _place({"type": 5, "application_id": application_id}, channel) | {
        "session_id": session_id,
        "nonce": nonce,
        "data": {
            "id": modal_interaction_id,
            "custom_id": modal_custom_id,
            "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": field, "value": value}]} for field, value in values.items()
            ],
        },
    }


def modal_fields(components: Any) -> dict[str, str]:
    """The text inputs of a modal Discord sent us, custom_id -> prefilled value."""
    out: dict[str, str] = {}
    for row in components if isinstance(components, list) else []:
        for comp in row.get("components", []) if isinstance(row, dict) else []:
            if isinstance(comp, dict) and comp.get("type") == 4 and isinstance(comp.get("custom_id"), str):
                out[comp["custom_id"]] = str(comp.get("value") or "")
    return out
