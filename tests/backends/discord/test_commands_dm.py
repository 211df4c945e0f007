"""Interaction payloads and the command index for an account in its DM channel with the bot."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.backends.discord.commands import Channel, Command, CommandCache, button_press, modal_submit, slash_command

CMD = Command(id="938956540159881230", version="1", name="imagine", application_id="936929561302675456")
GUILD = Channel(guild_id="10", channel_id="20")
DM = Channel(guild_id=None, channel_id="30")


def payloads(channel: Channel) -> list[dict[str, Any]]:
    return [
        slash_command(channel=channel, session_id="s", nonce="1", command=CMD),
        button_press(channel=channel, session_id="s", nonce="2", application_id=CMD.application_id, message_id="5", message_flags=0, custom_id="MJ::x"),
        modal_submit(channel=channel, session_id="s", nonce="3", application_id=CMD.application_id, modal_interaction_id="7", modal_custom_id="MJ::m", values={"f": "v"}),
    ]


def test_guild_payloads_name_the_guild() -> None:
    for p in payloads(GUILD):
        assert (p["guild_id"], p["channel_id"]) == ("10", "20")


def test_dm_payloads_leave_the_guild_out() -> None:
    for p in payloads(DM):
        assert "guild_id" not in p and p["channel_id"] == "30"


class FakeRest:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def get_command_index(self, guild_id: str) -> list[dict[str, Any]]:
        self.calls.append(("guild", guild_id))
        return [{"id": CMD.id, "version": "1", "name": "imagine", "application_id": CMD.application_id}]

    async def get_channel_command_index(self, channel_id: str) -> list[dict[str, Any]]:
        self.calls.append(("channel", channel_id))
        return [{"id": CMD.id, "version": "9", "name": "imagine", "application_id": CMD.application_id}]


async def test_command_cache_reads_the_guild_index_or_the_dm_channel_index() -> None:
    rest = FakeRest()
    assert (await CommandCache(rest, "10", "20").get(CMD.application_id, "imagine")).version == "1"  # type: ignore[arg-type]
    assert (await CommandCache(rest, None, "30").get(CMD.application_id, "imagine")).version == "9"  # type: ignore[arg-type]
    assert rest.calls == [("guild", "10"), ("channel", "30")]
    with pytest.raises(ValueError):
        CommandCache(rest, None, None)  # type: ignore[arg-type]
