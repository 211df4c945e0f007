"""The adapter's CPU per four-image job, with real-size photo-like grids. Run by hand (loopback
only; tests/bench is not collected by pytest):

    .venv/bin/python tests/bench/bench_job_cpu.py [--jobs 20] [--concurrency 4] [--speed 200]
                                                  [--mode url|fetch|b64] [--micro-only]

It starts `mj-adapter simulator --photo-images --grid-long-side 2048` in its own process (so the
simulator's rendering is not counted) and `mj-adapter serve` pointed at it, runs one warm-up job,
then N `images.generate(n=4)` jobs, waits for the server to go idle, and prints the server
process's CPU (utime + stime from /proc/<pid>/stat) per job. Modes:

- url: `response_format=url` (the answer carries the four tile URLs, nothing is downloaded)
- fetch: url, then the client downloads the four tiles, as a chat UI or an SDK user would
- b64: `response_format=b64_json` (the four PNG tiles inside the answer)

Then a micro-benchmark of the split itself: one 2048x2048 photo-like grid (the simulator's, same
generator) through `ResultIngester`'s path minus the download: the grid stored, split into four
PNG tiles, the tiles stored (a local image store in a temporary directory), in CPU ms (the
process's own time, threads included), best and median of a few rounds.

Figures depend on the machine; compare runs on the same one. Results: tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from server_process import KEY_A, ServerProcess, free_port, stop_process  # noqa: E402

HEADERS = {"Authorization": f"Bearer {KEY_A}"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """utime + stime of a process (all its threads), in ms."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields after the command: state is [0]; utime and stime are the 14th and 15th of the line
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


