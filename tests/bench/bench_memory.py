"""Server memory under hostile uploads. Run by hand (loopback only):

    .venv/bin/python tests/bench/bench_memory.py [--case NAME ...] [--demo]

Per case it starts a fresh simulator process and a fresh `mj-adapter serve` on it (--demo: demo
mode, the simulator inside the server process, whose own memory then shows up too), makes one
upscaled image for the caller (masks only apply to the caller's own results), waits for the
server to settle, resets its peak RSS (/proc/<pid>/clear_refs), sends the requests and samples
VmRSS every few milliseconds. It prints the server's RSS before the case, the peak during it (the
larger of the sampled maximum and the kernel's VmHWM) and the RSS 3 s after, with the answers.

Cases:
- mask-7999-png-x1 / -x3: one / three concurrent 7999x7999 palette PNG masks (63 KB each,
  transparent everywhere) on /v1/images/edits, `image` = the caller's upscale (by URL).
- mask-4000-png: a 4000x4000 palette PNG mask (16 Mpx: within the user-image budget, beyond the
  mask budget).
- mask-2048-rgba-x3: three concurrent 2048x2048 RGBA PNG masks: at the mask budget, accepted.
- mask-4000-jpeg: a 4000x4000 JPEG mask (accepted: decoded at a reduced scale with JPEG draft).
- upload-60mb-x4: four concurrent multipart requests with a 60 MB `image` file part each.
- upload-60mb-chunked-x4: the same, chunked (no Content-Length: only the stream tells the size).
- upload-19mb-x4: four concurrent 19 MB file parts, under the 20 MiB cap (read; not images).
- chat-5x15mb: five 15 MB images as data URLs in one chat request (a ~100 MB body).
- chat-5x9mb: five 9 MB images as data URLs (a ~60 MB body; processed under the old 64 MB body
  cap, refused with 413 since JSON bodies take one data URL of FETCH_MAX_BYTES); -seq3: three
  such requests, one after the other, different images.
- chat-1x19mb / -x3: one 19 MB image as a data URL (a ~26 MB body, just under the JSON cap):
  one request, and three at once.

Figures depend on the machine and on Python's allocator (freed memory is not always returned to
the OS, which is what "after" shows). Compare runs on the same machine.

Figures on the development machine (2 cores, Linux, CPython 3.11, Pillow 13, simulator in its
own process), server RSS in MB, growth over the baseline (~76 MB):

                            before (62a40cd)            after
case                        peak    after   answer      peak    after   answer
mask-7999-png-x1            +366    +14     200         +0      +0      400 image_too_large
mask-7999-png-x3            +720    +142    200         +0      +0      400 image_too_large
mask-4000-png               +91     +21     200         +0      +0      400 (mask 4000x4000 > 4.2 Mpx)
mask-2048-rgba-x3           +81     +50     200         +58     +24     200
mask-4000-jpeg              +46     +7      200         +13     +13     200
upload-60mb-x4              +175    +3      400         +0.5    +0.5    400 upload_too_large
upload-60mb-chunked-x4      +234    +5      400         +6      +6      400 upload_too_large
upload-19mb-x4              +57     +57     400         +40..58 +21..38 400 invalid_image
chat-5x15mb                 +0      +0      413         +0      +0      413 (the app's 64 MB cap)
chat-5x9mb                  +291    +291    200         +182    +124    200
chat-5x9mb-seq3             +555    +541    200         +249    +90     200
with the JSON body cap (one data URL of FETCH_MAX_BYTES, ~28 MB by default; 8950089):
chat-5x9mb                                              +0.5    +0.5    413
chat-1x19mb                                             +112    +88     200
chat-1x19mb-x3                                          +341    +316    200
(a data URL at the cap costs ~4.5x its image while its job is prepared: the body, its decoded
string, the base64 payload, the image bytes, and the attachment upload; "after" includes the
image held by the queued job until it is sent.)

before: Litestar's request.form() then whole-file reads; masks decoded up to 64 Mpx with
full-size RGBA copies; user images up to 64 Mpx; data URLs pinned by urlsplit's lru_cache.
after: the streaming multipart reader (file <= fetch_max_bytes, body <= ~48 MiB, spooled to disk
past 512 KB, refused while arriving); masks under 2048x2048 (JPEG draft, one 8-bit band); user
images up to 25 Mpx; data URLs never reach urlsplit. The chat figures are the chat path's own
(JSON body, data URL decoding), outside this change but for the cache leak.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from server_process import KEY_A, ServerProcess, SimulatorProcess  # noqa: E402

HEADERS = {"Authorization": f"Bearer {KEY_A}"}
MB = 1024 * 1024


# --- memory sampling ------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) * 1024
    return out


def rss(pid: int) -> int:
    return _status(pid).get("VmRSS", 0)  # none for a process that has exited but not been reaped


def reset_peak(pid: int) -> bool:
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """Polls the server's VmRSS in a thread while a case runs."""

    def __init__(self, pid: int, every: float = 0.005) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss(self.pid))
            except OSError:
                return  # the process is gone
            time.sleep(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def settle(pid: int, seconds: float = 1.5) -> int:
    """Wait until RSS stops moving (jobs from the previous case finishing), then return it."""
    last = rss(pid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        await asyncio.sleep(seconds)
        now = rss(pid)
        if abs(now - last) < MB:
            return now
        last = now
    return last


# --- payloads -------------------------------------------------------------------------------------


def huge_palette_png(side: int) -> bytes:
    """A palette PNG, every pixel index 0 which is fully transparent: compresses to almost
    nothing, decodes to side*side bytes (and 4x that as RGBA)."""
    img = Image.new("P", (side, side), 0)
    img.putpalette([0, 0, 0] * 256)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0, optimize=False)
    return buf.getvalue()


def big_jpeg(side: int) -> bytes:
    img = Image.new("L", (side, side), 0)
    img.paste(255, (side // 4, side // 4, side // 2, side // 2))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=50)
    return buf.getvalue()


def noise_png(nbytes: int) -> bytes:
    """An incompressible RGB PNG of about nbytes."""
    side = int((nbytes / 3) ** 0.5)
    img = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


# --- cases ----------------------------------------------------------------------------------------


def _status_of(r: httpx.Response) -> int | str:
    """The status, with the error code for a 4xx/5xx (what refused it, in one word)."""
    if r.status_code < 400:
        return r.status_code
    try:
        error = r.json().get("error") or {}
        return f"{r.status_code} {error.get('code') or error.get('message', '')[:60]}"
    except ValueError:
        return f"{r.status_code} {r.text[:60]}"


async def our_upscale(client: httpx.AsyncClient) -> str:
    """The URL of an upscaled image of the caller's (quality hd: U1 then Upscale (Subtle))."""
    r = await client.post("/v1/images/generations", json={"prompt": "a lighthouse at dusk", "quality": "hd"}, headers=HEADERS)
    r.raise_for_status()
    return str(r.json()["data"][0]["url"])


async def mask_edit(client: httpx.AsyncClient, image_url: str, mask: bytes) -> int | str:
    name = "m.jpg" if mask[:2] == b"\xff\xd8" else "m.png"
    r = await client.post(
        "/v1/images/edits",
        data={"image": image_url, "prompt": "a red boat"},
        files={"mask": (name, mask, "image/jpeg" if name.endswith(".jpg") else "image/png")},
        headers=HEADERS,
    )
    return _status_of(r)


async def upload(client: httpx.AsyncClient, blob: bytes, *, chunked: bool = False) -> int | str:
    try:
        if not chunked:
            r = await client.post("/v1/images/edits", data={"prompt": "x"}, files={"image": ("big.png", blob, "image/png")}, headers=HEADERS)
        else:
            # no Content-Length: only the stream itself says how big the body is
            async def body() -> AsyncIterator[bytes]:
                yield b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'
                yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
                view = memoryview(blob)
                for i in range(0, len(blob), 1 << 20):
                    yield bytes(view[i : i + (1 << 20)])
                yield b"\r\n--xyz--\r\n"

            headers = {**HEADERS, "Content-Type": "multipart/form-data; boundary=xyz"}
            r = await client.post("/v1/images/edits", content=body(), headers=headers)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return _status_of(r)


async def chat_images(client: httpx.AsyncClient, urls: list[str]) -> int | str:
    body = {
        "model": "midjourney",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "blend these"}, *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}
        ],
    }
    try:
        r = await client.post("/v1/chat/completions", json=body, headers=HEADERS)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return _status_of(r)


