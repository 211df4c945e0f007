"""GatewayClient against a scripted websocket gateway on loopback."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapter.backends.discord.errors import GatewayClosed, GatewayFatal, Unauthorized
from adapter.backends.discord.gateway import GatewayClient, GatewayState, gateway_url
from adapter.backends.discord.identity import BrowserIdentity

# The fakes module sits beside this file; make it importable under any pytest import mode.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from transport_fakes import WAIT, FakeGateway, GatewayConn, ready_payload, unused_port  # noqa: E402

TOKEN = "fake-user-token.not-real.abc123"
IDENTITY = BrowserIdentity()
LONG = 45_000  # ms: a heartbeat interval that never elapses during a test


class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.states: list[tuple[GatewayState, str | None]] = []

    async def on_dispatch(self, t: str, d: dict[str, Any]) -> None:
        self.events.append((t, d))

    def on_state(self, state: GatewayState, reason: str | None) -> None:
        self.states.append((state, reason))

    def names(self) -> list[str]:
        return [f"{t}:{d['n']}" if "n" in d else t for t, d in self.events]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                await asyncio.sleep(0.005)


def make_client(gw: FakeGateway, rec: Recorder, **kwargs: Any) -> GatewayClient:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("invalid_session_delay", (0.01, 0.02))
    kwargs.setdefault("rng", FixedRandom(0.5))
    return GatewayClient(
        token=TOKEN,
        identity=IDENTITY,
        url_provider=gw.url_provider,
        on_dispatch=rec.on_dispatch,
        on_state=rec.on_state,
        **kwargs,
    )


Script = Callable[[GatewayConn], Awaitable[None]]


async def identify_ready(gw: FakeGateway, conn: GatewayConn, *, session: str = "sess-1", seq: int = 1,
                         interval_ms: float = LONG) -> dict[str, Any]:
    await conn.hello(interval_ms)
    identify = await conn.recv(2)
    await conn.dispatch("READY", ready_payload(session, resume_url=gw.url + "/resume"), seq)
    return identify


async def accept_resume(conn: GatewayConn, *, seq: int, replay: list[int] = (), interval_ms: float = LONG) -> dict[str, Any]:  # type: ignore[assignment]
    await conn.hello(interval_ms)
    resume = await conn.recv(6)
    for s in replay:
        await conn.dispatch("MESSAGE_CREATE", {"n": s}, s)
    await conn.dispatch("RESUMED", {}, seq)
    return resume


def per_connection(*scripts: Callable[[FakeGateway, GatewayConn], Awaitable[None]]) -> Callable[[FakeGateway], Script]:
    """Connection i runs scripts[i] (the last one repeats)."""

    def bind(gw: FakeGateway) -> Script:
        async def run(conn: GatewayConn) -> None:
            await scripts[min(conn.index, len(scripts) - 1)](gw, conn)

        return run

    return bind


@pytest.fixture
async def gateway_factory() -> AsyncIterator[Callable[..., Awaitable[FakeGateway]]]:
    opened: list[FakeGateway] = []

    async def open_gateway(bind: Callable[[FakeGateway], Script]) -> FakeGateway:
        gw = FakeGateway(lambda conn: bind(gw)(conn))
        await gw.__aenter__()
        opened.append(gw)
        return gw

    yield open_gateway
    for gw in opened:
        await gw.__aexit__(None, None, None)
        assert gw.errors == [], gw.errors


# --- tests --------------------------------------------------------------------------------------


def test_gateway_url_query() -> None:
    assert gateway_url("wss://gateway.discord.gg", compress=False) == "wss://gateway.discord.gg/?encoding=json&v=9"
    assert gateway_url("wss://g.example/?v=6", compress=True) == (
        "wss://g.example/?v=9&encoding=json&compress=zlib-stream"
    )


async def test_identify_payload_and_ready(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn)

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        conn = gw.connections[0]
        assert conn.query == {"encoding": "json", "v": "9"}
        assert conn.headers["User-Agent"] == IDENTITY.user_agent
        identify = next(p for _, p in conn.received if p["op"] == 2)["d"]
        assert identify["token"] == TOKEN
        assert identify["capabilities"] == 16381
        assert identify["properties"] == IDENTITY.properties()
        assert identify["properties"]["browser_user_agent"] == IDENTITY.user_agent
        assert identify["compress"] is False
        assert identify["presence"]["status"] == "online"
        assert "intents" not in identify and "shard" not in identify

        assert client.state is GatewayState.READY
        assert client.session_id == "sess-1"
        assert client.user_id == "1100000000000000001"
        assert client.resume_gateway_url == gw.url + "/resume"
        assert client.seq == 1
        assert rec.names() == ["READY"]
        assert [s for s, _ in rec.states] == [GatewayState.CONNECTING, GatewayState.READY]
        assert client.stats.identifies == 1 and client.stats.resumes == 0
        assert TOKEN not in repr(client)
    finally:
        await client.close()
    assert client.state is GatewayState.CLOSED
    await gw.connections[0].wait_closed()
    assert gw.connections[0].close_code == 1000  # a deliberate close ends the session
    with pytest.raises(GatewayClosed):
        await client.wait_ready(timeout=WAIT)


async def test_heartbeat_jitter_interval_and_sequence(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, interval_ms=60)
        await conn.dispatch("MESSAGE_CREATE", {"n": 5}, 5)

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec, rng=FixedRandom(0.5))
    await client.start(timeout=WAIT)
    try:
        conn = gw.connections[0]
        await rec.wait_for(lambda: client.seq == 5)
        beats_before = len(conn.heartbeats)
        await rec.wait_for(lambda: len(conn.heartbeats) >= max(3, beats_before + 1))
        times = [t for t, _ in conn.heartbeats]
        # First beat after interval * random() = 30 ms, then one every 60 ms, never early.
        tolerance = 0.005  # loopback delivery of successive frames can differ by this much
        assert times[0] - conn.sent_at["hello"] >= 0.030 - tolerance
        assert all(b - a >= 0.060 - tolerance for a, b in zip(times, times[1:]))
        assert conn.heartbeats[-1][1] == 5  # d is the last sequence number seen
        assert client.stats.acks >= 1 and client.latency is not None
        assert len(gw.connections) == 1  # every beat was ACKed: no reconnect
    finally:
        await client.close()


async def test_server_heartbeat_request_answered_at_once(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, seq=7)
        await conn.send({"op": 1, "d": None})

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec, rng=FixedRandom(0.99))  # scheduled beat only after ~44.5 s
    await client.start(timeout=WAIT)
    try:
        beat = await gw.connections[0].recv(1)
        assert beat["d"] == 7
    finally:
        await client.close()


async def test_missing_ack_resumes_with_seq_and_replay(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def zombie(gw: FakeGateway, conn: GatewayConn) -> None:
        conn.auto_ack = False
        await identify_ready(gw, conn, interval_ms=50)
        await conn.dispatch("MESSAGE_CREATE", {"n": 2}, 2)
        await conn.dispatch("MESSAGE_CREATE", {"n": 3}, 3)

    async def resumed(gw: FakeGateway, conn: GatewayConn) -> None:
        await accept_resume(conn, seq=6, replay=[4, 5])
        await conn.dispatch("MESSAGE_CREATE", {"n": 7}, 7)

    gw = await gateway_factory(per_connection(zombie, resumed))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        first = await gw.connection(0)
        await first.wait_closed()
        assert first.close_code is not None and first.close_code != 1000  # keep the session resumable

        await rec.wait_for(lambda: len(rec.events) == 7)
        second = gw.connections[1]
        assert second.path == "/resume"
        resume = next(p for _, p in second.received if p["op"] == 6)
        assert resume["d"] == {"token": TOKEN, "session_id": "sess-1", "seq": 3}
        assert rec.names() == ["READY", "MESSAGE_CREATE:2", "MESSAGE_CREATE:3", "MESSAGE_CREATE:4",
                               "MESSAGE_CREATE:5", "RESUMED", "MESSAGE_CREATE:7"]
        assert client.seq == 7
        assert client.state is GatewayState.READY
        assert client.stats.identifies == 1 and client.stats.resumes == 1
        assert not any(p["op"] == 2 for _, p in second.received)
        states = [s for s, _ in rec.states]
        assert GatewayState.RESUMING in states and states[-1] is GatewayState.READY
    finally:
        await client.close()


async def test_reconnect_opcode_resumes(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def first(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, seq=4)
        await conn.send({"op": 7, "d": None})

    async def second(gw: FakeGateway, conn: GatewayConn) -> None:
        await accept_resume(conn, seq=5)

    gw = await gateway_factory(per_connection(first, second))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        await rec.wait_for(lambda: "RESUMED" in rec.names())
        conn0 = gw.connections[0]
        await conn0.wait_closed()
        assert conn0.close_code != 1000
        resume = next(p for _, p in gw.connections[1].received if p["op"] == 6)
        assert resume["d"]["seq"] == 4
        assert client.stats.resumes == 1 and client.stats.identifies == 1
        await client.wait_ready(timeout=WAIT)
    finally:
        await client.close()


@pytest.mark.parametrize("resumable", [True, False])
async def test_invalid_session(resumable: bool, gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def first(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, session="sess-1", seq=3)
        await conn.send({"op": 9, "d": resumable})

    async def second(gw: FakeGateway, conn: GatewayConn) -> None:
        if resumable:
            await accept_resume(conn, seq=4)
        else:
            await identify_ready(gw, conn, session="sess-2", seq=1)

    gw = await gateway_factory(per_connection(first, second))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        await rec.wait_for(lambda: len(rec.events) == 2)
        ops = [p["op"] for _, p in gw.connections[1].received if p["op"] in (2, 6)]
        if resumable:
            assert ops == [6] and client.session_id == "sess-1"
            assert rec.names() == ["READY", "RESUMED"]
        else:
            assert ops == [2] and client.session_id == "sess-2"
            assert gw.connections[1].path == "/"  # a new session starts at the main URL
            assert rec.names() == ["READY", "READY"]
            assert client.stats.identifies == 2 and client.stats.resumes == 0
        assert client.stats.invalid_sessions == 1
    finally:
        await client.close()


async def test_rejected_resume_falls_back_to_identify(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def first(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, seq=2)
        await conn.close(4000, "unknown error")

    async def reject(gw: FakeGateway, conn: GatewayConn) -> None:
        await conn.hello(LONG)
        await conn.recv(6)
        await conn.send({"op": 9, "d": False})

    async def fresh(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, session="sess-2")

    gw = await gateway_factory(per_connection(first, reject, fresh))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        await rec.wait_for(lambda: client.session_id == "sess-2")
        assert [c.path for c in gw.connections] == ["/", "/resume", "/"]
        assert client.stats.identifies == 2 and client.stats.resumes == 1
    finally:
        await client.close()


@pytest.mark.parametrize("how", ["4000", "4009", "drop"])
async def test_recoverable_close_resumes(how: str, gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def first(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, seq=9)
        if how != "drop":
            await conn.close(int(how))

    async def second(gw: FakeGateway, conn: GatewayConn) -> None:
        await accept_resume(conn, seq=10)

    gw = await gateway_factory(per_connection(first, second))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        if how == "drop":
            await rec.wait_for(lambda: client.seq == 9)
            await client.drop()
        await rec.wait_for(lambda: "RESUMED" in rec.names())
        resume = next(p for _, p in gw.connections[1].received if p["op"] == 6)
        assert resume["d"] == {"token": TOKEN, "session_id": "sess-1", "seq": 9}
        assert client.state is GatewayState.READY
    finally:
        await client.close()


async def test_close_4007_reidentifies(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def first(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, seq=3)
        await conn.close(4007, "Invalid seq")

    async def second(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn, session="sess-2")

    gw = await gateway_factory(per_connection(first, second))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        await rec.wait_for(lambda: client.session_id == "sess-2")
        assert not any(p["op"] == 6 for _, p in gw.connections[1].received)
        assert client.stats.identifies == 2
    finally:
        await client.close()


@pytest.mark.parametrize("code", [4004, 4013, 4015])
async def test_fatal_close_stops_for_good(code: int, gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await conn.hello(LONG)
        await conn.recv(2)
        await conn.close(code, "Authentication failed.")

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec)
    with pytest.raises(GatewayFatal) as caught:
        await client.start(timeout=WAIT)
    assert caught.value.close_code == code
    assert client.state is GatewayState.FATAL
    assert client.fatal_reason is not None and str(code) in client.fatal_reason
    assert rec.states[-1] == (GatewayState.FATAL, client.fatal_reason)
    assert TOKEN not in client.fatal_reason
    # Backoff would be ~10 ms: give a retry ample time to happen, then check none did.
    await asyncio.sleep(0.2)
    assert len(gw.connections) == 1
    with pytest.raises(GatewayFatal):
        await client.wait_ready(timeout=WAIT)
    await client.close()
    assert client.state is GatewayState.FATAL


async def test_unreachable_gateway_becomes_fatal_after_max_failures() -> None:
    port = await unused_port()
    attempts = 0

    async def url_provider() -> str:
        nonlocal attempts
        attempts += 1
        return f"ws://127.0.0.1:{port}"

    rec = Recorder()
    client = GatewayClient(token=TOKEN, identity=IDENTITY, url_provider=url_provider, on_dispatch=rec.on_dispatch,
                           on_state=rec.on_state, backoff_base=0.01, max_failures=3, rng=FixedRandom(0.5))
    with pytest.raises(GatewayFatal) as caught:
        await client.start(timeout=WAIT)
    assert client.stats.connects == 3
    assert "3 failed connection attempts" in caught.value.reason
    assert attempts == 3  # a failed connect re-asks for the URL
    assert [s for s, _ in rec.states].count(GatewayState.RECONNECTING) == 2
    await client.close()


async def test_server_closing_before_hello_counts_as_failure(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await conn.close(1011, "overloaded")

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec, max_failures=3)
    with pytest.raises(GatewayFatal):
        await client.start(timeout=WAIT)
    assert len(gw.connections) == 3
    assert client.stats.identifies == 0


async def test_unauthorized_gateway_lookup_is_fatal_at_once() -> None:
    async def url_provider() -> str:
        raise Unauthorized(401, 0, "401: Unauthorized")

    client = GatewayClient(token=TOKEN, identity=IDENTITY, url_provider=url_provider, on_dispatch=lambda t, d: None,
                           backoff_base=0.01)
    with pytest.raises(GatewayFatal) as caught:
        await client.start(timeout=WAIT)
    assert "401" in caught.value.reason
    assert client.stats.connects == 0


async def test_zlib_stream_split_frames(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    big = "x" * 5000

    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        assert conn.compress
        await conn.send({"op": 10, "d": {"heartbeat_interval": LONG}}, split=2)
        await conn.recv(2)
        await conn.send({"op": 0, "t": "READY", "s": 1,
                         "d": ready_payload(resume_url=gw.url + "/resume")}, split=3)
        for n in range(2, 6):
            await conn.dispatch("MESSAGE_CREATE", {"n": n, "content": big}, n, split=n)

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec, compress=True)
    await client.start(timeout=WAIT)
    try:
        await rec.wait_for(lambda: len(rec.events) == 5)
        assert gw.connections[0].query["compress"] == "zlib-stream"
        assert rec.names() == ["READY"] + [f"MESSAGE_CREATE:{n}" for n in range(2, 6)]
        assert all(d["content"] == big for t, d in rec.events[1:])
        assert client.seq == 5
    finally:
        await client.close()


async def test_failing_handler_does_not_break_the_connection(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn)
        for n in range(2, 5):
            await conn.dispatch("MESSAGE_CREATE", {"n": n}, n)

    gw = await gateway_factory(per_connection(script))
    seen: list[int] = []

    def handler(t: str, d: dict[str, Any]) -> None:  # a plain function is accepted too
        if t == "MESSAGE_CREATE":
            seen.append(d["n"])
            if d["n"] == 2:
                raise RuntimeError("handler bug")

    client = GatewayClient(token=TOKEN, identity=IDENTITY, url_provider=gw.url_provider, on_dispatch=handler)
    await client.start(timeout=WAIT)
    try:
        async with asyncio.timeout(WAIT):
            while len(seen) < 3:
                await asyncio.sleep(0.005)
        assert seen == [2, 3, 4]
        assert len(gw.connections) == 1 and client.state is GatewayState.READY
    finally:
        await client.close()


async def test_send_on_live_connection(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn)

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    try:
        await client.send(3, {"status": "idle", "since": 0, "activities": [], "afk": True})
        presence = await gw.connections[0].recv(3)
        assert presence["d"]["status"] == "idle"
    finally:
        await client.close()


async def test_send_budget_keeps_room_for_heartbeats(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def script(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn)

    gw = await gateway_factory(per_connection(script))
    rec = Recorder()
    client = make_client(gw, rec)
    await client.start(timeout=WAIT)
    conn = gw.connections[0]
    try:
        # 120 sends per 60 s, IDENTIFY was one and a few stay reserved for heartbeats.
        async with asyncio.timeout(WAIT):
            for _ in range(116):
                await client.send(3, {"status": "online"})
        blocked = asyncio.create_task(client.send(3, {"status": "idle"}))
        await asyncio.sleep(0.1)  # a token comes back every 0.5 s: still waiting
        assert not blocked.done()
        await conn.send({"op": 1, "d": None})  # a heartbeat still goes out at once
        beat = await conn.recv(1)
        assert beat["d"] == 1
        blocked.cancel()
        await asyncio.wait([blocked])
        assert sum(1 for _, p in conn.received if p["op"] == 3) == 116
    finally:
        await client.close()


async def test_restart_after_fatal(gateway_factory: Callable[..., Awaitable[FakeGateway]]) -> None:
    async def refuse(gw: FakeGateway, conn: GatewayConn) -> None:
        await conn.hello(LONG)
        await conn.recv(2)
        await conn.close(4004, "Authentication failed.")

    async def accept(gw: FakeGateway, conn: GatewayConn) -> None:
        await identify_ready(gw, conn)

    gw = await gateway_factory(per_connection(refuse, accept))
    rec = Recorder()
    client = make_client(gw, rec)
    with pytest.raises(GatewayFatal):
        await client.start(timeout=WAIT)
    await client.start(timeout=WAIT)  # e.g. the operator put in a new token and retried
    try:
        assert client.state is GatewayState.READY and client.fatal_reason is None
    finally:
        await client.close()
