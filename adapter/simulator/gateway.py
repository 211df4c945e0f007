"""The gateway: a websockets server speaking Discord's gateway protocol (PROTOCOL.md section 1).

HELLO, IDENTIFY -> READY, heartbeats and ACKs, RESUME with replay, RECONNECT, INVALID_SESSION,
Discord's close codes, and optional `compress=zlib-stream` (one compressor per socket, each
payload flushed with Z_SYNC_FLUSH so it ends in 00 00 ff ff).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import zlib
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapter.simulator.context import SimContext
from adapter.simulator.sessions import CONNECTION_EVENTS, GatewaySession
from adapter.simulator.state import UserState

log = logging.getLogger(__name__)

_TRACE = ['["gateway-prd-sim-0",{"micros":0}]']
SEND_LIMIT = 120  # client payloads per SEND_WINDOW seconds (then close 4008)
SEND_WINDOW = 60.0
SUPPORTED_VERSIONS = {"9", "10"}
_conn_ids = itertools.count(1)


class Connection:
    """One websocket. Dispatches come from the attached session's history through `pump`;
    control frames (HELLO, ACK, RECONNECT, INVALID_SESSION) are sent directly. Both go through
    `_send` under one lock, so the zlib stream sees frames in the order they hit the wire."""

    def __init__(self, ws: ServerConnection, compress: bool) -> None:
        self.id = next(_conn_ids)
        self.ws = ws
        self.compressor = zlib.compressobj() if compress else None
        self.session: GatewaySession | None = None
        self.cursor = 0  # last seq sent on this socket
        self.version = 9  # the gateway version the client asked for (?v=)
        self.last_heartbeat = time.monotonic()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._received: deque[float] = deque()

    @property
    def user_id(self) -> str | None:
        return self.session.user_id if self.session else None

    def notify(self) -> None:
        self._wake.set()

    async def _send(self, frame: bytes) -> None:
        async with self._lock:
            if self.compressor is not None:
                data = self.compressor.compress(frame) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send(data)
            else:
                await self.ws.send(frame.decode())

    async def send_op(self, op: int, d: Any) -> None:
        await self._send(msgspec.json.encode({"op": op, "d": d, "s": None, "t": None}))

    async def pump(self) -> None:
        while True:
            self._wake.clear()
            session = self.session
            if session is not None:
                for entry in session.entries_after(self.cursor):
                    if self.session is not session:
                        break
                    if entry.event in CONNECTION_EVENTS and entry.conn_id != self.id:
                        self.cursor = entry.seq  # belongs to an earlier socket: skip it
                        continue
                    await self._send(entry.payload)
                    self.cursor = entry.seq
            await self._wake.wait()

    def abort(self) -> None:
        """Drop the TCP connection with no close frame: the client sees 1006."""
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code, reason)
        except Exception:  # already gone
            pass

    def count_receive(self) -> bool:
        """Record one client payload; False once over Discord's 120 per minute."""
        now = time.monotonic()
        self._received.append(now)
        while self._received and now - self._received[0] > SEND_WINDOW:
            self._received.popleft()
        return len(self._received) <= SEND_LIMIT


