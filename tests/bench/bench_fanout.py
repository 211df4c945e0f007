"""N streams on one job: what each watcher costs. Run by hand (loopback only):

    .venv/bin/python tests/bench/bench_fanout.py [--n 100,1000] [--format png,webp] [--kind images]
    .venv/bin/python tests/bench/bench_fanout.py --n 10000 --format webp   # raises the fd limit

Per (format, N) it starts a fresh `mj-adapter serve` in demo mode (the simulator inside it, one
account, loopback), makes one warm-up image, then opens N streaming requests with one
Idempotency-Key: the first makes the job, the others attach to it. The job is a relax-mode one, so
the simulator waits a few seconds before it starts while the streams attach (a warning is
printed if an event came before every stream was open). It records when each SSE event reaches
each stream.

It prints:
- KB RSS per stream: (RSS with N streams attached - RSS before) / N, and the same for the peak
  while the job runs;
- per event (a preview, by its progress; the completed image; the end of the stream), how many
  streams got it and the first-to-last spread across them: p50 / p99 / max of the arrival
  offsets from the first stream that got it;
- the files stored for the job by kind (result, tiles, previews, converted copies per format):
  `images/<job>/` in the server's data dir.

Kinds: `images` (/v1/images/generations, stream=true, n=1, `output_format`; previews arrive as
partial_image events in the asked format), `chat` (/v1/chat/completions, stream=true; previews are
links). The client is one process of asyncio protocols that only look at each event's first and
last bytes, so its own cost stays small; the same machine runs both sides, so compare runs on one
machine only. Not collected by pytest
(`--ignore=tests/bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from server_process import KEY_A, ServerProcess  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when imported, not run
from bench_memory import Sampler, rss  # noqa: E402

KB = 1024


# --- server memory --------------------------------------------------------------------------------


async def settle(pid: int, every: float = 0.5, tolerance: int = 512 * KB, limit: float = 30.0) -> int:
    last = rss(pid)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        now = rss(pid)
        if abs(now - last) < tolerance:
            return now
        last = now
    return last


# --- a minimal SSE client -------------------------------------------------------------------------

_PROGRESS = re.compile(rb'"progress":(\d+)')
_INDEX = re.compile(rb'"index":(\d+)')
_URL = re.compile(rb'"url":"([^"]+)"')
_JOB = re.compile(rb'"job_id":"([^"]+)"')
_FINISH = re.compile(rb'"finish_reason":"([a-z_]+)"')


class Stream:
    """One streaming request over its own connection; records (event key, arrival time)."""

    def __init__(self, i: int) -> None:
        self.i = i
        self.status = 0
        self.events: list[tuple[str, float]] = []
        self.urls: set[str] = set()
        self.job_id: str | None = None
        self.error: str | None = None
        self.done = False
        self.opened = asyncio.Event()

    def _record(self, raw: bytes, kind: str) -> None:
        name = b""
        data = b""
        for line in raw.splitlines():
            if line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if not data and not name:
            return  # a keepalive comment
        now = time.monotonic()
        if data == b"[DONE]":
            self.events.append(("end", now))
            self.done = True
            return
        head = data[:200]
        if self.job_id is None and (m := _JOB.search(data[-2000:]) or _JOB.search(head)):
            self.job_id = m.group(1).decode()
        if kind == "images":
            if name.endswith(b".partial_image"):
                p = _PROGRESS.search(data[-400:])
                self.events.append((f"preview@{p.group(1).decode() if p else '?'}", now))
            elif name.endswith(b".completed"):
                tail = data[-2000:]
                idx = _INDEX.search(tail)
                if u := _URL.search(tail):
                    self.urls.add(u.group(1).decode())
                self.events.append((f"completed#{idx.group(1).decode() if idx else '?'}", now))
            elif name == b"error":
                self.error = data[:200].decode(errors="replace")
                self.events.append(("error", now))
        else:
            if f := _FINISH.search(data):
                self.events.append((f"finish:{f.group(1).decode()}", now))
            elif b"![" in data:
                self.events.append(("preview-link" if b"%" in data and b"/images/" in data and b"Image 1" not in data else "result-links", now))

    async def run(self, host: str, port: int, request: bytes, kind: str) -> None:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        try:
            transport, _ = await loop.create_connection(lambda: _SSEProtocol(self, request, kind, finished), host, port)
        except OSError as exc:
            self.error = f"connect: {exc}"
            self.opened.set()
            return
        try:
            await finished
        finally:
            self.opened.set()
            transport.close()


class _SSEProtocol(asyncio.Protocol):
    """HTTP/1.1 response with a chunked body, one SSE event per chunk (sse-starlette sends each
    event as one ASGI message, uvicorn writes each as one chunk). Received bytes are appended to
    one bytearray and consumed in place: only an event's first and last bytes are looked at, so
    the client costs little per byte and the spread measured is mostly the server's."""

    def __init__(self, stream: Stream, request: bytes, kind: str, finished: asyncio.Future[None]) -> None:
        self.stream, self.request, self.kind, self.finished = stream, request, kind, finished
        self.buf = bytearray()
        self.pos = 0
        self.headers_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._parse()
        except ValueError as exc:
            self._end(f"bad response: {exc}")
        if self.pos > 65536:
            del self.buf[: self.pos]
            self.pos = 0

    def _parse(self) -> None:
        buf, s = self.buf, self.stream
        if not self.headers_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            s.status = int(head.split(b" ", 2)[1])
            if b"chunked" not in head.lower():
                self._end(None if s.status != 200 else "not chunked")
                return
            self.headers_done = True
            self.pos = end + 4
            s.opened.set()
        while True:
            nl = buf.find(b"\r\n", self.pos, self.pos + 16)
            if nl < 0:
                return
            size = int(buf[self.pos : nl], 16)
            if size == 0:
                self._end(None)
                return
            start, stop = nl + 2, nl + 2 + size
            if len(buf) < stop + 2:
                return
            self._chunk(start, stop)
            self.pos = stop + 2
            if s.done:
                self._end(None)
                return

    def _chunk(self, start: int, stop: int) -> None:
        buf = self.buf
        if stop - start <= 8192:
            for raw in bytes(buf[start:stop]).split(b"\r\n\r\n"):
                if raw.strip():
                    self.stream._record(raw, self.kind)
        else:  # a big event (an image): its name leads, its small fields trail
            self.stream._record(bytes(buf[start : start + 256]) + b" ... " + bytes(buf[stop - 2048 : stop]), self.kind)

    def _end(self, error: str | None) -> None:
        if error and not self.stream.error:
            self.stream.error = error
        self.stream.opened.set()
        if not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc}" if exc else None)


