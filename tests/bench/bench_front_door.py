"""The front-door table: the adapter's hot read paths against a bare Litestar endpoint, in the
same run. Run by hand (loopback only; tests/bench is not collected by pytest):

    .venv/bin/python tests/bench/bench_front_door.py [--connections 16] [--seconds 5] [--rounds 3]
                                                     [--driver wrk|python]

It starts a real `mj-adapter serve` in demo mode (API keys on, the simulator inside it) and a bare
Litestar app (one trivial JSON endpoint) under the same uvicorn settings (loop and http "auto":
uvloop and httptools, which the adapter's dependencies install; no access log), each in its own
process on loopback. It makes one finished /mj imagine task and one
finished `images.generate` (n=1, with an Idempotency-Key), then drives, for `--seconds` each,
with a fixed number of keep-alive connections:

- bare:        GET /            on the bare app
- models:      GET /v1/models
- mj fetch:    GET /mj/task/{id}/fetch of the finished task (the same poll again and again: after
               the first, answered by the fast lane, adapter/api/common/fast_lane.py)
- first reads: the same, each request with its own query string (ignored by the handler), so no
               request repeats another and every one takes the framework's path (wrk only)
- jobs get:    GET /v1/jobs/{id} of the same task
- idem replay: POST /v1/images/generations, the same body and Idempotency-Key (the finished job
               is answered again, no new Midjourney job)

in `--rounds` interleaved rounds (bare, models, fetch, ... then again), and prints, per target,
the median over the rounds of requests/s, p50 and p99, and the ratios to bare (throughput, and
p99 / bare p99). The driver is `wrk` (one thread) when it is installed, else a small asyncio
HTTP/1.1 client in its own process (it costs more CPU per request than wrk, so its ratios are
closer to 1: compare runs of one driver only). Figures depend on the machine; results are in
tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from server_process import KEY_A, ServerProcess, free_port, stop_process  # noqa: E402

AUTH = f"Bearer {KEY_A}"
IDEM_KEY = "bench-front-door-replay-1"
GENERATE_BODY = json.dumps({"model": "midjourney", "prompt": "a lighthouse at dusk, front door bench", "n": 1}).encode()

BARE_APP = textwrap.dedent(
    """
    import sys
    import uvicorn
    from litestar import Litestar, get

    @get("/", sync_to_thread=False)
    def index() -> dict[str, bool]:
        return {"ok": True}

    app = Litestar([index])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                log_config=None, timeout_graceful_shutdown=5)
    """
)


class BareServer:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        script = tmp / "bare_app.py"
        script.write_text(BARE_APP)
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError("the bare app did not start")

    def stop(self) -> None:
        stop_process(self.proc)


class Target:
    def __init__(
        self, name: str, base: str, path: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b"", *, first_reads: bool = False
    ) -> None:
        self.name = name
        self.base = base
        self.path = path
        self.method = method
        self.headers = headers or {}
        self.body = body
        # every request with its own query string (which the handler ignores): none is a repeat of
        # an earlier one, so none is answered by the fast lane; the cost of a first read (wrk only)
        self.first_reads = first_reads

    def check(self) -> None:
        r = httpx.request(self.method, self.base + self.path, headers=self.headers, content=self.body or None, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"{self.name}: {r.status_code} {r.text[:300]}")


# --- drivers ----------------------------------------------------------------------------------

_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if m is None:
        raise ValueError(text)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def run_wrk(target: Target, connections: int, seconds: float, tmp: Path) -> dict[str, float]:
    lua = tmp / (re.sub(r"[^A-Za-z0-9]+", "_", target.name) + ".lua")
    lines = [f"wrk.method = {json.dumps(target.method)}"]
    for k, v in target.headers.items():
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    if target.body:
        lines.append(f"wrk.body = {json.dumps(target.body.decode())}")
    if target.first_reads:
        lines.append(
            textwrap.dedent(
                """
                local n = 0
                request = function()
                  n = n + 1
                  return wrk.format(nil, wrk.path .. "?first-read=" .. n)
                end
                """
            )
        )
    lines.append(
        textwrap.dedent(
            """
            local bad = 0
            response = function(status, headers, body)
              if status ~= 200 then bad = bad + 1 end
            end
            done = function(summary, latency, requests)
              io.write(string.format("P50_US %d\\nP99_US %d\\n", latency:percentile(50), latency:percentile(99)))
            end
            """
        )
    )
    lua.write_text("\n".join(lines))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(lua), target.base + target.path],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    out = out.stdout  # type: ignore[assignment]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = int(re.search(r"P50_US (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    p99 = int(re.search(r"P99_US (\d+)", out).group(1)) / 1000  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        print(f"  ! {target.name}: {errors.group(0) if errors else ''} {socket_errors.group(0) if socket_errors else ''}", file=sys.stderr)
    return {"rps": rps, "p50": p50, "p99": p99}


PY_DRIVER = textwrap.dedent(
    """
    import asyncio, json, sys, time

    async def conn(host, port, request, stop_at, lat, counts):
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                counts[1] += 1
        writer.close()

    async def main():
        spec = json.loads(sys.argv[1])
        request = spec["request"].encode("latin-1")
        lat, counts = [], [0, 0]
        start = time.perf_counter()
        stop_at = start + spec["seconds"]
        await asyncio.gather(*(conn(spec["host"], spec["port"], request, stop_at, lat, counts) for _ in range(spec["connections"])))
        elapsed = time.perf_counter() - start
        lat.sort()
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print(json.dumps({"rps": len(lat) / elapsed, "p50": pick(0.50), "p99": pick(0.99), "bad": counts[1]}))

    asyncio.run(main())
    """
)


def run_python(target: Target, connections: int, seconds: float, tmp: Path) -> dict[str, float]:
    url = httpx.URL(target.base + target.path)
    head = [f"{target.method} {target.path} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    head += [f"{k}: {v}" for k, v in target.headers.items()]
    if target.body:
        head.append(f"Content-Length: {len(target.body)}")
    request = "\r\n".join(head) + "\r\n\r\n" + target.body.decode()
    spec = {"host": url.host, "port": url.port, "request": request, "seconds": seconds, "connections": connections}
    out = subprocess.run([sys.executable, "-c", PY_DRIVER, json.dumps(spec)], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    if result.pop("bad"):
        print(f"  ! {target.name}: non-200 answers", file=sys.stderr)
    return result


# --- setup ------------------------------------------------------------------------------------


def finished_task(base: str) -> str:
    headers = {"mj-api-secret": KEY_A}
    r = httpx.post(base + "/mj/submit/imagine", json={"prompt": "a red fox in the snow, front door bench"}, headers=headers, timeout=30)
    r.raise_for_status()
    task_id = r.json()["result"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/mj/task/{task_id}/fetch", headers=headers, timeout=30).json()["status"]
        if status == "SUCCESS":
            return str(task_id)
        if status in ("FAILURE", "CANCEL"):
            raise RuntimeError(f"task {task_id} ended {status}")
        time.sleep(0.2)
    raise TimeoutError(f"task {task_id} did not finish")


def generate_once(base: str) -> None:
    headers = {"Authorization": AUTH, "Idempotency-Key": IDEM_KEY, "Content-Type": "application/json"}
    r = httpx.post(base + "/v1/images/generations", content=GENERATE_BODY, headers=headers, timeout=180)
    r.raise_for_status()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--driver", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--speed", type=float, default=400, help="simulator speed (setup only)")
    args = ap.parse_args()
    drive = run_wrk if args.driver == "wrk" else run_python

    with tempfile.TemporaryDirectory(prefix="bench-front-door-") as tmp_name:
        tmp = Path(tmp_name)
        server = ServerProcess(tmp / "adapter", env={"MJ_ADAPTER_SIMULATOR_SPEED": str(args.speed), "MJ_ADAPTER_LOG_LEVEL": "WARNING"})
        server.start()
        bare = BareServer(tmp)
        try:
            task_id = finished_task(server.base)
            generate_once(server.base)
            targets = [
                Target("bare", bare.base, "/"),
                Target("GET /v1/models", server.base, "/v1/models", headers={"Authorization": AUTH}),
                Target("/mj fetch", server.base, f"/mj/task/{task_id}/fetch", headers={"mj-api-secret": KEY_A}),
                *(
                    [Target("/mj fetch, first reads", server.base, f"/mj/task/{task_id}/fetch", headers={"mj-api-secret": KEY_A}, first_reads=True)]
                    if args.driver == "wrk"
                    else []
                ),
                Target("GET /v1/jobs/{id}", server.base, f"/v1/jobs/{task_id}", headers={"Authorization": AUTH}),
                Target(
                    "idempotent replay",
                    server.base,
                    "/v1/images/generations",
                    method="POST",
                    headers={"Authorization": AUTH, "Idempotency-Key": IDEM_KEY, "Content-Type": "application/json"},
                    body=GENERATE_BODY,
                ),
            ]
            for t in targets:
                t.check()
            # warm-up (imports, caches, the first connections)
            for t in targets:
                drive(t, args.connections, 1.0, tmp)
            results: dict[str, list[dict[str, float]]] = {t.name: [] for t in targets}
            for rnd in range(args.rounds):
                for t in targets:
                    r = drive(t, args.connections, args.seconds, tmp)
                    results[t.name].append(r)
                    print(f"round {rnd + 1} {t.name:20s} {r['rps']:8.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms", file=sys.stderr)
        finally:
            bare.stop()
            server.stop()

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    base_rps, base_p99 = med("bare", "rps"), med("bare", "p99")
    print(f"\n{args.driver}, {args.connections} connections, {args.seconds:g} s x {args.rounds} interleaved rounds (medians), cpus={os.cpu_count()}")
    print(f"| {'target':20s} | {'req/s':>7s} | {'x bare':>6s} | {'p50 ms':>6s} | {'p99 ms':>6s} | {'p99 / bare':>10s} |")
    print(f"| {'-' * 20} | {'-' * 6}: | {'-' * 5}: | {'-' * 5}: | {'-' * 5}: | {'-' * 9}: |")
    for name in results:
        rps, p50, p99 = med(name, "rps"), med(name, "p50"), med(name, "p99")
        print(f"| {name:20s} | {rps:7.0f} | {rps / base_rps:6.2f} | {p50:6.2f} | {p99:6.2f} | {p99 / base_p99:10.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
