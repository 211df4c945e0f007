"""adapter.api.common.sse: the SSE response, driven as an ASGI app in process (no server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapter.api.common.sse import EventStream, ServerSentEvent

WAIT = 10.0


class Client:
    """The ASGI server side: collects what is sent; `leave()` makes receive() say the client went."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.got = asyncio.Condition()
        self._gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        async with self.got:
            self.messages.append(message)
            self.got.notify_all()

    def leave(self) -> None:
        self._gone.set()

    async def wait_for(self, cond: Any) -> None:
        async with self.got:
            await asyncio.wait_for(self.got.wait_for(lambda: cond(self.messages)), WAIT)

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (ServerSentEvent(data="[DONE]"), b"data: [DONE]\r\n\r\n"),
        (ServerSentEvent(data='{"a":1}', event="x.y"), b'event: x.y\r\ndata: {"a":1}\r\n\r\n'),
        (ServerSentEvent(data="one\ntwo", event="a\nb", id="1", retry=5), b"id: 1\r\nevent: ab\r\ndata: one\r\ndata: two\r\nretry: 5\r\n\r\n"),
        (ServerSentEvent(comment="hi"), b": hi\r\n\r\n"),
    ],
)
def test_events_encode_as_before(event: ServerSentEvent, wire: bytes) -> None:
    assert event.encode() == wire
    sse_starlette = pytest.importorskip("sse_starlette.event")  # what the streams used before (mcp still has it)
    old = sse_starlette.ServerSentEvent(data=event.data, event=event.event, id=event.id, retry=event.retry, comment=event.comment)
    assert old.encode() == wire


async def test_headers_events_and_end() -> None:
    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        yield ServerSentEvent(data="1")
        yield b"event: e\r\ndata: 2\r\n\r\n"

    client = Client()
    await asyncio.wait_for(EventStream(events(), 15.0)(None, client.receive, client.send), WAIT)
    start = client.messages[0]
    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/event-stream")
    assert headers[b"cache-control"] == b"no-cache" and headers[b"x-accel-buffering"] == b"no"
    assert client.body() == b"data: 1\r\n\r\nevent: e\r\ndata: 2\r\n\r\n"
    assert client.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    # one message per event: an encoded event is never cut into pieces
    assert [m["body"] for m in client.messages[1:-1]] == [b"data: 1\r\n\r\n", b"event: e\r\ndata: 2\r\n\r\n"]


async def test_keepalive_comments_while_the_events_wait() -> None:
    release = asyncio.Event()

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data="first")
        await release.wait()
        yield ServerSentEvent(data="last")

    client = Client()
    run = asyncio.create_task(EventStream(events(), 0.01)(None, client.receive, client.send))
    await client.wait_for(lambda ms: sum(m.get("body", b"").startswith(b":") for m in ms) >= 2)
    release.set()
    await asyncio.wait_for(run, WAIT)
    frames = [m["body"] for m in client.messages[1:-1]]
    assert frames[0] == b"data: first\r\n\r\n" and frames[-1] == b"data: last\r\n\r\n"
    assert all(f.startswith(b": ") and f.endswith(b"\r\n\r\n") for f in frames[1:-1])


async def test_a_client_that_leaves_stops_the_events() -> None:
    cleaned = asyncio.Event()
    waiting = asyncio.Event()

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(data="hello")
            waiting.set()
            await asyncio.Event().wait()  # a job that never changes
            yield ServerSentEvent(data="never")
        finally:
            cleaned.set()  # e.g. the watcher unsubscribes

    client = Client()
    run = asyncio.create_task(EventStream(events(), 15.0)(None, client.receive, client.send))
    await asyncio.wait_for(waiting.wait(), WAIT)
    client.leave()
    await asyncio.wait_for(run, WAIT)  # ends quietly: no error, not cancelled
    assert cleaned.is_set() and not run.cancelled()
    assert client.body() == b"data: hello\r\n\r\n"
    assert not any(m.get("more_body") is False for m in client.messages)


async def test_a_server_cancel_is_not_swallowed() -> None:
    cleaned = asyncio.Event()
    waiting = asyncio.Event()

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            waiting.set()
            await asyncio.Event().wait()
            yield ServerSentEvent(data="never")
        finally:
            cleaned.set()

    client = Client()
    run = asyncio.create_task(EventStream(events(), 15.0)(None, client.receive, client.send))
    await asyncio.wait_for(waiting.wait(), WAIT)
    run.cancel()  # uvicorn after its graceful-shutdown timeout
    with pytest.raises(asyncio.CancelledError):
        await run
    assert cleaned.is_set()
