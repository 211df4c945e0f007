"""/mcp: the MCP server mounted into the Litestar app (Streamable HTTP, stateless).

Every request needs an API key of the KeyRing (`Authorization: Bearer <key>`), as /v1 does;
keyless (loopback-only) servers take any caller as the one anonymous owner. A refused key gets
a plain 401 before the SDK sees the request. Stateless: each POST is served on its own, so
progress notifications travel on that POST's SSE stream and no session outlives a call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar.handlers import ASGIRouteHandler, asgi
from litestar.types import Receive, Scope, Send
from mcp.server.transport_security import TransportSecuritySettings

from adapter.api.common.auth import KeyRing
from adapter.api.mcp.server import LocalRunner, build_server
from adapter.api.mcp.tools import McpTools


class McpEndpoint:
    def __init__(self, keys: KeyRing, public_base: str | None) -> None:
        self.runner = LocalRunner(keys, public_base)
        self.server = build_server(self.runner)
        # builds the session manager; the browser guard and the keys do what DNS-rebinding
        # protection would, so the SDK's Host check (loopback names only) stays off
        self.server.streamable_http_app(stateless_http=True, transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.manager = self.server.session_manager

    @asynccontextmanager
    async def running(self, tools: McpTools) -> AsyncIterator[None]:
        self.runner.tools = tools
        try:
            async with self.manager.run():
                yield
        finally:
            self.runner.tools = None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}  # type: ignore[union-attr]
        if self.runner.owner(headers) is None:
            body = json.dumps({"error": {"message": "Invalid API key: send Authorization: Bearer <key>.", "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})  # type: ignore[arg-type]
            await send({"type": "http.response.body", "body": body})  # type: ignore[arg-type]
            return
        await self.manager.handle_request(scope, receive, send)  # type: ignore[arg-type]

    def route(self) -> ASGIRouteHandler:
        async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await self.handle(scope, receive, send)

        # a copy of the scope: the SDK app must not change what Litestar sees after it
        return asgi("/mcp", is_mount=True, include_in_schema=False, copy_scope=True)(mcp_endpoint)


