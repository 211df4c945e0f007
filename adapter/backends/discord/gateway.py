"""The Discord gateway as a user account's browser speaks it: identify, heartbeat, resume,
reconnect, optional zlib-stream transport compression.

One background task owns the connection loop. Each connection either ends in a resume (the
session and its sequence number survive: Discord replays what was missed), a fresh identify
(the session is gone), or a fatal stop (the token is refused: reconnecting would only hammer
Discord with a dead token). Failed connection attempts back off exponentially with jitter, and
too many of them within a window stop the client for good, so a broken account is reported
instead of retried forever.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import random
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from adapter.backends.discord.errors import GatewayClosed, GatewayError, GatewayFatal, Unauthorized
from adapter.backends.discord.identity import BrowserIdentity

log = logging.getLogger(__name__)

GATEWAY_VERSION = 9
CAPABILITIES = 16381  # what the current web client announces
ZLIB_SUFFIX = b"\x00\x00\xff\xff"

# Close codes after which connecting again cannot help: the token or the request is refused.
FATAL_CLOSE_CODES: Mapping[int, str] = {
    4004: "authentication failed",
    4010: "invalid shard",
    4011: "sharding required",
    4012: "invalid API version",
    4013: "invalid intents",
    4014: "disallowed intents",
    4015: "not allowed",
}
# The session cannot be resumed after these; a new one must be identified.
REIDENTIFY_CLOSE_CODES: Mapping[int, str] = {4007: "invalid sequence"}

_HELLO_TIMEOUT = 20.0
_CLOSE_TIMEOUT = 5.0
_MAX_MESSAGE = 64 * 1024 * 1024  # a user account's READY can run to several megabytes
_STABLE_AFTER = 10.0  # a session ready this long resets the backoff
_SEND_RATE = 120  # sends per _SEND_PERIOD, Discord's per-connection limit
_SEND_PERIOD = 60.0
_HEARTBEAT_RESERVE = 3  # sends kept for heartbeats, so a burst of other sends cannot starve them


class GatewayState(str, enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # connecting to identify a new session
    READY = "ready"
    RESUMING = "resuming"  # connecting to resume the existing session
    RECONNECTING = "reconnecting"  # between connections, backing off
    FATAL = "fatal"
    CLOSED = "closed"


class GatewayStats(msgspec.Struct, kw_only=True):
    connects: int = 0  # websocket connection attempts
    identifies: int = 0
    resumes: int = 0  # RESUME payloads sent
    reconnects: int = 0  # connections that ended and were followed by another
    heartbeats_sent: int = 0
    acks: int = 0
    dispatches: int = 0
    invalid_sessions: int = 0


class _Payload(msgspec.Struct):
    op: int
    d: Any = None
    s: int | None = None
    t: str | None = None


class _Hello(msgspec.Struct):
    heartbeat_interval: float


class _Outcome(msgspec.Struct, kw_only=True):
    """How a connection ended and what to do next."""

    next: Literal["resume", "identify", "fatal"]
    reason: str
    close_code: int | None = None
    delay: float | None = None  # overrides the backoff (e.g. after INVALID_SESSION)


class _SendBudget:
    """Token bucket for outgoing payloads, refilled continuously."""

    def __init__(self) -> None:
        self._tokens = float(_SEND_RATE)
        self._stamp = time.monotonic()

    async def take(self, *, heartbeat: bool) -> None:
        floor = 0 if heartbeat else _HEARTBEAT_RESERVE
        while True:
            now = time.monotonic()
            self._tokens = min(
                float(_SEND_RATE), self._tokens + (now - self._stamp) * _SEND_RATE / _SEND_PERIOD
            )
            self._stamp = now
            if self._tokens >= floor + 1:
                self._tokens -= 1
                return
            await asyncio.sleep((floor + 1 - self._tokens) * _SEND_PERIOD / _SEND_RATE)


class _Connection:
    __slots__ = ("awaiting_ack", "beat_sent_at", "budget", "buffer", "inflater", "intent", "ready_at", "ws")

    def __init__(self, ws: ClientConnection, compress: bool) -> None:
        self.ws = ws
        self.inflater = zlib.decompressobj() if compress else None
        self.buffer = bytearray()
        self.budget = _SendBudget()
        self.awaiting_ack = False
        self.beat_sent_at = 0.0
        self.ready_at: float | None = None
        self.intent: _Outcome | None = None  # set when we close the socket ourselves


class _ConnectFailed(Exception):
    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.fatal = fatal


def gateway_url(base: str, *, compress: bool) -> str:
    """`base` with the query the client needs (`encoding=json&v=9`, and zlib-stream if asked)."""
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query))
    query.update(encoding="json", v=str(GATEWAY_VERSION))
    if compress:
        query["compress"] = "zlib-stream"
    else:
        query.pop("compress", None)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


class GatewayClient:
    """A user account's gateway connection, kept alive until `close()` or a fatal refusal.

    `on_dispatch(t, d)` gets every DISPATCH (READY and RESUMED included) in order; it runs on
    the receive loop, so it must be quick (hand long work to a task): while it runs, no ACK is
    read. Its exceptions are logged and ignored. `on_state(state, reason)` hears every state
    change. `rng` drives the heartbeat and backoff jitter; `invalid_session_delay` is the
    (min, max) wait after INVALID_SESSION (Discord asks for 1-5 s; tests shorten it)."""

    def __init__(
        self,
        *,
        token: str,
        identity: BrowserIdentity,
        url_provider: Callable[[], Awaitable[str]],
        on_dispatch: Callable[[str, dict[str, Any]], Awaitable[None] | None],
        on_state: Callable[[GatewayState, str | None], None] | None = None,
        compress: bool = False,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        max_failures: int = 10,
        failure_window: float = 600.0,
        rng: random.Random | None = None,
        invalid_session_delay: tuple[float, float] = (1.0, 5.0),
    ) -> None:
        self._token = token
        self._identity = identity
        self._url_provider = url_provider
        self._on_dispatch = on_dispatch
        self._on_state = on_state
        self._compress = compress
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_failures = max_failures
        self._failure_window = failure_window
        self._rng = rng or random.Random()
        self._invalid_session_delay = invalid_session_delay

        self.stats = GatewayStats()
        self._state = GatewayState.IDLE
        self._state_changed = asyncio.Event()
        self._fatal: GatewayFatal | None = None
        self._task: asyncio.Task[None] | None = None
        self._conn: _Connection | None = None
        self._gateway_url: str | None = None  # cached answer of url_provider
        self._failures: deque[float] = deque()

        self._session_id: str | None = None
        self._resume_url: str | None = None
        self._seq: int | None = None
        self._user: dict[str, Any] | None = None
        self._latency: float | None = None

    def __repr__(self) -> str:
        return f"GatewayClient(state={self._state.value}, session_id={self._session_id!r}, token=[redacted])"

    # --- public surface -------------------------------------------------------------------

    @property
    def state(self) -> GatewayState:
        return self._state

    @property
    def fatal_reason(self) -> str | None:
        return self._fatal.reason if self._fatal else None

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def resume_gateway_url(self) -> str | None:
        return self._resume_url

    @property
    def seq(self) -> int | None:
        return self._seq

    @property
    def user(self) -> dict[str, Any] | None:
        return self._user

    @property
    def user_id(self) -> str | None:
        return str(self._user["id"]) if self._user and "id" in self._user else None

    @property
    def latency(self) -> float | None:
        """Seconds between the last heartbeat and its ACK."""
        return self._latency

    async def start(self, timeout: float = 30.0) -> None:
        """Connect and return once READY. Raises GatewayFatal if the gateway refuses the account
        or connecting keeps failing, TimeoutError if not ready in time (the client keeps trying
        in the background; `close()` stops it)."""
        if self._task is None or self._task.done():
            self._fatal = None
            self._failures.clear()
            self._set_state(GatewayState.CONNECTING, None)  # before waiting: not FATAL/CLOSED any more
            self._task = asyncio.create_task(self._run(), name="discord-gateway")
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the session is READY (again, after a reconnect: READY or RESUMED)."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._state_changed
                if self._state is GatewayState.READY:
                    return
                if self._state is GatewayState.FATAL:
                    assert self._fatal is not None
                    raise GatewayFatal(self._fatal.reason, self._fatal.close_code)
                if self._state is GatewayState.CLOSED:
                    raise GatewayClosed("gateway client closed")
                await changed.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            if task is not asyncio.current_task():
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if self._state is not GatewayState.FATAL:
            self._set_state(GatewayState.CLOSED, "closed by owner")

    async def drop(self) -> None:
        """Test hook: cut the current connection without a close frame (as a network failure
        would), so the client resumes."""
        conn = self._conn
        if conn is not None:
            conn.intent = _Outcome(next="resume", reason="connection dropped")
            conn.ws.transport.abort()

    async def send(self, op: int, d: Any) -> None:
        """Send a payload on the live connection (within the 120/60 s budget)."""
        conn = self._conn
        if conn is None:
            raise GatewayError("gateway not connected")
        await self._send(conn, {"op": op, "d": d})

    # --- connection loop ------------------------------------------------------------------

    def _set_state(self, state: GatewayState, reason: str | None) -> None:
        if state is self._state:
            return
        self._state = state
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        log.info("gateway %s%s", state.value, f": {reason}" if reason else "")
        if self._on_state is not None:
            try:
                self._on_state(state, reason)
            except Exception:
                log.exception("gateway state listener failed")

    def _backoff(self, attempt: int) -> float:
        if attempt <= 0:
            return 0.0
        delay = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + self._rng.random() / 2)

    def _can_resume(self) -> bool:
        return self._session_id is not None and self._seq is not None

    def _forget_session(self) -> None:
        self._session_id = None
        self._resume_url = None
        self._seq = None

    def _record_failure(self, reason: str) -> GatewayFatal | None:
        now = time.monotonic()
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self._failure_window:
            self._failures.popleft()
        if len(self._failures) >= self._max_failures:
            return GatewayFatal(
                f"{len(self._failures)} failed connection attempts within "
                f"{self._failure_window:g}s (last: {reason})"
            )
        return None

    async def _run(self) -> None:
        attempt = 0  # consecutive connections that did not stay ready
        delay = 0.0
        reason: str | None = None
        try:
            while True:
                if delay > 0:
                    await asyncio.sleep(delay)
                resume = self._can_resume()
                self._set_state(GatewayState.RESUMING if resume else GatewayState.CONNECTING, reason)
                ready_for: float | None = None
                try:
                    outcome, ready_for = await self._connect_once(resume)
                except _ConnectFailed as exc:
                    # The cached URLs may be what is wrong: ask for the gateway URL again, and
                    # resume through it (Discord accepts RESUME there too).
                    self._gateway_url = None
                    self._resume_url = None
                    outcome = _Outcome(next="fatal" if exc.fatal else "resume", reason=str(exc))

                if outcome.next == "fatal":
                    self._stop_fatal(GatewayFatal(outcome.reason, outcome.close_code))
                    return
                if outcome.next == "identify":
                    self._forget_session()
                if ready_for is None:
                    fatal = self._record_failure(outcome.reason)
                    if fatal is not None:
                        self._stop_fatal(fatal)
                        return
                attempt = 0 if ready_for is not None and ready_for >= _STABLE_AFTER else attempt + 1
                delay = outcome.delay if outcome.delay is not None else self._backoff(attempt)
                reason = outcome.reason
                self.stats.reconnects += 1
                log.info("gateway connection ended (%s); reconnecting in %.2fs", reason, delay)
                self._set_state(GatewayState.RECONNECTING, reason)
        except asyncio.CancelledError:
            self._set_state(GatewayState.CLOSED, "closed by owner")
            raise
        except Exception as exc:  # a bug here must not leave waiters hanging
            log.exception("gateway loop crashed")
            self._stop_fatal(GatewayFatal(f"internal error: {type(exc).__name__}"))

    def _stop_fatal(self, fatal: GatewayFatal) -> None:
        self._fatal = fatal
        self._forget_session()
        self._set_state(GatewayState.FATAL, fatal.reason)

    async def _target_url(self, resume: bool) -> str:
        if resume and self._resume_url:
            return gateway_url(self._resume_url, compress=self._compress)
        if self._gateway_url is None:
            try:
                self._gateway_url = await self._url_provider()
            except Unauthorized:
                # The token is refused: connecting again would only repeat the refusal.
                raise _ConnectFailed("Discord refused the token (401)", fatal=True) from None
            except Exception as exc:
                raise _ConnectFailed(f"gateway URL lookup failed: {type(exc).__name__}: {exc}") from None
        return gateway_url(self._gateway_url, compress=self._compress)

    async def _connect_once(self, resume: bool) -> tuple[_Outcome, float | None]:
        """One connection, from handshake to close. Returns how it ended and how long it was
        ready (None if it never got READY/RESUMED)."""
        url = await self._target_url(resume)
        self.stats.connects += 1
        try:
            ws = await connect(
                url,
                user_agent_header=self._identity.user_agent,
                compression=None,
                max_size=_MAX_MESSAGE,
                ping_interval=None,  # Discord's own heartbeat keeps the connection alive
                close_timeout=_CLOSE_TIMEOUT,
                open_timeout=_HELLO_TIMEOUT,
            )
        except Exception as exc:
            raise _ConnectFailed(f"connect failed: {type(exc).__name__}: {exc}") from None

        conn = _Connection(ws, self._compress)
        self._conn = conn
        heartbeat: asyncio.Task[None] | None = None
        try:
            try:
                async with asyncio.timeout(_HELLO_TIMEOUT):
                    hello = await self._recv(conn)
                if hello.op != 10:
                    raise _ConnectFailed(f"expected HELLO, got op {hello.op}")
                interval = msgspec.convert(hello.d, _Hello).heartbeat_interval / 1000
                heartbeat = asyncio.create_task(self._heartbeat(conn, interval), name="discord-heartbeat")
                if resume:
                    self.stats.resumes += 1
                    await self._send(conn, self._resume_payload())
                else:
                    self.stats.identifies += 1
                    await self._send(conn, self._identify_payload())
                while True:
                    outcome = await self._handle(conn, await self._recv(conn))
                    if outcome is not None:
                        conn.intent = outcome
                        await ws.close(4000, outcome.reason[:100])
            except ConnectionClosed as exc:
                outcome = self._closed_outcome(conn, exc)
            except (TimeoutError, msgspec.ValidationError) as exc:
                raise _ConnectFailed(f"bad gateway handshake: {type(exc).__name__}") from None
            except zlib.error:
                outcome = _Outcome(next="resume", reason="corrupt zlib stream")
        except asyncio.CancelledError:
            await ws.close()  # 1000: closing for good ends the session on Discord's side too
            raise
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                await asyncio.wait([heartbeat])
            self._conn = None
            # Any other way out keeps the session resumable: never 1000 here. A no-op when the
            # socket is already closed.
            await ws.close(4000, "reconnecting")
        ready_for = None if conn.ready_at is None else time.monotonic() - conn.ready_at
        return outcome, ready_for

    def _closed_outcome(self, conn: _Connection, exc: ConnectionClosed) -> _Outcome:
        if conn.intent is not None:
            return conn.intent
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        text = exc.rcvd.reason if exc.rcvd is not None else ""
        if code in FATAL_CLOSE_CODES:
            return _Outcome(
                next="fatal", reason=f"gateway closed with {code} ({FATAL_CLOSE_CODES[code]})", close_code=code
            )
        detail = REIDENTIFY_CLOSE_CODES.get(code) or text or "connection lost"
        return _Outcome(
            next="identify" if code in REIDENTIFY_CLOSE_CODES else "resume",
            reason=f"gateway closed with {code} ({detail})",
            close_code=code,
        )

    # --- payloads -------------------------------------------------------------------------

    def _identify_payload(self) -> dict[str, Any]:
        # A user token identifies like the web client: capabilities and a client state, no intents.
        return {
            "op": 2,
            "d": {
                "token": self._token,
                "capabilities": CAPABILITIES,
                "properties": self._identity.properties(),
                "presence": {"status": "online", "since": 0, "activities": [], "afk": False},
                "compress": False,
                "client_state": {"guild_versions": {}},
            },
        }

    def _resume_payload(self) -> dict[str, Any]:
        return {"op": 6, "d": {"token": self._token, "session_id": self._session_id, "seq": self._seq}}

    async def _send(self, conn: _Connection, payload: Mapping[str, Any], *, heartbeat: bool = False) -> None:
        await conn.budget.take(heartbeat=heartbeat)
        await conn.ws.send(msgspec.json.encode(payload).decode())

    async def _send_heartbeat(self, conn: _Connection) -> None:
        conn.beat_sent_at = time.monotonic()
        self.stats.heartbeats_sent += 1
        await self._send(conn, {"op": 1, "d": self._seq}, heartbeat=True)

    async def _recv(self, conn: _Connection) -> _Payload:
        while True:
            frame = await conn.ws.recv()
            if isinstance(frame, str):
                data: bytes | str = frame
            elif conn.inflater is None:
                data = frame
            else:
                # zlib-stream: one compressor for the whole connection, a payload may span
                # several frames and is complete when the buffer ends with the sync-flush marker.
                conn.buffer += frame
                if not conn.buffer.endswith(ZLIB_SUFFIX):
                    continue
                data = conn.inflater.decompress(conn.buffer)
                conn.buffer.clear()
            try:
                return msgspec.json.decode(data, type=_Payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.warning("gateway: dropped a payload that is not valid JSON (%d bytes)", len(data))

    async def _heartbeat(self, conn: _Connection, interval: float) -> None:
        try:
            await asyncio.sleep(interval * self._rng.random())
            while True:
                if conn.awaiting_ack:
                    # A zombie connection: the server stopped answering. Close with a non-1000
                    # code so the session stays resumable.
                    log.warning("gateway: no heartbeat ACK within %.2fs", interval)
                    conn.intent = _Outcome(next="resume", reason="heartbeat ACK missing")
                    await conn.ws.close(4000, "heartbeat ACK missing")
                    return
                conn.awaiting_ack = True
                await self._send_heartbeat(conn)
                await asyncio.sleep(interval)
        except ConnectionClosed:
            pass  # the receive loop sees the close and decides

    async def _handle(self, conn: _Connection, p: _Payload) -> _Outcome | None:
        if p.op == 0:
            if p.s is not None:
                self._seq = p.s
            name = p.t or ""
            data = p.d if isinstance(p.d, dict) else {}
            if name == "READY":
                self._session_id = data.get("session_id")
                self._resume_url = data.get("resume_gateway_url") or None
                user = data.get("user")
                self._user = user if isinstance(user, dict) else None
                self._became_ready(conn)
            elif name == "RESUMED":
                self._became_ready(conn)
            self.stats.dispatches += 1
            await self._dispatch(name, data)
        elif p.op == 1:
            await self._send_heartbeat(conn)
        elif p.op == 11:
            conn.awaiting_ack = False
            self.stats.acks += 1
            self._latency = time.monotonic() - conn.beat_sent_at
        elif p.op == 7:
            # Backoff still applies: a server that keeps asking must not get a reconnect loop.
            return _Outcome(next="resume", reason="server asked to reconnect")
        elif p.op == 9:
            self.stats.invalid_sessions += 1
            low, high = self._invalid_session_delay
            delay = low + (high - low) * self._rng.random()
            if p.d is True:
                return _Outcome(next="resume", reason="invalid session (resumable)", delay=delay)
            return _Outcome(next="identify", reason="invalid session", delay=delay)
        return None

    def _became_ready(self, conn: _Connection) -> None:
        conn.ready_at = time.monotonic()
        self._set_state(GatewayState.READY, None)

    async def _dispatch(self, name: str, data: dict[str, Any]) -> None:
        # Handlers run inline so events reach them in order; a failing handler is logged and
        # the connection carries on.
        try:
            result = self._on_dispatch(name, data)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("gateway dispatch handler failed on %s", name)
