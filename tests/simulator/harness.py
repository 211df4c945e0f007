"""A deliberately raw Discord client for the simulator tests: websockets + httpx and nothing
from adapter.backends, so the simulator is checked against the protocol, not against the
project's own client."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from adapter.simulator import SimAccount, Simulator
from adapter.simulator.commands import MIDJOURNEY_COMMAND_IDS

MJ_APP = "936929561302675456"
NIJI_APP = "1022952195194359889"
ZLIB_SUFFIX = b"\x00\x00\xff\xff"
TIMEOUT = 5.0


class Gateway:
    """One gateway socket. A reader task keeps every payload in `frames` (in order)."""

    def __init__(self, ws: ClientConnection, compress: bool) -> None:
        self.ws = ws
        self.compress = compress
        self.inflater = zlib.decompressobj()
        self.frames: list[dict[str, Any]] = []
        self.raw_frames: list[str | bytes] = []
        self._buffer = bytearray()
        self._new = asyncio.Event()
        self._taken: set[int] = set()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, *, compress: bool = False, query: str | None = None) -> Gateway:
        q = query if query is not None else "v=9&encoding=json" + ("&compress=zlib-stream" if compress else "")
        ws = await connect(f"{url}/?{q}", compression=None, ping_interval=None, max_size=2**24)
        return cls(ws, compress)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.raw_frames.append(raw)
                if isinstance(raw, bytes):
                    self._buffer.extend(raw)
                    if not self._buffer.endswith(ZLIB_SUFFIX):
                        continue
                    text = self.inflater.decompress(bytes(self._buffer)).decode()
                    self._buffer.clear()
                else:
                    text = raw
                self.frames.append(json.loads(text))
                self._new.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self.closed.set()
            self._new.set()

    async def send(self, op: int, d: Any) -> None:
        await self.ws.send(json.dumps({"op": op, "d": d}))

    async def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first frame (oldest first) matching `match` not returned before."""
        async with asyncio.timeout(timeout):
            while True:
                for i, frame in enumerate(self.frames):
                    if i not in self._taken and match(frame):
                        self._taken.add(i)
                        return frame
                if self.closed.is_set():
                    raise AssertionError(f"gateway closed ({self.close_code}) before the expected frame")
                self._new.clear()
                await self._new.wait()

    async def op(self, op: int, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.wait(lambda f: f.get("op") == op, timeout)

    async def event(self, t: str, match: Callable[[Any], bool] | None = None, timeout: float = TIMEOUT) -> Any:
        frame = await self.wait(lambda f: f.get("t") == t and (match is None or match(f["d"])), timeout)
        return frame["d"]

    def dispatches(self, t: str | None = None) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("op") == 0 and (t is None or f.get("t") == t)]

    @property
    def last_seq(self) -> int:
        seqs = [f["s"] for f in self.frames if f.get("op") == 0]
        return max(seqs) if seqs else 0

    async def identify(self, token: str) -> dict[str, Any]:
        await self.op(10)
        await self.send(2, {"token": token, "capabilities": 16381, "compress": False, "properties": {"os": "Linux", "browser": "Chrome"}})
        return await self.event("READY")

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        async with asyncio.timeout(timeout):
            await self.closed.wait()
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass


class Rest:
    def __init__(self, sim: Simulator, account: SimAccount) -> None:
        self.sim = sim
        self.account = account
        self.http = httpx.AsyncClient(base_url=sim.rest_base, headers={"Authorization": account.token}, timeout=TIMEOUT)
        self._nonce = 1_000_000
        self._index: dict[str, Any] | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    def nonce(self) -> str:
        self._nonce += 1
        return str(self._nonce)

    async def command_index(self) -> dict[str, Any]:
        r = await self.http.get(f"/guilds/{self.account.guild_id}/application-command-index")
        r.raise_for_status()
        return r.json()

    async def command_version(self, name: str, app: str = MJ_APP, *, refresh: bool = False) -> tuple[str, str]:
        if self._index is None or refresh:
            self._index = await self.command_index()
        index = self._index
        cmd = next(c for c in index["application_commands"] if c["name"] == name and c["application_id"] == app)
        return cmd["id"], cmd["version"]

    async def command(
        self, session_id: str, name: str, options: list[dict[str, Any]] | None = None, *,
        attachments: list[dict[str, Any]] | None = None, app: str = MJ_APP, version: str | None = None, nonce: str | None = None,
    ) -> tuple[httpx.Response, str]:
        cid, current = await self.command_version(name, app)
        nonce = nonce or self.nonce()
        body = {
            "type": 2, "application_id": app, "guild_id": self.account.guild_id, "channel_id": self.account.channel_id,
            "session_id": session_id, "nonce": nonce,
            "data": {"version": version or current, "id": cid, "name": name, "type": 1, "options": options or [], "attachments": attachments or []},
        }
        return await self.http.post("/interactions", json=body), nonce

    async def imagine(self, session_id: str, prompt: str, **kw: Any) -> tuple[httpx.Response, str]:
        return await self.command(session_id, "imagine", [{"type": 3, "name": "prompt", "value": prompt}], **kw)

    async def press(self, session_id: str, message: dict[str, Any], custom_id: str) -> tuple[httpx.Response, str]:
        nonce = self.nonce()
        body = {
            "type": 3, "nonce": nonce, "guild_id": self.account.guild_id, "channel_id": self.account.channel_id,
            "message_flags": message.get("flags", 0), "message_id": message["id"], "application_id": message["author"]["id"],
            "session_id": session_id, "data": {"component_type": 2, "custom_id": custom_id},
        }
        return await self.http.post("/interactions", json=body), nonce

    async def submit_modal(self, session_id: str, modal: dict[str, Any], values: dict[str, str], app: str = MJ_APP) -> tuple[httpx.Response, str]:
        nonce = self.nonce()
        body = {
            "type": 5, "application_id": app, "channel_id": self.account.channel_id, "guild_id": self.account.guild_id,
            "session_id": session_id, "nonce": nonce,
            "data": {"id": modal["id"], "custom_id": modal["custom_id"],
                     "components": [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in values.items()]},
        }
        return await self.http.post("/interactions", json=body), nonce

    async def upload(self, filename: str, data: bytes, content_type: str = "image/png") -> str:
        r = await self.http.post(f"/channels/{self.account.channel_id}/attachments", json={"files": [{"filename": filename, "file_size": len(data), "id": "0"}]})
        r.raise_for_status()
        slot = r.json()["attachments"][0]
        put = await httpx.AsyncClient(timeout=TIMEOUT).put(slot["upload_url"], content=data, headers={"content-type": content_type})
        assert put.status_code == 200, put.text
        return slot["upload_filename"]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components", []) for c in row["components"]]


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [b["custom_id"] for b in buttons(message) if b.get("custom_id")]


def button_id(message: dict[str, Any], *, label: str | None = None, emoji: str | None = None) -> str:
    for b in buttons(message):
        if (label is not None and b.get("label") == label) or (emoji is not None and (b.get("emoji") or {}).get("name") == emoji):
            return b["custom_id"]
    raise AssertionError(f"no button {label or emoji} in {custom_ids(message)}")


__all__ = ["MIDJOURNEY_COMMAND_IDS", "Gateway", "Rest", "MJ_APP", "NIJI_APP", "buttons", "custom_ids", "button_id"]
