"""Server-sent events from Litestar handlers, one small helper task per stream.

`SSEResponse(events)` streams an async iterator of `ServerSentEvent` (or of events already
encoded as bytes, e.g. `shared_images.sse_frame`: sent as they are, one ASGI message each) as
`text/event-stream` with `Cache-Control: no-cache` and `X-Accel-Buffering: no`.

Per stream the request's own task runs the events and sends them; one helper task waits for the
client to leave (`http.disconnect`) and sends a keepalive comment every `keepalive_seconds` while
it waits. A client that leaves cancels the events where they wait, so the iterator's cleanup runs
(a watcher unsubscribes) and the request ends. Nothing else runs per stream: at thousands of open
streams (one job watched by many) what a stream costs is its own state, not a task group.

Shutdown needs nothing here: on SIGTERM the engine tells every watcher (`JobBus.close_watchers`),
each stream's iterator sends its own last event and ends, and uvicorn cancels whatever is still
open after its graceful timeout.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response

__all__ = ["SSEResponse", "ServerSentEvent"]

_LINE_SEP = re.compile(r"\r\n|\r|\n")

HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE = b": keepalive\r\n\r\n"


class ServerSentEvent:
    """One event: optional comment, id, event name, data (split into `data:` lines) and retry,
    each line ended by `sep` and the event by an empty line (the encoding sse-starlette uses)."""

    __slots__ = ("data", "event", "id", "retry", "comment", "sep")

    def __init__(
        self,
        data: Any = None,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str = "\r\n",
    ) -> None:
        self.data, self.event, self.id, self.retry, self.comment, self.sep = data, event, id, retry, comment, sep

    def encode(self) -> bytes:
        sep = self.sep
        out: list[str] = []
        if self.comment is not None:
            out.extend(f": {line}{sep}" for line in _LINE_SEP.split(str(self.comment)))
        if self.id is not None:
            out.append(f"id: {_LINE_SEP.sub('', self.id)}{sep}")
        if self.event is not None:
            out.append(f"event: {_LINE_SEP.sub('', self.event)}{sep}")
        if self.data is not None:
            out.extend(f"data: {line}{sep}" for line in _LINE_SEP.split(str(self.data)))
        if self.retry is not None:
            if not isinstance(self.retry, int):
                raise TypeError("retry must be an int")
            out.append(f"retry: {self.retry}{sep}")
        out.append(sep)
        return "".join(out).encode()


class SSEResponse(Response[None]):
    def __init__(self, events: AsyncIterator[ServerSentEvent | bytes], *, keepalive_seconds: float = 15.0) -> None:
        super().__init__(content=None)
        self._events = events
        self._keepalive = keepalive_seconds

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **kwargs: Any) -> EventStream:  # type: ignore[override]
        return EventStream(self._events, self._keepalive)


class EventStream:
    """The ASGI side of one SSE response."""

    __slots__ = ("events", "keepalive", "left")

    def __init__(self, events: AsyncIterator[ServerSentEvent | bytes], keepalive: float) -> None:
        self.events = events
        self.keepalive = keepalive
        self.left = False  # the client has gone

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            # a list of its own: middleware (CORS) adds to a start message's headers in place
            await send({"type": "http.response.start", "status": 200, "headers": list(HEADERS)})
            runner = asyncio.current_task()
            assert runner is not None
            helper = asyncio.get_running_loop().create_task(self._until_left(receive, send, runner))
            try:
                async for item in self.events:
                    body = item if isinstance(item, bytes) else item.encode()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            except asyncio.CancelledError:
                # cancelled by the helper (the client left): the request ends here, quietly;
                # any other cancellation (server shutdown) goes on up
                if not self.left or runner.uncancel() > 0:
                    raise
            finally:
                helper.cancel()
            if not self.left:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _until_left(self, receive: Any, send: Any, runner: asyncio.Task[Any]) -> None:
        """Waits for `http.disconnect`; every `keepalive` seconds of waiting sends a comment.
        Sends are whole events either way (an ASGI server writes each message at once), so a
        comment never lands inside an event."""
        try:
            while True:
                try:
                    async with asyncio.timeout(self.keepalive if self.keepalive > 0 else None):
                        message = await receive()
                except TimeoutError:
                    await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                    continue
                if message["type"] == "http.disconnect":
                    break
        except Exception:  # noqa: BLE001 - a server that raises on a gone client: gone all the same
            pass
        self.left = True
        runner.cancel()
