"""What the engine needs from the other replicas of a cluster (implemented by engine.cluster).

With several replicas, an account is driven by the one replica holding its lease; the others see
it as remote. A job placed on a remote account is handed to its holder, and what only the
holder can do (stop a running job at Midjourney, ask for a seed, pause) is asked of it.
"""

from __future__ import annotations

from typing import Literal, Protocol

PeerOp = Literal["cancel", "seed", "pause", "resume"]


class Peers(Protocol):
    def may_send(self, account_id: str) -> bool:
        """True while this replica holds the account's lease (the fence before every send)."""
        ...

    async def hand_over(self, account_id: str, job_id: str) -> None:
        """Tell the account's holder that a NOT_START job in the store is now its to run."""
        ...

    async def ask(self, account_id: str, op: PeerOp, job_id: str = "", reason: str = "") -> None:
        """Ask the account's holder to act; the outcome shows in the store (and the job bus)."""
        ...
