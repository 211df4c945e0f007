"""DiscordRest against a scripted HTTP server on loopback."""

from __future__ import annotations

import sys
from pathlib import Path
import base64
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from adapter.backends.discord.errors import (
    CaptchaRequired,
    DiscordError,
    DiscordUnavailable,
    Forbidden,
    InvalidFormBody,
    Unauthorized,
)
from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.rest import DiscordRest, UploadedAttachment

# The fakes module sits beside this file; make it importable under any pytest import mode.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from transport_fakes import FakeHttpServer, HttpRequest, HttpResponse, unused_port  # noqa: E402

TOKEN = "fake-user-token.not-real.abc123"
IDENTITY = BrowserIdentity()


def rest_for(server: FakeHttpServer, **kwargs: object) -> DiscordRest:
    kwargs.setdefault("backoff_base", 0.01)
    return DiscordRest(base_url=server.url + "/api/v9", token=TOKEN, identity=IDENTITY, **kwargs)  # type: ignore[arg-type]


def sequence(*responses: HttpResponse) -> Callable[[HttpRequest], object]:
    """A handler that answers with `responses` in order, repeating the last one."""
    queue = list(responses)

    async def handler(request: HttpRequest) -> HttpResponse:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


@pytest.fixture
async def rest_and_server() -> AsyncIterator[tuple[DiscordRest, FakeHttpServer]]:
    server = FakeHttpServer(sequence(HttpResponse(204)))
    async with server:
        rest = rest_for(server)
        yield rest, server
        await rest.aclose()


async def test_browser_headers_on_api_calls(rest_and_server: tuple[DiscordRest, FakeHttpServer]) -> None:
    rest, server = rest_and_server
    await rest.post_interaction({"type": 2, "nonce": "1"})

    (request,) = server.requests
    assert request.method == "POST" and request.path == "/api/v9/interactions"
    assert request.headers["authorization"] == TOKEN  # raw, no Bot/Bearer prefix
    assert request.headers["user-agent"] == IDENTITY.user_agent
    assert request.headers["content-type"] == "application/json"
    props = json.loads(base64.b64decode(request.headers["x-super-properties"]))
    assert props == IDENTITY.properties()
    assert props["browser_user_agent"] == IDENTITY.user_agent
    assert request.json() == {"type": 2, "nonce": "1"}


async def test_gateway_url() -> None:
    async with FakeHttpServer(sequence(HttpResponse(200, {"url": "wss://gateway.example"}))) as server:
        rest = rest_for(server)
        assert await rest.get_gateway_url() == "wss://gateway.example"
        assert server.requests[0].path == "/api/v9/gateway"
        await rest.aclose()


async def test_invalid_form_body() -> None:
    body = {"message": "Invalid Form Body", "code": 50035, "errors": {"data": {"_errors": [{"code": "X"}]}}}
    async with FakeHttpServer(sequence(HttpResponse(400, body))) as server:
        rest = rest_for(server)
        with pytest.raises(InvalidFormBody) as caught:
            await rest.post_interaction({})
        assert caught.value.status == 400 and caught.value.code == 50035
        assert caught.value.errors == body["errors"]
        assert len(server.requests) == 1
        await rest.aclose()


async def test_captcha_is_never_retried() -> None:
    body = {"captcha_key": ["captcha-required"], "captcha_sitekey": "site", "captcha_service": "hcaptcha"}
    async with FakeHttpServer(sequence(HttpResponse(400, body))) as server:
        rest = rest_for(server)
        with pytest.raises(CaptchaRequired) as caught:
            await rest.post_message("123456789012345678", "hi")
        assert caught.value.service == "hcaptcha" and caught.value.sitekey == "site"
        assert len(server.requests) == 1
        await rest.aclose()


async def test_unauthorized_not_retried_and_token_not_leaked() -> None:
    # A server that echoes the token must not get it into the exception text.
    body = {"message": f"401: Unauthorized ({TOKEN})", "code": 0}
    async with FakeHttpServer(sequence(HttpResponse(401, body))) as server:
        rest = rest_for(server)
        with pytest.raises(Unauthorized) as caught:
            await rest.get_messages("123456789012345678")
        assert len(server.requests) == 1
        assert TOKEN not in str(caught.value) and TOKEN not in caught.value.message
        assert TOKEN not in repr(rest)
        await rest.aclose()


async def test_forbidden() -> None:
    async with FakeHttpServer(sequence(HttpResponse(403, {"message": "Missing Access", "code": 50001}))) as server:
        rest = rest_for(server)
        with pytest.raises(Forbidden) as caught:
            await rest.get_messages("123456789012345678")
        assert caught.value.code == 50001
        await rest.aclose()


async def test_5xx_retried_then_success() -> None:
    # reads are safe to repeat; interactions are not (test_ratelimit: 5xx is ambiguous there)
    async with FakeHttpServer(sequence(HttpResponse(502), HttpResponse(503), HttpResponse(200, []))) as server:
        rest = rest_for(server, max_attempts=5)
        assert await rest.get_messages("1") == []
        assert len(server.requests) == 3
        await rest.aclose()


