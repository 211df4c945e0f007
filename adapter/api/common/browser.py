"""Who may call a keyless server from a browser.

Without API keys the server listens on loopback only, but a browser on this machine can still
be made to call it by any web page: a `text/plain` POST needs no CORS preflight, so without this
check a page on https://evil.example could spend the operator's Midjourney hours, and a DNS
rebinding page (evil.example resolving to 127.0.0.1) could even read the answers. So in keyless
mode a request is served only when

- its `Host` header names this machine (127.0.0.0/8, `localhost`, `[::1]`): a rebinding page
  sends its own host name, and
- its `Origin`, when present, is a page on this machine (http or https, any port), and
- without an `Origin`, it is not marked `Sec-Fetch-Site: cross-site` (a cross-site GET carries
  no Origin).

Our image files (`GET /images/...`, unguessable capability URLs that chat UIs embed in other
sites' pages) and `/healthz` are exempt. With API keys configured nothing here applies: every
call needs a key, which a foreign page does not have, and CORS follows `cors_origins`.

`judge` is the pure decision; `browser_guard` and `LoopbackCors` apply it to the app.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapter.api.acedata.errors import INVALID_TOKEN, AceError
from adapter.api.mjproxy.errors import VALIDATION_ERROR, MjError
from adapter.api.mjproxy.views import MODE_PREFIXES
from adapter.api.openai.errors import OpenAIError
from adapter.api.yokonsan.errors import REQUEST_PARAMS_ERROR, YkError

_HOW_TO_OPEN = "Set MJ_ADAPTER_API_KEYS to allow browsers elsewhere (every call then needs a key)."

# scheme://host[:port], nothing else: browsers send origins in exactly this shape (lower case,
# but we do not rely on it). `user@`, a path or a bare IPv6 address never count as loopback.
_ORIGIN = re.compile(r"(?i)(https?)://(\[[0-9a-f:.]+\]|[^\[\]/:@?#\s]+)(?::(\d{1,5}))?")
_HOST = re.compile(r"(?i)(\[[0-9a-f:.]+\]|[^\[\]/:@?#\s]+)(?::(\d{1,5}))?")

_MJ_ROOTS = ("/mj", *(prefix.rstrip("/") + "/mj" for prefix in MODE_PREFIXES))


class Verdict(msgspec.Struct, frozen=True):
    allowed: bool
    reason: str | None = None  # why not, for the caller (a sentence)


ALLOWED = Verdict(True)


def is_loopback_host(host: str) -> bool:
    """`localhost`, a dotted-quad in 127.0.0.0/8, or a bracketed IPv6 loopback (`[::1]`, also
    `[::ffff:127.0.0.1]`). Not `127.1`, `2130706433` or `localhost.evil.example`: only the
    spellings a browser normalises a loopback URL to."""
    host = host.lower()
    if host == "localhost":
        return True
    if host.startswith("[") and host.endswith("]"):
        try:
            v6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return v6.is_loopback or (v6.ipv4_mapped is not None and v6.ipv4_mapped.is_loopback)
    try:
        # strict dotted-quad: four parts, no leading zeros (Python refuses them)
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


def _port_ok(port: str | None) -> bool:
    return port is None or 0 < int(port) <= 65535


def is_loopback_origin(origin: str) -> bool:
    """An `Origin` header naming a page served from this machine (http or https, any port).
    `null` (sandboxed frames, file:// pages) is not one: it may be any page at all."""
    m = _ORIGIN.fullmatch(origin)
    return bool(m and _port_ok(m.group(3)) and is_loopback_host(m.group(2)))


def is_loopback_host_header(value: str) -> bool:
    """A `Host` header addressed to this machine, with or without a port."""
    m = _HOST.fullmatch(value)
    return bool(m and _port_ok(m.group(2)) and is_loopback_host(m.group(1)))


def is_exempt(method: str, path: str) -> bool:
    """Our image files and liveness: safe to fetch from anywhere (capability URLs; no secrets)."""
    return method.upper() in ("GET", "HEAD") and (path.startswith("/images/") or path == "/healthz")


def is_mj_path(path: str) -> bool:
    """The midjourney-proxy routes, which answer in their own error format."""
    return any(path == root or path.startswith(root + "/") for root in _MJ_ROOTS)


def _shown(value: str) -> str:
    # the caller's own header, echoed so the refusal is self-explanatory; bounded
    return repr(value[:100])


def judge(method: str, path: str, headers: Mapping[str, str], *, keyless: bool) -> Verdict:
    """May this request be served? `headers` must look names up case-insensitively (Litestar's
    do; a plain dict needs lower-case names)."""
    if not keyless or is_exempt(method, path):
        return ALLOWED
    host = headers.get("host")
    if host is None or not is_loopback_host_header(host):
        return Verdict(
            False,
            "This server has no API keys, so it answers only requests addressed to this machine "
            f"(Host 127.0.0.1, localhost or [::1]), not Host {_shown(host or '')}: a web page cannot reach it "
            f"through another name (DNS rebinding). {_HOW_TO_OPEN}",
        )
    origin = headers.get("origin")
    if origin is not None:
        if is_loopback_origin(origin):
            return ALLOWED
        return Verdict(
            False,
            "This server has no API keys, so only pages on this machine may call it, not a page from "
            f"{_shown(origin)}. {_HOW_TO_OPEN}",
        )
    if (headers.get("sec-fetch-site") or "").strip().lower() == "cross-site":
        return Verdict(
            False,
            "This server has no API keys, so only pages on this machine may call it, and this request "
            f"came from another site (Sec-Fetch-Site: cross-site). {_HOW_TO_OPEN}",
        )
    return ALLOWED


def refusal(path: str, reason: str) -> Exception:
    """The 403 in the front door's own error format (the guard runs after routing, so the
    router's exception handlers render it)."""
    if is_mj_path(path):
        return MjError(VALIDATION_ERROR, reason, status=403)
    if path.startswith("/v1/api/trigger/"):
        return YkError(REQUEST_PARAMS_ERROR, reason, status=403)
    if path.startswith("/midjourney/"):
        return AceError(INVALID_TOKEN, reason, status=403)
    return OpenAIError(403, reason, type="permission_error", code="cross_origin_refused")


def browser_guard(*, keyless: bool) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """An app-level Litestar guard applying `judge`. A coroutine function: Litestar runs a plain
    function guard in a worker thread, one thread hop on every request."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not keyless:
            return
        method = str(connection.scope.get("method", "GET"))
        path = connection.scope["path"]
        verdict = judge(method, path, connection.headers, keyless=True)
        if not verdict.allowed:
            raise refusal(path, verdict.reason or "Refused.")

    return guard


_PREFLIGHT_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


class LoopbackCors:
    """CORS for keyless mode: pages on this machine (a local web UI) get CORS headers; every
    other origin gets none at all, on the preflight as on the (refused) request itself.

    Litestar's own CORS middleware adds Access-Control-Allow-Methods/-Headers to every answer
    with an Origin, allowed or not; hence this small stand-in. It runs around each route
    handler (app-level middleware), so the guard's 403 passes through it: a refused origin's
    preflight reaches the guard and is refused like the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        verdict = judge(scope["method"], scope["path"], headers, keyless=True)
        if origin is None or not verdict.allowed or not is_loopback_origin(origin):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, headers, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(origin: str, headers: Mapping[str, str], send: Send) -> None:
        out = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", _PREFLIGHT_METHODS.encode()),
            (b"access-control-max-age", b"600"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        if requested := headers.get("access-control-request-headers"):
            out.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await send({"type": "http.response.start", "status": 204, "headers": out})
        await send({"type": "http.response.body", "body": b""})
