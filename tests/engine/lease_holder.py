"""Run by tests/engine/test_leases.py in a separate process: holds leases until killed.

    python lease_holder.py <redis url> <prefix> <replica id> <ttl> <account id>...

Prints "HOLDING <n>" (flushed) each time the number of held leases changes."""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from adapter.engine.leases import LeaseManager


async def main(url: str, prefix: str, replica_id: str, ttl: float, accounts: list[str]) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    manager = LeaseManager(client, prefix=prefix, replica_id=replica_id, ttl_seconds=ttl)
    manager.start(accounts)
    last = -1
    while True:
        n = len(manager.held())
        if n != last:
            print(f"HOLDING {n}", flush=True)
            last = n
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    url, prefix, replica_id, ttl, *accounts = sys.argv[1:]
    asyncio.run(main(url, prefix, replica_id, float(ttl), accounts))
