from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapter.simulator import Simulator, SimulatorConfig
from .harness import Gateway, Rest

@pytest.fixture(autouse=True)
def _default_world(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's own tests say which behaviour they check: a suite-wide
    MJ_SIMULATOR_BEHAVIOUR (meant for the adapter's tests) must not flip them."""
    monkeypatch.delenv("MJ_SIMULATOR_BEHAVIOUR", raising=False)


# Fast and small: a fast job takes well under 0.2 s, images are tiny.
FAST: dict[str, Any] = {"speed": 500.0, "grid_long_side": 128, "preview_long_side": 32}


def fast_config(**overrides: Any) -> SimulatorConfig:
    return SimulatorConfig(**{**FAST, **overrides})


class Client:
    """One account, connected: a gateway session plus REST."""

    def __init__(self, sim: Simulator, gw: Gateway, rest: Rest, ready: dict[str, Any]) -> None:
        self.sim = sim
        self.gw = gw
        self.rest = rest
        self.ready = ready
        self.session_id: str = ready["session_id"]
        self.account = rest.account
        self.user_id = self.account.user_id

    async def interaction_id(self, nonce: str) -> str:
        d = await self.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
        return d["id"]

    async def result(self, interaction_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The finished result (a bot message with an attachment and buttons) of an interaction."""
        return await self.gw.event(
            "MESSAGE_CREATE",
            lambda d: (d.get("interaction_metadata") or {}).get("id") == interaction_id and bool(d["attachments"]) and bool(d["components"]),
            timeout,
        )

    async def imagine(self, prompt: str) -> dict[str, Any]:
        r, nonce = await self.rest.imagine(self.session_id, prompt)
        assert r.status_code == 204, r.text
        return await self.result(await self.interaction_id(nonce))

    async def press(self, message: dict[str, Any], custom_id: str) -> str:
        """Press and return the interaction id."""
        r, nonce = await self.rest.press(self.session_id, message, custom_id)
        assert r.status_code == 204, r.text
        d = await self.gw.wait(lambda f: f.get("t") == "INTERACTION_CREATE" and f["d"]["nonce"] == nonce)
        return d["d"]["id"]


async def connect_client(sim: Simulator, index: int = 0, *, compress: bool = False) -> Client:
    account = sim.accounts[index]
    gw = await Gateway.open(sim.gateway_url, compress=compress)
    ready = await gw.identify(account.token)
    return Client(sim, gw, Rest(sim, account), ready)


async def close_client(client: Client) -> None:
    await client.gw.close()
    await client.rest.aclose()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(fast_config(accounts=2))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[Client]:
    c = await connect_client(sim)
    try:
        yield c
    finally:
        await close_client(c)
