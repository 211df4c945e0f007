"""Gateway sessions and event routing.

A session outlives its websocket: every dispatch is numbered and kept (bounded) in the session's
history whether or not a socket is attached, so a RESUME on a new socket replays exactly what
was missed. Sockets only carry what the session already holds.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any, NamedTuple, Protocol

import msgspec

from adapter.simulator.state import World

# Dispatches that describe one connection, not the session: never replayed to another socket.
CONNECTION_EVENTS = frozenset({"READY", "READY_SUPPLEMENTAL", "RESUMED"})
# A route key (never a session id: those are hex) meaning "every live session of this user".
USER_ROUTE = "user:"


class Entry(NamedTuple):
    seq: int
    event: str
    payload: bytes  # the whole `{"op":0,...}` frame, encoded once
    conn_id: int  # the socket a connection event belongs to (0 for session events)


class Attachable(Protocol):
    """A live socket attached to a session (gateway.Connection)."""

    id: int

    def notify(self) -> None: ...


class GatewaySession:
    def __init__(self, session_id: str, user_id: str, history_size: int) -> None:
        self.id = session_id
        self.user_id = user_id
        self.seq = 0
        self.history: deque[Entry] = deque(maxlen=history_size)
        self.connection: Attachable | None = None
        self.disconnected_at: float | None = None
        self.valid = True

    def append(self, event: str, data: Any, conn_id: int = 0) -> Entry:
        self.seq += 1
        frame = msgspec.json.encode({"op": 0, "s": self.seq, "t": event, "d": data})
        entry = Entry(self.seq, event, frame, conn_id)
        self.history.append(entry)
        if self.connection is not None:
            self.connection.notify()
        return entry

    def can_replay_from(self, seq: int) -> bool:
        """True when every dispatch after `seq` is still in the history."""
        if seq > self.seq or seq < 0:
            return False
        if seq == self.seq:
            return True
        return bool(self.history) and self.history[0].seq <= seq + 1

    def entries_after(self, seq: int) -> list[Entry]:
        return [e for e in self.history if e.seq > seq]


class SessionHub:
    def __init__(self, world: World, *, ttl_seconds: float, history_size: int) -> None:
        self.world = world
        self.ttl_seconds = ttl_seconds
        self.history_size = history_size
        self.sessions: dict[str, GatewaySession] = {}

    # --- lifecycle

    def create(self, user_id: str) -> GatewaySession:
        self._expire()
        session = GatewaySession(secrets.token_hex(16), user_id, self.history_size)
        self.sessions[session.id] = session
        return session

    def get(self, session_id: str) -> GatewaySession | None:
        self._expire()
        session = self.sessions.get(session_id)
        return session if session is not None and session.valid else None

    def is_live(self, session_id: str | None, user_id: str) -> bool:
        if not session_id:
            return False
        session = self.get(session_id)
        return session is not None and session.user_id == user_id

    def invalidate(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            session.valid = False

    def detach(self, session: GatewaySession, conn: Attachable) -> None:
        if session.connection is conn:
            session.connection = None
            session.disconnected_at = time.monotonic()

    def attach(self, session: GatewaySession, conn: Attachable) -> None:
        session.connection = conn
        session.disconnected_at = None

    def sessions_of(self, user_id: str | None = None) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if user_id is None or s.user_id == user_id]

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, session in list(self.sessions.items()):
            if session.disconnected_at is not None and now - session.disconnected_at > self.ttl_seconds:
                self.invalidate(sid)

    # --- routing

    def interaction_route(self, session_id: str | None, user_id: str, *, fallback: bool) -> str:
        """Where the INTERACTION_* events of an interaction go (the key `to_session` takes): the
        named session when it is a live session of this user; otherwise nowhere (Discord sends
        them to the named session only), or, with `fallback`, to all the user's live sessions."""
        if self.is_live(session_id, user_id):
            return session_id or ""
        return f"{USER_ROUTE}{user_id}" if fallback else ""

    def to_session(self, session_id: str, event: str, data: Any) -> None:
        if session_id.startswith(USER_ROUTE):
            self.to_user(session_id[len(USER_ROUTE) :], event, data)
            return
        session = self.sessions.get(session_id)
        if session is not None and session.valid:
            session.append(event, data)

    def to_user(self, user_id: str, event: str, data: Any) -> None:
        for session in self.sessions_of(user_id):
            session.append(event, data)

    def to_channel(self, channel_id: str, event: str, data: Any) -> None:
        for user_id in self.world.members_of_channel(channel_id):
            self.to_user(user_id, event, data)