class RealGridSimulator:
    """`mj-adapter simulator` with real-size photo-like grids, in its own process."""

    def __init__(self, tmp: Path, speed: float, accounts: int, grid: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "adapter", "simulator", "--port", str(self.port), "--speed", str(speed),
            "--accounts", str(accounts), "--grid-long-side", str(grid), "--photo-images",
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=open(tmp / "simulator.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.base + "/_simulator/accounts", timeout=1)
                if r.status_code == 200:
                    self.accounts = r.json()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.proc.kill()
        raise TimeoutError((tmp / "simulator.log").read_text())

    def account(self, i: int) -> dict[str, object]:
        a = self.accounts[i]
        return {
            "token": a["token"], "guild_id": a["guild_id"], "channel_id": a["channel_id"],
            "rest_base": self.base + "/api/v9", "inpaint_submit_url": self.base + "/inpaint/api/submit-job",
            "min_gap_seconds": 0.01, "gap_jitter_seconds": 0, "concurrency": 3, "queue_size": 50,
        }  # fmt: skip

    def stop(self) -> None:
        stop_process(self.proc)


async def one_job(client: httpx.AsyncClient, server: ServerProcess, i: int, mode: str) -> bool:
    body = {"model": "midjourney", "prompt": f"a lighthouse at dawn, study {i}", "n": 4}
    body["response_format"] = "b64_json" if mode == "b64" else "url"
    r = await client.post(server.v1 + "/images/generations", json=body, headers=HEADERS, timeout=300)
    if r.status_code != 200:
        print(f"  job {i}: {r.status_code} {r.text[:200]}")
        return False
    data = r.json()["data"]
    if len(data) != 4:
        return False
    if mode == "fetch":
        for d in data:
            got = await client.get(d["url"], timeout=60)
            if got.status_code != 200 or not got.content.startswith(b"\x89PNG"):
                return False
    return True


async def settle(pid: int, quiet_ms: float = 20, every: float = 0.5, limit: float = 60) -> None:
    """Until the server uses less than `quiet_ms` of CPU in `every` seconds (background work done)."""
    deadline = time.monotonic() + limit
    last = cpu_ms(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        now = cpu_ms(pid)
        if now - last < quiet_ms:
            return
        last = now


async def end_to_end(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as d:
        tmp = Path(d)
        sim = RealGridSimulator(tmp, args.speed, args.accounts, args.grid)
        server = None
        try:
            env = {
                "MJ_ADAPTER_LOG_LEVEL": "WARNING",
                "MJ_ADAPTER_ACCOUNTS": json.dumps([sim.account(i) for i in range(args.accounts)]),
                "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1",
            }
            server = ServerProcess(tmp / "server", env=env).start(timeout=60)
            assert server.proc is not None
            pid = server.proc.pid
            async with httpx.AsyncClient() as client:
                for mode in args.mode:
                    await one_job(client, server, -1, mode)  # warm-up: imports, connections, caches
                    await settle(pid)
                    before = cpu_ms(pid)
                    started = time.perf_counter()
                    sem = asyncio.Semaphore(args.concurrency)

                    async def run(i: int, mode: str = mode) -> bool:
                        async with sem:
                            return await one_job(client, server, i, mode)

                    ok = await asyncio.gather(*(run(i) for i in range(args.jobs)))
                    elapsed = time.perf_counter() - started
                    await settle(pid)
                    spent = cpu_ms(pid) - before
                    print(
                        f"end-to-end {mode:<6} jobs {sum(ok)}/{args.jobs}  adapter CPU {spent / args.jobs:7.1f} ms/job  "
                        f"({args.jobs / elapsed:.2f} jobs/s wall, simulator in its own process)"
                    )
        finally:
            if server is not None:
                server.stop()
            sim.stop()


def micro(rounds: int, grid: int) -> None:
    from adapter.domain.actions import Action
    from adapter.domain.jobs import Job
    from adapter.engine.results import ResultIngester
    from adapter.media.fetch import FetchedImage
    from adapter.media.images import split_grid
    from adapter.media.store import LocalImageStore
    from adapter.simulator import images as sim_images

    picture = sim_images.render_photo_grid((grid, grid), [(200, 120, 60), (60, 120, 200), (120, 200, 60), (200, 200, 200)], 2024)
    png = sim_images.encode_png(picture)
    print(f"micro: one {grid}x{grid} photo-like grid, {len(png) / 1e6:.2f} MB PNG")

    class InMemory:  # the download is measured end to end; here only what follows it
        async def fetch(self, url: str, **_: object) -> FetchedImage:
            return FetchedImage(data=png, content_type="image/png", width=grid, height=grid, format="png", url=url)

    from adapter.backends.base import JobOutput
    from adapter.domain.buttons import Button

    output = JobOutput(
        account_id="bench",
        image_url="http://127.0.0.1/grid.png",
        buttons=[Button(custom_id=f"MJ::JOB::upsample::{i}::0b2e7c36-0000-4000-8000-000000000000", label=f"U{i}") for i in range(1, 5)],
    )

    def cpu() -> float:
        return time.process_time() * 1000

    splits: list[float] = []
    totals: list[float] = []
    sizes: list[int] = []
    with tempfile.TemporaryDirectory(prefix="bench-split-") as d:
        store = LocalImageStore(d)
        ingester = ResultIngester(InMemory(), store)  # type: ignore[arg-type]
        for r in range(rounds):
            t0 = cpu()
            tiles = split_grid(png)
            splits.append(cpu() - t0)
            sizes = [len(t) for t in tiles]
            job = Job(id=f"bench{r}", owner="bench", action=Action.IMAGINE, prompt="bench")
            t0 = cpu()
            result = asyncio.run(ingester.ingest(job, output))
            totals.append(cpu() - t0)
            assert result is not None and len(result.tiles) == 4
    print(f"micro: split_grid alone           best {min(splits):6.1f} ms  median {statistics.median(splits):6.1f} ms CPU")
    print(f"micro: ingest (store grid, split, store 4 tiles)  best {min(totals):6.1f} ms  median {statistics.median(totals):6.1f} ms CPU")
    print(f"micro: tiles {', '.join(f'{s / 1e6:.2f}' for s in sizes)} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--speed", type=float, default=200)
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--grid", type=int, default=2048, help="grid side in pixels")
    parser.add_argument("--mode", action="append", choices=("url", "fetch", "b64"), help="repeatable; default url, fetch, b64")
    parser.add_argument("--rounds", type=int, default=5, help="micro-benchmark rounds")
    parser.add_argument("--micro-only", action="store_true")
    args = parser.parse_args()
    args.mode = args.mode or ["url", "fetch", "b64"]
    micro(args.rounds, args.grid)
    if not args.micro_only:
        asyncio.run(end_to_end(args))


if __name__ == "__main__":
    main()
