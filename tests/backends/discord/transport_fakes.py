"""Scripted loopback servers for the Discord transport tests: a minimal HTTP/1.1 responder and a
websocket gateway whose every connection runs a script the test writes. Both record what
arrived and when (time.monotonic, the clock the client's limiter uses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

WAIT = 5.0  # upper bound of any single wait in these tests


# --- HTTP -------------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    method: str
    target: str  # path + query, as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes
    arrived: float

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpResponse:
    status: int = 200
    json_body: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


class FakeHttpServer:
    """HTTP/1.1 with keep-alive on 127.0.0.1:0. `handler` answers each request."""

    def __init__(self, handler: HttpHandler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.responded: list[float] = []  # when each answer was written
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> FakeHttpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), WAIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = HttpRequest(method, target, headers, body, time.monotonic())
                self.requests.append(request)
                response = await self.handler(request)
                payload = response.body
                out_headers = dict(response.headers)
                if response.json_body is not None:
                    payload = json.dumps(response.json_body).encode()
                    out_headers.setdefault("Content-Type", "application/json")
                head = f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}\r\n"
                out_headers["Content-Length"] = str(len(payload))
                head += "".join(f"{k}: {v}\r\n" for k, v in out_headers.items()) + "\r\n"
                writer.write(head.encode("latin-1") + payload)
                await writer.drain()
                self.responded.append(time.monotonic())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


# --- gateway ----------------------------------------------------------------------------------


class GatewayConn:
    """One client connection to the fake gateway, driven by the test's script."""

    def __init__(self, ws: ServerConnection, index: int) -> None:
        self.ws = ws
        self.index = index
        request = ws.request
        assert request is not None
        self.path = urlsplit(request.path).path
        self.query = {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}
        self.headers = request.headers
        self.compress = self.query.get("compress") == "zlib-stream"
        self._deflater = zlib.compressobj() if self.compress else None
        self.auto_ack = True
        self.received: list[tuple[float, dict[str, Any]]] = []  # every frame, with arrival time
        self.sent_at: dict[str, float] = {}  # label -> when sent, for timing assertions
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None  # the code the client closed with, if any
        self.done = asyncio.Event()

    @property
    def heartbeats(self) -> list[tuple[float, Any]]:
        return [(t, p["d"]) for t, p in self.received if p.get("op") == 1]

    async def send(self, payload: dict[str, Any], *, split: int = 1) -> None:
        text = json.dumps(payload)
        if self._deflater is None:
            await self.ws.send(text)
            return
        data = self._deflater.compress(text.encode()) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        step = max(1, -(-len(data) // split))
        for i in range(0, len(data), step):
            await self.ws.send(data[i : i + step])

    async def hello(self, interval_ms: float) -> None:
        self.sent_at["hello"] = time.monotonic()
        await self.send({"op": 10, "d": {"heartbeat_interval": interval_ms}})

    async def dispatch(self, t: str, d: dict[str, Any], s: int, *, split: int = 1) -> None:
        await self.send({"op": 0, "t": t, "s": s, "d": d}, split=split)

    async def recv(self, op: int) -> dict[str, Any]:
        """The next frame with this opcode (others are skipped; all stay in `received`)."""
        async with asyncio.timeout(WAIT):
            while True:
                payload = await self.inbox.get()
                if payload.get("op") == op:
                    return payload

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def wait_closed(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.done.wait()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                payload = json.loads(message)
                self.received.append((time.monotonic(), payload))
                if payload.get("op") == 1 and self.auto_ack:
                    await self.ws.send(json.dumps({"op": 11}))
                self.inbox.put_nowait(payload)
        except ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None:
                self.close_code = self.ws.close_code
            self.done.set()


Script = Callable[[GatewayConn], Awaitable[None]]


class FakeGateway:
    """A websocket server on 127.0.0.1:0; each new connection runs `script(conn)`. When the
    script returns, the connection stays open until the client leaves."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections: list[GatewayConn] = []
        self.errors: list[Exception] = []
        self._new = asyncio.Condition()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def url_provider(self) -> str:
        return self.url

    async def __aenter__(self) -> FakeGateway:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None, ping_interval=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), WAIT)

    async def connection(self, index: int) -> GatewayConn:
        """Wait for the `index`-th connection (0-based)."""
        async with asyncio.timeout(WAIT):
            async with self._new:
                await self._new.wait_for(lambda: len(self.connections) > index)
        return self.connections[index]

    async def _handle(self, ws: ServerConnection) -> None:
        conn = GatewayConn(ws, len(self.connections))
        async with self._new:
            self.connections.append(conn)
            self._new.notify_all()
        reader = asyncio.create_task(conn._read())
        try:
            await self.script(conn)
            await conn.done.wait()
        except Exception as exc:
            self.errors.append(exc)  # surfaced by the tests: a script that failed proves nothing
            raise
        finally:
            reader.cancel()
            await asyncio.wait([reader])


# --- ready-made script steps ------------------------------------------------------------------


def ready_payload(session_id: str = "sess-1", *, resume_url: str, user_id: str = "1100000000000000001") -> dict[str, Any]:
    return {
        "v": 9,
        "session_id": session_id,
        "resume_gateway_url": resume_url,
        "user": {"id": user_id, "username": "tester"},
        "guilds": [],
    }


async def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port