def _request(kind: str, port: int, key: str, fmt: str, prompt: str) -> bytes:
    if kind == "images":
        path = "/v1/images/generations"
        body = {"model": "midjourney", "prompt": prompt, "n": 1, "stream": True, "output_format": fmt}
    else:
        path = "/v1/chat/completions"
        body = {"model": "midjourney", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY_A}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\nIdempotency-Key: {key}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


# --- figures --------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def stored_files(data_dir: Path, job_id: str | None) -> Counter[str]:
    """Files of the job by kind: result / tile / preview / input, converted copies by format."""
    kinds: Counter[str] = Counter()
    if job_id is None:
        return kinds
    folder = data_dir / "images" / job_id
    for f in folder.glob("*") if folder.is_dir() else ():
        if f.name.startswith("."):
            continue
        name = f.name.split("-", 1)[1] if "-" in f.name else f.name
        stem, ext = name.rsplit(".", 1)
        if stem.startswith("preview"):
            kinds[f"preview .{ext}"] += 1
        elif stem.startswith("result"):
            kinds[f"result .{ext}"] += 1
        elif stem.isdigit():
            kinds[f"tile .{ext}"] += 1
        else:
            kinds[f"converted .{ext}"] += 1
    return kinds


async def one_case(kind: str, fmt: str, n: int, speed: float, timeout: float, profile: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        server = ServerProcess(
            data_dir,
            env={
                "MJ_ADAPTER_SIMULATOR_SPEED": str(speed),
                "MJ_ADAPTER_SIMULATOR_ACCOUNTS": "1",
                "MJ_ADAPTER_LOG_LEVEL": "WARNING",
            },
        ).start()
        assert server.proc is not None
        pid = server.proc.pid
        try:
            async with httpx.AsyncClient(base_url=server.base, timeout=120) as client:
                warm = await client.post(
                    "/v1/images/generations",
                    headers={"Authorization": f"Bearer {KEY_A}"},
                    json={"model": "midjourney", "prompt": "warm up", "n": 1, "output_format": fmt},
                )
                warm.raise_for_status()
                base_rss = await settle(pid)

                key = f"fanout-{time.time_ns()}"
                # relax mode: the job waits (seconds, at the bench's speed) before it starts, while
                # the streams attach
                request = _request(kind, server.port, key, fmt, f"fan-out bench {fmt} {n} --relax")
                streams = [Stream(i) for i in range(n)]
                tasks = [asyncio.create_task(streams[0].run("127.0.0.1", server.port, request, kind))]
                await asyncio.wait_for(streams[0].opened.wait(), 30)
                if streams[0].status != 200:
                    raise RuntimeError(f"first stream answered {streams[0].status}: {streams[0].error}")
                gate = asyncio.Semaphore(256)  # connects in flight (the listen backlog is finite)

                async def open_one(s: Stream) -> None:
                    async with gate:
                        t = asyncio.create_task(s.run("127.0.0.1", server.port, request, kind))
                        tasks.append(t)
                        await s.opened.wait()

                with Sampler(pid, every=0.01) as sampler:
                    t0 = time.monotonic()
                    await asyncio.gather(*(open_one(s) for s in streams[1:]))
                    open_s = time.monotonic() - t0
                    await asyncio.sleep(0.5)  # the handlers subscribe to the job once their answer started
                    attached_rss = rss(pid)
                    bad = Counter(s.status for s in streams if s.status != 200)
                    spy = None
                    if profile:  # py-spy (on PATH or $PY_SPY) samples the server while the job runs
                        out = f"{profile}-{kind}-{fmt}-{n}.txt"
                        spy = subprocess.Popen([os.environ.get("PY_SPY", "py-spy"), "record", "-p", str(pid), "-f", "raw", "-o", out, "-r", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    done, pending = await asyncio.wait(tasks, timeout=timeout)
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=30)
                    run_s = time.monotonic() - t0
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await asyncio.sleep(0.5)  # a conversion finishing after the last stream
                peak_rss = sampler.peak
        finally:
            server.stop()

        job_id = next((s.job_id for s in streams if s.job_id), None)
        files = stored_files(data_dir, job_id)
        by_event: dict[str, list[float]] = defaultdict(list)
        for s in streams:
            seen: set[str] = set()
            for name, at in s.events:
                if name not in seen:  # a repeated key (same progress twice) counts once
                    seen.add(name)
                    by_event[name].append(at)
        first_at = {name: min(ts) for name, ts in by_event.items()}
        errors = Counter((s.error or "")[:80] for s in streams if s.error)
        urls = Counter(u for s in streams for u in s.urls)

        print(f"\n== {kind}, output_format {fmt}, N={n}, simulator speed x{speed:g} ==")
        print(f"opened {n - sum(bad.values())}/{n} streams in {open_s:.1f} s" + (f"; refused: {dict(bad)}" if bad else ""))
        print(
            f"server RSS: before {base_rss / KB / KB:.0f} MB, attached {attached_rss / KB / KB:.0f} MB "
            f"({(attached_rss - base_rss) / KB / n:.1f} KB per stream), peak while running {peak_rss / KB / KB:.0f} MB "
            f"({(peak_rss - base_rss) / KB / n:.1f} KB per stream)"
        )
        first_event = min((at for s in streams for _, at in s.events), default=None)
        print(f"job {job_id}: streams done {run_s:.1f} s after the first opened; streams ended with [DONE]: {sum(s.done for s in streams)}/{n}")
        if first_event is not None and first_event - t0 < open_s + 0.5:
            print(f"warning: the first event came {first_event - t0:.1f} s in, before every stream had attached (lower --speed)")
        print(f"{'event':<22}{'streams':>9}{'spread p50':>13}{'p99':>10}{'max':>10}  (ms, from the first stream that got it)")
        for name in sorted(by_event, key=lambda k: first_at[k]):
            ts = by_event[name]
            offsets = [(t - first_at[name]) * 1000 for t in ts]
            print(f"{name:<22}{len(ts):>9}{pct(offsets, 50):>13.1f}{pct(offsets, 99):>10.1f}{max(offsets):>10.1f}")
        finals = [s for s in streams if any(e.startswith(("completed", "finish:")) for e, _ in s.events)]
        print(f"final event delivered to {len(finals)}/{n} streams; distinct result URLs: {len(urls)}")
        print("stored files for the job: " + (", ".join(f"{k} x{v}" for k, v in sorted(files.items())) or "none"))
        if errors:
            print(f"stream errors: {dict(errors.most_common(5))}")


def raise_fd_limit(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1024  # per process: the client's sockets here, the server's in its own process
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))  # the server process inherits it
        if new < want:
            print(f"warning: fd limit {new} (hard limit) is below the {want} wanted for N={n}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="100,1000", help="stream counts, comma separated (10000 raises the fd limit)")
    parser.add_argument("--format", default="png,webp", help="output_format values, comma separated (images kind)")
    parser.add_argument("--kind", default="images", choices=["images", "chat"])
    parser.add_argument("--speed", type=float, default=4.0, help="simulator speed (1 = realistic: a relax job waits 10-40 s, then takes ~100 s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every stream to end")
    parser.add_argument("--profile", help="sample the server with py-spy while the job runs: PREFIX-<kind>-<format>-<n>.txt (collapsed stacks)")
    args = parser.parse_args()
    counts = [int(x) for x in args.n.split(",") if x]
    formats = [f for f in args.format.split(",") if f] if args.kind == "images" else ["png"]
    raise_fd_limit(max(counts))
    for fmt in formats:
        for n in counts:
            await one_case(args.kind, fmt, n, args.speed, args.timeout, args.profile)


if __name__ == "__main__":
    asyncio.run(main())
