"""The REST calls behind seeds, ❌ cancels and DM-channel accounts: reactions, opening the DM
channel with the bot, and the channel's command index (against a scripted loopback server)."""

from __future__ import annotations

import sys
from pathlib import Path

from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.rest import DiscordRest

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from transport_fakes import FakeHttpServer, HttpRequest, HttpResponse  # noqa: E402

TOKEN = "fake-user-token.not-real.abc123"


def rest_for(server: FakeHttpServer) -> DiscordRest:
    return DiscordRest(base_url=server.url + "/api/v9", token=TOKEN, identity=BrowserIdentity(), backoff_base=0.01)


async def test_envelope_reaction_is_percent_encoded_like_clients_send_it() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(204)

    async with FakeHttpServer(handler) as server:
        rest = rest_for(server)
        await rest.add_reaction("111", "222", "\u2709\ufe0f")
        await rest.add_reaction("111", "333", "\u274c")
        await rest.remove_reaction("111", "222", "\u2709\ufe0f")
        await rest.aclose()
    put_env, put_x, delete = server.requests
    assert put_env.method == "PUT"
    assert put_env.target.startswith("/api/v9/channels/111/messages/222/reactions/%E2%9C%89%EF%B8%8F/@me")
    assert put_env.query["type"] == ["0"]
    assert put_env.headers["authorization"] == TOKEN
    assert put_x.target.startswith("/api/v9/channels/111/messages/333/reactions/%E2%9D%8C/@me")
    assert delete.method == "DELETE" and "/reactions/%E2%9C%89%EF%B8%8F/@me" in delete.target


async def test_open_dm_posts_the_recipient_and_returns_the_channel_id() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, json_body={"id": "9001", "type": 1, "recipients": [{"id": "936929561302675456"}]})

    async with FakeHttpServer(handler) as server:
        rest = rest_for(server)
        assert await rest.open_dm("936929561302675456") == "9001"
        await rest.aclose()
    (req,) = server.requests
    assert (req.method, req.path) == ("POST", "/api/v9/users/@me/channels")
    assert req.json() == {"recipients": ["936929561302675456"]}


async def test_channel_command_index() -> None:
    commands = [{"id": "1", "version": "2", "name": "imagine", "application_id": "936929561302675456"}]

    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, json_body={"application_commands": commands, "applications": []})

    async with FakeHttpServer(handler) as server:
        rest = rest_for(server)
        assert await rest.get_channel_command_index("9001") == commands
        await rest.aclose()
    (req,) = server.requests
    assert (req.method, req.path) == ("GET", "/api/v9/channels/9001/application-command-index")
