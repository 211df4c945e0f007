"""A tiny scriptable HTTP/1.1 server on 127.0.0.1 for the fetcher tests, plus image factories."""

from __future__ import annotations

import asyncio
import io
import shutil
import ssl
import subprocess
from pathlib import Path
from collections.abc import AsyncIterator

import msgspec
import pytest
from PIL import Image


class Route(msgspec.Struct, kw_only=True):
    status: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""
    chunked: bool = False  # send the body chunked, with no Content-Length
    content_length: int | None = None  # lie about the length (None: the true length)
    stall_before_headers: bool = False
    stall_after_headers: bool = False


class SeenRequest(msgspec.Struct):
    method: str
    path: str
    headers: dict[str, str]


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, **kw: object) -> str:
        self.routes[path] = Route(**kw)  # type: ignore[arg-type]
        return self.url(path)

    def paths_seen(self) -> list[str]:
        return [r.path for r in self.requests]

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            self.requests.append(SeenRequest(method, path, headers))
            route = self.routes.get(path, Route(status=404, body=b"not found"))
            if route.stall_before_headers:
                await self._stop.wait()
                return
            out = [f"HTTP/1.1 {route.status} X"]
            for k, v in route.headers.items():
                out.append(f"{k}: {v}")
            if route.chunked:
                out.append("Transfer-Encoding: chunked")
            else:
                length = len(route.body) if route.content_length is None else route.content_length
                out.append(f"Content-Length: {length}")
            out.append("Connection: close")
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            if route.stall_after_headers:
                await self._stop.wait()
                return
            if route.chunked:
                step = 64 * 1024
                for i in range(0, len(route.body), step):
                    part = route.body[i : i + step]
                    writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(route.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    srv = LoopbackServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


class TlsFiles(msgspec.Struct):
    cert: Path
    key: Path


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A throwaway self-signed certificate for the name "img.test" (needs the openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=img.test", "-addext", "subjectAltName=DNS:img.test",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return TlsFiles(cert=cert, key=key)


@pytest.fixture
async def tls_server(tls_files: TlsFiles) -> AsyncIterator[LoopbackServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_files.cert, tls_files.key)
    srv = LoopbackServer()
    await srv.start(ctx)
    try:
        yield srv
    finally:
        await srv.stop()


def make_image(
    fmt: str = "PNG", size: tuple[int, int] = (8, 6), color: tuple[int, ...] = (200, 30, 30), mode: str = "RGB"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt)
    return out.getvalue()


QUADRANT_COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


def make_grid(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    """A 2x2 grid: red (1, top-left), green (2, top-right), blue (3, bottom-left), yellow (4)."""
    w, h = size
    img = Image.new("RGB", size)
    mx, my = w // 2, h // 2
    boxes = [(0, 0, mx, my), (mx, 0, w, my), (0, my, mx, h), (mx, my, w, h)]
    for box, color in zip(boxes, QUADRANT_COLORS):
        img.paste(color, box)
    out = io.BytesIO()
    img.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()
