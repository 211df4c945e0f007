"""Drives the PyPI `mutiny-sdk` client (Artificial-Sweetener/Mutiny-SDK) against the simulator.

    tests/.cache/pyclient/bin/python steps.py '<json config>'

Runs in the client's own venv (test_third_party_pypi.py installs it). Every step is bounded by
its own timeout and prints one line:
    @@step {"step": name, "ok": true, "ms": n, "result": {...}}   or   {"step", "ok": false, "error"}
A step whose input is missing (an earlier step failed) prints {"skipped": reason}.

Configuration only, plus one shim for what the client hard-codes and offers no option for:
- REST: `Config.create(api_endpoint=<simulator>/api/v9)` (its own option);
- the gateway: `mutiny.discord.gateway_client.GATEWAY_BASE` (a module constant,
  `wss://gateway.discord.gg`) set to the simulator's gateway URL; reconnects use READY's
  `resume_gateway_url`, which the simulator gives as its own URL;
- the vary-region iframe: the client posts to `https://936929561302675456.discordsays.com/...`;
  its CDN httpx client gets a transport that sends that one host to the simulator (same path,
  same body). Nothing in the client's protocol logic is touched.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import sys
import time
import traceback
from typing import Any

import httpx

import mutiny.discord.gateway_client as gateway_client
import mutiny.discord.rest_client as rest_client
from mutiny import Config, JobStatus, Mutiny
from mutiny.public_models import JobSnapshot, ProgressUpdate

cfg: dict[str, Any] = json.loads(sys.argv[1])
wanted = set(cfg["steps"])
results: dict[str, Any] = {}
IFRAME_HOST = "936929561302675456.discordsays.com"


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write("@@step " + json.dumps(line, default=str) + "\n")
    sys.stdout.flush()


# --- the shim: hard-coded Discord hosts -> the simulator --------------------------------------

gateway_client.GATEWAY_BASE = cfg["gateway"].rstrip("/")


class _IframeToSimulator(httpx.AsyncBaseTransport):
    """Sends requests for the Midjourney iframe host to the simulator, path and body unchanged."""

    def __init__(self, base: str) -> None:
        self._base = httpx.URL(base)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self._base.scheme, host=self._base.host, port=self._base.port)
        request.headers["host"] = f"{self._base.host}:{self._base.port}"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _HttpxWithIframeRoute:
    """`httpx` as the client's REST module sees it: AsyncClient gets one extra mount."""

    def __getattr__(self, name: str) -> Any:
        return getattr(httpx, name)

    @staticmethod
    def AsyncClient(*args: Any, **kwargs: Any) -> httpx.AsyncClient:  # noqa: N802 - mirrors httpx
        mounts = dict(kwargs.pop("mounts", None) or {})
        mounts[f"https://{IFRAME_HOST}"] = _IframeToSimulator(cfg["base"])
        return httpx.AsyncClient(*args, mounts=mounts, **kwargs)


rest_client.httpx = _HttpxWithIframeRoute()  # type: ignore[assignment]


# --- helpers ----------------------------------------------------------------------------------

class Token:
    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self) -> str:
        return self._token


async def step(name: str, fn: Any, needs: tuple[str, ...] = ()) -> Any:
    if name not in wanted:
        return None
    missing = [n for n in needs if results.get(n) is None]
    if missing:
        emit({"step": name, "ok": False, "skipped": f"needs {', '.join(missing)}"})
        return None
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(fn(), timeout=cfg["stepTimeout"])
    except Exception as exc:  # noqa: BLE001 - reported to the test
        kind = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
        emit({"step": name, "ok": False, "ms": int((time.monotonic() - started) * 1000),
              "error": f"{kind}: {exc}\n{traceback.format_exc()[-1500:]}"})
        return None
    results[name] = result if result is not None else {}
    emit({"step": name, "ok": True, "ms": int((time.monotonic() - started) * 1000), "result": results[name]})
    return results[name]


def snapshot_dict(snap: JobSnapshot) -> dict[str, Any]:
    out = snap.output
    output: dict[str, Any] | None = None
    if out is not None:
        output = {"type": type(out).__name__, **{k: v for k, v in vars(out).items() if not k.startswith("_")}} \
            if hasattr(out, "__dict__") else {"type": type(out).__name__, "repr": repr(out)}
    return {
        "id": snap.id, "kind": snap.kind, "status": snap.status.value, "progress_text": snap.progress_text,
        "preview_image_url": snap.preview_image_url, "fail_reason": snap.fail_reason,
        "prompt_text": snap.prompt_text, "output": output,
    }


async def run_job(client: Mutiny, submit: Any) -> dict[str, Any]:
    """Submit, follow every event until the job ends, return its final snapshot + what streamed.
    The stream is opened before the submission (a fast job could otherwise finish unseen)."""
    seen: list[ProgressUpdate | JobSnapshot] = []
    subscribed = asyncio.Event()

    async def watch() -> None:
        stream = client.events()
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)  # the generator has subscribed once it waits on its queue
        subscribed.set()
        seen.append(await first)
        async for event in stream:
            seen.append(event)

    watcher = asyncio.create_task(watch())
    try:
        await subscribed.wait()
        handle = await submit()
        snap = await client.wait_for_job(handle.id, timeout_s=cfg["stepTimeout"])
    finally:
        watcher.cancel()
        try:
            await watcher
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
    result = snapshot_dict(snap)
    result["progress"] = [{"status_text": e.status_text, "preview": e.preview_image_url}
                          for e in seen if isinstance(e, ProgressUpdate) and e.job_id == handle.id]
    result["statuses"] = [e.status.value for e in seen if isinstance(e, JobSnapshot) and e.id == handle.id]
    if snap.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"job ended {snap.status.value}: {snap.fail_reason} {result}")
    return result