async def test_5xx_gives_up_after_max_attempts() -> None:
    async with FakeHttpServer(sequence(HttpResponse(500, {"message": "oops", "code": 0}))) as server:
        rest = rest_for(server, max_attempts=3)
        with pytest.raises(DiscordUnavailable) as caught:
            await rest.get_messages("1")
        assert caught.value.status == 500
        assert len(server.requests) == 3
        await rest.aclose()


async def test_connection_refused_is_retried_then_reported() -> None:
    port = await unused_port()
    rest = DiscordRest(
        base_url=f"http://127.0.0.1:{port}/api/v9", token=TOKEN, identity=IDENTITY, max_attempts=2, backoff_base=0.01
    )
    with pytest.raises(DiscordUnavailable) as caught:
        await rest.post_interaction({})
    assert caught.value.status == 0 and "ConnectError" in caught.value.message
    await rest.aclose()


async def test_upload_two_steps_without_token_on_storage() -> None:
    urls: dict[str, str] = {}

    async def handler(request: HttpRequest) -> HttpResponse:
        if request.path.endswith("/attachments"):
            return HttpResponse(
                200,
                {"attachments": [{"id": 0, "upload_url": urls["upload"], "upload_filename": "uploads/abc/cat.png"}]},
            )
        return HttpResponse(200)

    async with FakeHttpServer(handler) as server:
        urls["upload"] = server.url + "/storage/cat.png?signature=xyz"
        rest = rest_for(server)
        uploaded = await rest.upload("123456789012345678", "cat.png", b"\x89PNG...", "image/png")
        assert uploaded == UploadedAttachment(filename="cat.png", uploaded_filename="uploads/abc/cat.png")

        slot, put = server.requests
        assert slot.method == "POST" and slot.path == "/api/v9/channels/123456789012345678/attachments"
        assert slot.json() == {"files": [{"filename": "cat.png", "file_size": 7, "id": "0"}]}
        assert put.method == "PUT" and put.target == "/storage/cat.png?signature=xyz"
        assert put.body == b"\x89PNG..."
        assert put.headers["content-type"] == "image/png"
        assert "authorization" not in put.headers
        await rest.aclose()


async def test_post_message_with_attachments() -> None:
    async with FakeHttpServer(sequence(HttpResponse(200, {"id": "9", "attachments": [{"url": "https://cdn/x.png"}]}))) as server:
        rest = rest_for(server)
        message = await rest.post_message(
            "123456789012345678", "", [UploadedAttachment("a.png", "up/a.png"), UploadedAttachment("b.png", "up/b.png")]
        )
        assert message["attachments"][0]["url"] == "https://cdn/x.png"
        sent = server.requests[0].json()
        assert sent["content"] == "" and sent["nonce"].isdigit()
        assert sent["attachments"] == [
            {"id": "0", "filename": "a.png", "uploaded_filename": "up/a.png"},
            {"id": "1", "filename": "b.png", "uploaded_filename": "up/b.png"},
        ]
        await rest.aclose()


async def test_get_messages_query() -> None:
    async with FakeHttpServer(sequence(HttpResponse(200, [{"id": "2"}, {"id": "1"}]))) as server:
        rest = rest_for(server)
        assert await rest.get_messages("123456789012345678", limit=20, before="99") == [{"id": "2"}, {"id": "1"}]
        request = server.requests[0]
        assert request.path == "/api/v9/channels/123456789012345678/messages"
        assert request.query == {"limit": ["20"], "before": ["99"]}
        await rest.aclose()


async def test_command_index() -> None:
    body = {"application_commands": [{"id": "938956540159881230", "version": "1", "name": "imagine"}], "applications": []}
    async with FakeHttpServer(sequence(HttpResponse(200, body))) as server:
        rest = rest_for(server)
        assert await rest.get_command_index("42") == body["application_commands"]
        assert server.requests[0].path == "/api/v9/guilds/42/application-command-index"
        await rest.aclose()


async def test_unexpected_answer_shape() -> None:
    async with FakeHttpServer(sequence(HttpResponse(200, {"nope": 1}))) as server:
        rest = rest_for(server)
        with pytest.raises(DiscordError):
            await rest.get_command_index("42")
        await rest.aclose()


async def test_submit_inpaint() -> None:
    async with FakeHttpServer(sequence(HttpResponse(200, {"success": True}))) as server:
        rest = rest_for(server)
        await rest.submit_inpaint(
            server.url + "/inpaint/api/submit-job", custom_id="tok", mask_png_b64="iVBOR", prompt="a cat"
        )
        request = server.requests[0]
        assert request.method == "POST" and request.path == "/inpaint/api/submit-job"
        assert request.json() == {"customId": "tok", "mask": "iVBOR", "prompt": "a cat", "userId": "0", "username": "0"}
        assert "authorization" not in request.headers
        await rest.aclose()


async def test_shared_client_is_not_closed() -> None:
    async with FakeHttpServer(sequence(HttpResponse(204))) as server:
        async with httpx.AsyncClient() as client:
            rest = rest_for(server, client=client)
            await rest.post_interaction({})
            await rest.aclose()
            assert not client.is_closed
