"""Server-sent events: sse-starlette's EventSourceResponse served from Litestar handlers.

sse-starlette brings keepalive comments, client-disconnect detection and the anti-buffering
header; Litestar only needs an ASGI callable back from `to_asgi_response`. A stream may yield
an event already encoded (bytes, e.g. `shared_images.sse_frame`): it is sent as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Request, Response
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

__all__ = ["SSEResponse", "ServerSentEvent"]


class SSEResponse(Response[None]):
    def __init__(self, events: AsyncIterator[ServerSentEvent | bytes], *, keepalive_seconds: float = 15.0) -> None:
        super().__init__(content=None)
        self._events = events
        self._keepalive = keepalive_seconds

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **kwargs: Any) -> Any:  # type: ignore[override]
        return EventSourceResponse(
            self._events,
            ping=self._keepalive,
            # on SIGTERM the engine ends each stream with a last event of its own; give it time
            shutdown_event=anyio.Event(),
            shutdown_grace_period=3.0,
            sep="\n",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
