"""Throughput and latency of `images.generate` against the simulator, next to a bare endpoint of
the same app. Run by hand (loopback only):

    .venv/bin/python tests/bench/bench_images.py [--requests 200] [--concurrency 16] [--speed 5000]

It starts `mj-adapter serve` in demo mode on a free port with a very fast simulator, warms up,
then measures. Figures depend on the machine; compare runs on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from server_process import KEY_A, ServerProcess  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def measure(name: str, total: int, concurrency: int, call) -> None:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        nonlocal errors
        async with sem:
            t0 = time.perf_counter()
            ok = await call(i)
            latencies.append(time.perf_counter() - t0)
            errors += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    print(
        f"{name:<28} {total / elapsed:8.1f} req/s   p50 {pct(ms, 50):8.1f} ms   p90 {pct(ms, 90):8.1f} ms   "
        f"p99 {pct(ms, 99):8.1f} ms   max {max(ms):8.1f} ms   errors {errors}/{total}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--speed", type=float, default=5000)
    parser.add_argument("--accounts", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(
            Path(tmp),
            env={
                "MJ_ADAPTER_SIMULATOR_SPEED": str(args.speed),
                "MJ_ADAPTER_SIMULATOR_ACCOUNTS": str(args.accounts),
                "MJ_ADAPTER_LOG_LEVEL": "WARNING",
            },
        ).start()
        try:
            headers = {"Authorization": f"Bearer {KEY_A}"}
            limits = httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=args.concurrency * 2)
            async with httpx.AsyncClient(base_url=server.base, headers=headers, timeout=120, limits=limits) as client:

                async def bare(i: int) -> bool:
                    return (await client.get("/v1/models")).status_code == 200

                async def generate(i: int) -> bool:
                    r = await client.post("/v1/images/generations", json={"model": "midjourney", "prompt": f"bench prompt {i}", "n": 4})
                    return r.status_code == 200 and len(r.json()["data"]) == 4

                await measure("warm-up", 10, 4, generate)
                print(f"mj-adapter benchmark: {args.requests} requests, concurrency {args.concurrency}, simulator speed x{args.speed:g}, {args.accounts} accounts")
                await measure("GET /v1/models (bare)", args.requests * 5, args.concurrency, bare)
                await measure("images.generate n=4", args.requests, args.concurrency, generate)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