async def fetch(url: str) -> bytes:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(url)
        r.raise_for_status()
        return r.content


def png(width: int, height: int, colour: tuple[int, int, int], *, mask: bool = False) -> bytes:
    import cv2  # the client's own dependency
    import numpy as np

    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:, :] = colour[::-1]
    if mask:
        img[:, :] = 0
        img[height // 4: height // 2, width // 4: width // 2] = 255
    else:
        img[height // 3: 2 * height // 3, width // 3: 2 * width // 3] = (255, 255, 255)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


# --- the steps --------------------------------------------------------------------------------

async def main() -> None:
    account = cfg["account"]
    config = Config.create(
        token_provider=Token(account["token"]),
        guild_id=account["guild_id"],
        channel_id=account["channel_id"],
        api_endpoint=cfg["rest"],
        cache={"disk_cache_dir": cfg["cacheDir"], "response_dump_dir": cfg["cacheDir"] + "/dumps"},
        websocket={"backoff_initial": 0.2, "backoff_max": 1.0},
        execution={"task_timeout_minutes": 2},
    )
    client = Mutiny(config)
    prompt = cfg["prompt"]

    async def connect() -> dict[str, Any]:
        await client.start()
        ready = await client.wait_ready(timeout_s=int(cfg["stepTimeout"]))
        if not ready:
            raise RuntimeError("wait_ready returned False")
        return {"ready": ready}

    try:
        await step("connect", connect)
        grid = await step("imagine", lambda: run_job(client, lambda: client.imagine(prompt)), ("connect",))
        gid = grid and grid["id"]
        await step("upscale_u1", lambda: run_job(client, lambda: client.upscale(gid, index=1)), ("imagine",))
        await step("variation_v2", lambda: run_job(client, lambda: client.vary(gid, index=2)), ("imagine",))
        await step("vary_subtle_from_grid", lambda: run_job(client, lambda: client.vary(gid, index=3, mode="subtle")), ("imagine",))
        u1 = results.get("upscale_u1") or {}
        uid = u1.get("id")
        await step("vary_strong", lambda: run_job(client, lambda: client.vary(uid, index=1, mode="strong")), ("upscale_u1",))
        await step("zoom_out_2x_from_grid", lambda: run_job(client, lambda: client.zoom(gid, index=1, factor=2.0)), ("imagine",))
        await step("zoom_out_1_5x_from_grid", lambda: run_job(client, lambda: client.zoom(gid, index=4, factor=1.5)), ("imagine",))
        await step("pan_left_from_grid", lambda: run_job(client, lambda: client.pan(gid, index=2, direction="left")), ("imagine",))
        await step("custom_zoom_from_grid", lambda: run_job(client, lambda: client.zoom(gid, index=3, factor=1.8, prompt=prompt)), ("imagine",))

        v7 = await step("imagine_v7", lambda: run_job(client, lambda: client.imagine(prompt + " --v 7")), ("connect",))
        v7id = v7 and v7["id"]
        await step("upscale_subtle_from_grid", lambda: run_job(client, lambda: client.upscale(v7id, index=2, mode="subtle")), ("imagine_v7",))
        await step("upscale_creative_from_grid", lambda: run_job(client, lambda: client.upscale(v7id, index=2, mode="creative")), ("imagine_v7",))

        async def describe() -> dict[str, Any]:
            return await run_job(client, lambda: client.describe(png(320, 200, (200, 40, 40))))

        await step("describe", describe, ("connect",))

        async def blend() -> dict[str, Any]:
            return await run_job(client, lambda: client.blend((png(256, 256, (10, 120, 200)), png(256, 256, (220, 180, 20))), dimensions="3:2"))

        await step("blend", blend, ("connect",))

        async def recognise() -> dict[str, Any]:
            data = await fetch(results["imagine"]["output"]["image_url"])
            whole = client.resolve_image(data)
            tiles = client.split_image_result(gid, data)
            tile_back = client.resolve_image(tiles[2].image_bytes)
            jobs = await client.list_jobs(status=JobStatus.SUCCEEDED)
            return {
                "grid": whole and {"job_id": whole.job_id, "index": whole.index},
                "tiles": [{"job_id": t.job_id, "index": t.index, "bytes": len(t.image_bytes)} for t in tiles],
                "tile3": tile_back and {"job_id": tile_back.job_id, "index": tile_back.index},
                "succeeded": len(jobs),
            }

        await step("recognise", recognise, ("imagine",))

        async def vary_region() -> dict[str, Any]:
            data = await fetch(results["upscale_u1"]["output"]["image_url"])
            import cv2
            import numpy as np

            h, w = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2]
            return await run_job(client, lambda: client.vary_region(data, png(w, h, (0, 0, 0), mask=True), prompt=prompt + " with a hat"))

        await step("vary_region", vary_region, ("upscale_u1",))

        async def animate() -> dict[str, Any]:
            data = await fetch(results["upscale_subtle_from_grid"]["output"]["image_url"])
            return await run_job(client, lambda: client.animate(data, motion="high"))

        anim = await step("animate", animate, ("upscale_subtle_from_grid",))
        aid = anim and anim["id"]
        await step("extend", lambda: run_job(client, lambda: client.extend(job_id=aid, motion="low")), ("animate",))
    finally:
        try:
            await asyncio.wait_for(client.close(), timeout=10)
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG if cfg.get("debug") else logging.WARNING, stream=sys.stderr)
    try:
        asyncio.run(main())
    except Exception:  # noqa: BLE001
        emit({"step": "main", "ok": False, "error": traceback.format_exc()})
    sys.stdout.flush()