async def run_case(name: str, pid: int, send: Callable[[], Awaitable[list[int | str]]]) -> None:
    before = await settle(pid)
    exact = reset_peak(pid)
    started = time.monotonic()
    with Sampler(pid) as sampler:
        statuses = await send()
    elapsed = time.monotonic() - started
    peak = max(sampler.peak, _status(pid)["VmHWM"] if exact else 0)
    await asyncio.sleep(3)
    after = rss(pid)
    shown = sorted({str(s) for s in statuses})
    print(
        f"{name:<22} baseline {before / MB:6.1f}   peak {peak / MB:7.1f} (+{(peak - before) / MB:6.1f})   "
        f"after {after / MB:6.1f} (+{(after - before) / MB:6.1f})   {elapsed:5.1f} s   {len(statuses)} x {', '.join(shown)}",
        flush=True,
    )


class Payloads:
    def __init__(self) -> None:
        self.mask_8k = huge_palette_png(7999)
        self.mask_4k = huge_palette_png(4000)
        self.mask_2k = rgba_mask(2048)
        self.jpeg_4k = big_jpeg(4000)
        self.blob_60 = os.urandom(60 * 1000 * 1000)
        self.blob_19 = self.blob_60[: 19 * 1000 * 1000]


def rgba_mask(side: int) -> bytes:
    """At the mask budget: an RGBA PNG, opaque with a transparent square (the common mask)."""
    img = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    img.paste((0, 0, 0, 0), (side // 4, side // 4, side // 2, side // 2))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


Send = Callable[[], Awaitable[list[int | str]]]


def case(name: str, client: httpx.AsyncClient, image_url: str, p: Payloads) -> Send:
    """The requests of one case, payloads built before the clock starts."""

    def masks(mask: bytes, n: int) -> Send:
        return lambda: asyncio.gather(*(mask_edit(client, image_url, mask) for _ in range(n)))

    def uploads(blob: bytes, n: int, chunked: bool = False) -> Send:
        return lambda: asyncio.gather(*(upload(client, blob, chunked=chunked) for _ in range(n)))

    def chat(image_mb: int, times: int = 1, *, images: int = 5, parallel: bool = False) -> Send:
        # distinct images per request, as distinct callers would send
        bodies = [[data_url(noise_png(image_mb * 1000 * 1000)) for _ in range(images)] for _ in range(times)]

        async def send() -> list[int | str]:
            if parallel:
                return list(await asyncio.gather(*(chat_images(client, urls) for urls in bodies)))
            return [await chat_images(client, urls) for urls in bodies]

        return send

    builders: dict[str, Callable[[], Send]] = {
        "mask-7999-png-x1": lambda: masks(p.mask_8k, 1),
        "mask-7999-png-x3": lambda: masks(p.mask_8k, 3),
        "mask-4000-png": lambda: masks(p.mask_4k, 1),
        "mask-2048-rgba-x3": lambda: masks(p.mask_2k, 3),
        "mask-4000-jpeg": lambda: masks(p.jpeg_4k, 1),
        "upload-60mb-x4": lambda: uploads(p.blob_60, 4),
        "upload-60mb-chunked-x4": lambda: uploads(p.blob_60, 4, chunked=True),
        "upload-19mb-x4": lambda: uploads(p.blob_19, 4),
        "chat-5x15mb": lambda: chat(15),
        "chat-5x9mb": lambda: chat(9),
        "chat-5x9mb-seq3": lambda: chat(9, 3),
        "chat-1x19mb": lambda: chat(19, images=1),
        "chat-1x19mb-x3": lambda: chat(19, 3, images=1, parallel=True),
    }
    return builders[name]()


CASES = (
    "mask-7999-png-x1",
    "mask-7999-png-x3",
    "mask-4000-png",
    "mask-2048-rgba-x3",
    "mask-4000-jpeg",
    "upload-60mb-x4",
    "upload-60mb-chunked-x4",
    "upload-19mb-x4",
    "chat-5x15mb",
    "chat-5x9mb",
    "chat-5x9mb-seq3",
    "chat-1x19mb",
    "chat-1x19mb-x3",
)


def start_server(tmp: Path, args: argparse.Namespace) -> tuple[ServerProcess, SimulatorProcess | None]:
    env = {"MJ_ADAPTER_LOG_LEVEL": "WARNING", "MJ_ADAPTER_SIMULATOR_SPEED": str(args.speed)}
    sim = None
    if not args.demo:
        # the simulator in its own process: what it keeps (uploaded images, rendered grids) is
        # not the adapter's memory
        sim = SimulatorProcess(tmp, speed=args.speed, accounts=2)
        env["MJ_ADAPTER_ACCOUNTS"] = json.dumps([sim.account_config(i) for i in range(2)])
        env["MJ_ADAPTER_FETCH_ALLOW_HOSTS"] = "127.0.0.1"
    return ServerProcess(tmp, env=env).start(), sim


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", action="append", choices=CASES, help="run only these (repeatable)")
    parser.add_argument("--speed", type=float, default=2000)
    parser.add_argument("--demo", action="store_true", help="demo mode: the simulator inside the server process")
    args = parser.parse_args()
    chosen = args.case or list(CASES)

    print("building payloads ...", flush=True)
    payloads = Payloads()
    print(
        f"  masks: 7999x7999 PNG {len(payloads.mask_8k)} B, 4000x4000 PNG {len(payloads.mask_4k)} B, "
        f"2048x2048 RGBA PNG {len(payloads.mask_2k)} B, 4000x4000 JPEG {len(payloads.jpeg_4k)} B",
        flush=True,
    )
    print(f"{'case':<22} RSS of the server process, MB", flush=True)
    for name in chosen:
        # a fresh server per case: memory freed by one case stays in the process (allocator
        # arenas), and would hide the next case's growth
        with tempfile.TemporaryDirectory() as tmp:
            server, sim = start_server(Path(tmp), args)
            assert server.proc is not None
            try:
                async with httpx.AsyncClient(base_url=server.base, timeout=300) as client:
                    image_url = await our_upscale(client)
                    await run_case(name, server.proc.pid, case(name, client, image_url, payloads))
            finally:
                server.stop()
                if sim is not None:
                    sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