class GatewayServer:
    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.connections: set[Connection] = set()
        self._server: Server | None = None
        self.url = ""

    async def start(self, host: str, port: int = 0) -> None:
        self._server = await serve(
            self._handle,
            host,
            port,
            compression=None,  # Discord's gateway does not negotiate permessage-deflate
            max_size=2**22,
            ping_interval=None,  # liveness is the Discord heartbeat's job, not websocket pings
        )
        sock = next(iter(self._server.sockets))
        bound_port = sock.getsockname()[1]
        self.url = f"ws://{_advertised(host)}:{bound_port}"

    async def stop(self) -> None:
        if self._server is not None:
            for conn in list(self.connections):
                conn.abort()
            self._server.close(close_connections=False)
            await self._server.wait_closed()
            self._server = None

    # --- control (used by faults)

    def connections_of(self, user_id: str | None) -> list[Connection]:
        return [c for c in self.connections if user_id is None or c.user_id == user_id]

    # --- the protocol

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "/").query)
        encoding = query.get("encoding", ["json"])[0]
        version = query.get("v", ["9"])[0]
        wants_zlib = query.get("compress", [""])[0] == "zlib-stream"
        conn = Connection(ws, compress=wants_zlib and self.ctx.config.compress_supported)
        if version not in SUPPORTED_VERSIONS:
            await conn.close(4012, "Invalid API version")
            return
        conn.version = int(version)
        if encoding != "json":
            await conn.close(4002, "Error while decoding payload.")
            return
        self.connections.add(conn)
        pump = asyncio.create_task(conn.pump())
        try:
            await conn.send_op(10, {"heartbeat_interval": self.ctx.config.heartbeat_interval_ms, "_trace": _TRACE})
            await self._read_loop(conn)
        except ConnectionClosed:
            pass
        finally:
            pump.cancel()
            self.connections.discard(conn)
            if conn.session is not None:
                self.ctx.hub.detach(conn.session, conn)
            try:
                await pump
            except (asyncio.CancelledError, ConnectionClosed):
                pass

    async def _read_loop(self, conn: Connection) -> None:
        interval = self.ctx.config.heartbeat_interval_ms / 1000
        while True:
            # A socket that stops beating is a zombie; Discord drops it.
            remaining = conn.last_heartbeat + interval * 1.5 + min(interval, 1.0) - time.monotonic()
            try:
                raw = await asyncio.wait_for(conn.ws.recv(), timeout=max(remaining, 0.01))
            except TimeoutError:
                await conn.close(4009, "Session timed out.")
                return
            if not conn.count_receive():
                await conn.close(4008, "Rate limited.")
                return
            try:
                payload = json.loads(raw)
                op = payload["op"]
                d = payload.get("d")
            except (ValueError, KeyError, TypeError):
                await conn.close(4002, "Error while decoding payload.")
                return
            if op == 1:
                conn.last_heartbeat = time.monotonic()
                await conn.send_op(11, None)
            elif op == 2:
                if not await self._identify(conn, d):
                    return
            elif op == 6:
                if not await self._resume(conn, d):
                    return
            elif op in (3, 4, 8, 14, 36, 37):
                # presence, voice, member requests, lazy guilds...: accepted and ignored
                if conn.session is None:
                    await conn.close(4003, "Not authenticated.")
                    return
            else:
                await conn.close(4001, "Unknown opcode.")
                return

    def _user(self, d: Any) -> UserState | None:
        token = d.get("token") if isinstance(d, dict) else None
        return self.ctx.world.user_for_token(token if isinstance(token, str) else None)

    async def _identify(self, conn: Connection, d: Any) -> bool:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return False
        user = self._user(d)
        if user is None:
            await conn.close(4004, "Authentication failed.")
            return False
        session = self.ctx.hub.create(user.id)
        conn.session = session
        conn.cursor = session.seq
        self.ctx.hub.attach(session, conn)
        session.append("READY", self._ready(user, session, conn.version), conn_id=conn.id)
        session.append(
            "READY_SUPPLEMENTAL",
            {"guilds": [{"id": g, "voice_states": []} for g in self._guild_ids(user)], "merged_presences": {}},
            conn_id=conn.id,
        )
        return True

    async def _resume(self, conn: Connection, d: Any) -> bool:
        user = self._user(d)
        if user is None:
            await conn.close(4004, "Authentication failed.")
            return False
        session_id = d.get("session_id") if isinstance(d, dict) else None
        seq = d.get("seq") if isinstance(d, dict) else None
        seq = seq if isinstance(seq, int) else 0
        session = self.ctx.hub.get(session_id) if isinstance(session_id, str) else None
        refused = self.ctx.faults.take_refuse_resume()
        if refused or session is None or session.user_id != user.id or not session.can_replay_from(seq):
            if session is not None and session.user_id == user.id:
                self.ctx.hub.invalidate(session.id)
            await conn.send_op(9, False)
            return True  # the client may IDENTIFY on this socket or reconnect
        old = session.connection
        if old is not None and old is not conn and isinstance(old, Connection):
            old.abort()
        conn.session = session
        conn.cursor = seq
        self.ctx.hub.attach(session, conn)
        session.append("RESUMED", {"_trace": _TRACE}, conn_id=conn.id)
        return True

    def _guild_ids(self, user: UserState) -> list[str]:
        return [g.id for g in self.ctx.world.guilds.values() if user.id in g.member_ids]

    def _ready(self, user: UserState, session: GatewaySession, version: int) -> dict[str, Any]:
        world = self.ctx.world
        guilds = []
        for guild_id in self._guild_ids(user):
            guild = world.guilds[guild_id]
            channels = [
                {"id": c, "type": 0, "name": world.channels[c].name, "guild_id": guild.id, "position": i}
                for i, c in enumerate(guild.channel_ids)
            ]
            guilds.append(
                {
                    "id": guild.id,
                    "name": guild.name,
                    "properties": {"id": guild.id, "name": guild.name, "owner_id": guild.member_ids[0]},
                    "channels": channels,
                    "member_count": len(guild.member_ids) + 2,
                    "lazy": True,
                    "unavailable": False,
                }
            )
        me = msgspec.to_builtins(user.user) | {
            "verified": True,
            "email": None,
            "mfa_enabled": False,
            "premium_type": 0,
            "flags": 0,
        }
        # a user's READY lists its DM channels, recipients by id
        dms = [
            {"id": c.id, "type": c.type, "last_message_id": c.last_message_id, "flags": 0, "recipient_ids": list(c.recipient_ids)}
            for c in world.dms_of(user.id)
        ]
        return {
            "v": version,
            "user": me,
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "guilds": guilds,
            "private_channels": dms,
            "relationships": [],
            "users": [],
            "sessions": [{"session_id": session.id, "status": "online", "activities": []}],
            "country_code": "US",
            "_trace": _TRACE,
        }


def _advertised(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
