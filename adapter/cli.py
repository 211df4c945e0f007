"""`mj-adapter serve | simulator | imagine | accounts | mcp | openapi`."""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from adapter.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(getattr(args, "config", None))
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    if overrides:
        import msgspec

        settings = msgspec.structs.replace(settings, **overrides)
    return settings


def _logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO; Discord URLs carry nothing secret, but the noise hides
    # what matters
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _tag_log_records(tag: str) -> None:
    """Every log line of this process starts with `tag` (several replicas' logs side by side),
    whatever formatter the server installs later."""
    make = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = tag + record.msg
        return record

    logging.setLogRecordFactory(factory)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from adapter.api.common.fast_lane import FastLane
    from adapter.app import BindRefused, check_bind, create_app

    settings = _settings(args)
    _logging(settings.log_level)
    if settings.clustered:
        import msgspec

        from adapter.config import default_replica_id

        settings = msgspec.structs.replace(settings, replica_id=settings.replica_id or default_replica_id())
        _tag_log_records(f"[{settings.replica_id}] ")
    try:
        check_bind(settings)
    except BindRefused as exc:
        print(f"mj-adapter: {exc}", file=sys.stderr)
        return 2
    if not settings.api_keys:
        logging.getLogger("adapter").warning("No API keys configured (MJ_ADAPTER_API_KEYS): serving on loopback only, without auth.")
    app = create_app(settings)
    config = uvicorn.Config(
        # repeated reads of finished jobs are answered before the framework (fast_lane.py)
        FastLane(app, app.state),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
        # loop and http stay "auto": uvloop and httptools (dependencies) where they install, else
        # asyncio and h11; tests/bench/bench_front_door.py serves its bare endpoint the same way
        access_log=False,
        log_config=None,  # keep our logging format for uvicorn's loggers too
    )
    server = _graceful_server(config, app)
    print(f"mj-adapter listening on http://{settings.host}:{settings.port}/v1" + ("  (demo mode: built-in simulator)" if settings.demo else ""), file=sys.stderr, flush=True)
    server.run()
    return 0


def _graceful_server(config: Any, app: Any) -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Tells the engine the moment SIGTERM/SIGINT arrives, not after uvicorn has waited for
        open connections: no queued job starts from then on, and open streams end with a last
        event that says so instead of being cut."""

        def __init__(self, config: uvicorn.Config, app: Any) -> None:
            super().__init__(config)
            self._app = app

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            # Everything made at startup (the app, its routes and OpenAPI document, the engine)
            # lives as long as the process: moved out of the collector's sight, a full garbage
            # collection scans only what requests made since, a few ms instead of ~35 ms paid
            # by whichever request triggers it (the front door's p99).
            gc.collect()
            gc.freeze()

        def handle_exit(self, sig: int, frame: Any) -> None:
            begin = getattr(self._app.state, "begin_shutdown", None)
            if begin is not None:
                try:
                    asyncio.get_running_loop().call_soon(begin)
                except RuntimeError:
                    pass
            super().handle_exit(sig, frame)

    return GracefulServer(config, app)


def cmd_simulator(args: argparse.Namespace) -> int:
    from adapter.simulator import run_standalone

    _logging("INFO")
    try:
        asyncio.run(
            run_standalone(
                args.host, args.port, args.speed, args.seed, args.accounts, grid_long_side=args.grid_long_side, photo_images=args.photo_images
            )
        )
    except KeyboardInterrupt:
        pass
    return 0


def _server_settings(args: argparse.Namespace) -> Settings | None:
    """The server's own configuration as this shell sees it (the config file and MJ_ADAPTER_*),
    or None when there is none: the CLI then finds the server where it was started."""
    config = getattr(args, "config", None) or os.environ.get("MJ_ADAPTER_CONFIG")
    if not config and not any(k in os.environ for k in ("MJ_ADAPTER_HOST", "MJ_ADAPTER_PORT", "MJ_ADAPTER_PUBLIC_BASE_URL")):
        return None
    return load_settings(config)


def _client_base(args: argparse.Namespace) -> str:
    """--base-url; else the server's configuration (MJ_ADAPTER_HOST / PORT / PUBLIC_BASE_URL or the
    config file); else $OPENAI_BASE_URL; else the server's default address."""
    if args.base_url:
        return str(args.base_url).rstrip("/")
    settings = _server_settings(args)
    if settings is None:
        return (os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8080/v1").rstrip("/")
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + "/v1"
    # a server listening on every address is reached on this machine through loopback
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/v1"


def _first_key(keys: tuple[Any, ...]) -> str | None:
    return keys[0].reveal() if keys else None


def _client_headers(args: argparse.Namespace) -> dict[str, str]:
    settings = _server_settings(args)
    key = (
        args.api_key
        or os.environ.get("MJ_ADAPTER_CLIENT_KEY")
        or os.environ.get("OPENAI_API_KEY")
        # an operator's shell that runs the server holds its keys: use one of them
        or (settings and _first_key(settings.api_keys))
    )
    return {"Authorization": f"Bearer {key}"} if key else {}


def _admin_headers(args: argparse.Namespace) -> dict[str, str]:
    """Account control takes an admin key (MJ_ADAPTER_ADMIN_KEYS on the server); an operator's
    shell may hold both, so the admin key wins over the client key."""
    settings = _server_settings(args)
    key = args.admin_key or os.environ.get("MJ_ADAPTER_ADMIN_KEY") or (settings and _first_key(settings.admin_keys))
    return {"Authorization": f"Bearer {key}"} if key else _client_headers(args)


def _unreachable(url: str, exc: Exception) -> int:
    print(
        f"cannot reach the server at {url}: {exc}\n"
        "  start it with `mj-adapter serve`, or point the CLI at it with --base-url http://HOST:PORT/v1 "
        "(it also reads MJ_ADAPTER_HOST / MJ_ADAPTER_PORT, --config and $OPENAI_BASE_URL)",
        file=sys.stderr,
    )
    return 1


def _refused(url: str, resp: Any) -> int:
    print(f"error {resp.status_code} from {url}: {resp.text}", file=sys.stderr)
    return 1


def _bar(progress: int, width: int = 30) -> str:
    filled = int(width * progress / 100)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {progress:3d}%"


class _Progress:
    """One bar per Midjourney job (n up to 4 is one grid job; more are several), redrawn on one
    line while they run."""

    def __init__(self) -> None:
        self.jobs: dict[str, int] = {}

    def update(self, job_id: str, progress: int) -> None:
        self.jobs[job_id] = max(progress, self.jobs.get(job_id, 0))
        line = "  ".join(f"{j} {_bar(p, 20)}" for j, p in self.jobs.items())
        print("\r" + line, end="", file=sys.stderr, flush=True)


def cmd_imagine(args: argparse.Namespace) -> int:
    """A client of a running server through the OpenAI streaming images API."""
    import httpx

    body = {
        "model": args.model,
        "prompt": args.prompt,
        "n": args.n,
        "size": args.size,
        "stream": True,
        "response_format": "b64_json",
    }
    out = Path(args.out)
    url = _client_base(args) + "/images/generations"
    saved: list[Path] = []
    per_job: dict[str, int] = {}
    progress = _Progress()
    event = ""
    started = time.monotonic()
    print(f"{url}: {args.n} image(s) of {args.prompt!r}; saving to {out.resolve()}/", file=sys.stderr, flush=True)
    try:
        with httpx.stream("POST", url, json=body, headers=_client_headers(args), timeout=httpx.Timeout(30, read=None)) as resp:
            if resp.status_code != 200:
                resp.read()
                return _refused(url, resp)
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    continue
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                payload = json.loads(data)
                if "error" in payload:
                    print(f"\nerror: {payload['error'].get('message')}", file=sys.stderr)
                    return 1
                kind = payload.get("type", event)
                job_id = str(payload.get("job_id") or "image")
                if kind.endswith("partial_image"):
                    progress.update(job_id, int(payload.get("progress") or 0))
                elif kind.endswith("completed"):
                    # numbered 1-4 within each grid, as the image URLs and Midjourney's U1-U4 are
                    per_job[job_id] = per_job.get(job_id, 0) + 1
                    ext = {"jpeg": "jpg"}.get(payload.get("output_format", "png"), payload.get("output_format", "png"))
                    out.mkdir(parents=True, exist_ok=True)
                    path = out / f"{job_id}-{per_job[job_id]}.{ext}"
                    path.write_bytes(base64.b64decode(payload["b64_json"]))
                    saved.append(path)
                    progress.update(job_id, 100)
    except httpx.HTTPError as exc:
        return _unreachable(url, exc)
    print(f"\n{len(saved)} image(s) in {time.monotonic() - started:.1f}s, saved in {out.resolve()}/:", file=sys.stderr)
    for path in saved:
        print(path)
    return 0 if saved else 1


def cmd_accounts(args: argparse.Namespace) -> int:
    import httpx

    if args.action in ("pause", "resume") and not args.account:
        print("which account? e.g. `mj-adapter accounts resume discord-123`", file=sys.stderr)
        return 2
    url = f"{_client_base(args)}/accounts" + (f"/{args.account}/{args.action}" if args.action in ("pause", "resume") else "")
    try:
        if args.action in ("pause", "resume"):
            body = {"reason": args.reason} if args.action == "pause" and args.reason else None
            resp = httpx.post(url, json=body, headers=_admin_headers(args), timeout=10)
        else:
            resp = httpx.get(url, headers=_admin_headers(args), timeout=10)
    except httpx.HTTPError as exc:
        return _unreachable(url, exc)
    if resp.status_code != 200:
        return _refused(url, resp)
    rows = resp.json()
    print(f"{'ACCOUNT':<24} {'KIND':<8} {'STATE':<13} {'RUNNING':>7} {'QUEUED':>6}  REASON")
    for r in rows:
        print(f"{r['id']:<24} {r['kind']:<8} {r['state']:<13} {r['running']:>7} {r['queued']:>6}  {r.get('reason') or ''}")
    return 0


def mcp_url(base: str) -> str:
    """The /mcp endpoint of the server whose /v1 URL is `base`."""
    root = base.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root + "/mcp"


def cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP tools over stdio for desktop agents. Each tool call is forwarded to the running
    server's /mcp endpoint (with the key), so the tools are exactly the server's, and this
    process keeps no jobs of its own: they live in the server, visible to /v1 and /mj."""
    import anyio

    from adapter.api.mcp.server import RemoteRunner, build_server

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # stdout carries the protocol
    server = build_server(RemoteRunner(mcp_url(_client_base(args)), _client_headers(args)))
    anyio.run(server.run_stdio_async)
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from adapter.openapi_spec import spec_json

    sys.stdout.write(spec_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mj-adapter", description="Midjourney behind the OpenAI API.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server (demo mode when no account is configured)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--config", help="TOML configuration file")
    serve.set_defaults(fn=cmd_serve)

    sim = sub.add_parser("simulator", help="run the Midjourney simulator (a fake Discord) on its own")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--speed", type=float, default=1.0, help="speed multiplier (1 = realistic)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--accounts", type=int, default=2)
    sim.add_argument("--grid-long-side", type=int, default=None, help="pixels of a grid's long side (default 1024; Midjourney's are 2048)")
    sim.add_argument(
        "--photo-images", action="store_true", help="photo-like pictures (~7 MB PNG grids at 2048) instead of flat labelled panels"
    )
    sim.set_defaults(fn=cmd_simulator)

    for name, fn, text in (("imagine", cmd_imagine, "generate images through a running server"), ("accounts", cmd_accounts, "show, pause or resume the accounts of a running server"), ("mcp", cmd_mcp, "serve the MCP tools over stdio (for desktop agents), backed by a running server")):
        p = sub.add_parser(name, help=text)
        if name == "accounts":
            p.add_argument("action", nargs="?", choices=("list", "pause", "resume"), default="list")
            p.add_argument("account", nargs="?", help="account id (for pause/resume)")
            p.add_argument("--reason", help="why (for pause; at most 200 characters)")
            p.add_argument("--admin-key", help="a key from the server's MJ_ADAPTER_ADMIN_KEYS (default $MJ_ADAPTER_ADMIN_KEY, else --api-key)")
        if name == "imagine":
            p.add_argument("prompt")
            p.add_argument("--n", type=int, default=4)
            p.add_argument("--size", default="1024x1024")
            p.add_argument("--model", default="midjourney")
            p.add_argument("--out", default="images", help="where the images are saved (default ./images)")
        p.add_argument(
            "--base-url",
            help="the server's /v1 URL, e.g. http://127.0.0.1:9000/v1 (default: where MJ_ADAPTER_HOST / MJ_ADAPTER_PORT "
            "or --config put the server, else $OPENAI_BASE_URL, else http://127.0.0.1:8080/v1)",
        )
        p.add_argument("--config", help="the server's TOML configuration file (to find its address and keys)")
        p.add_argument("--api-key", help="default $MJ_ADAPTER_CLIENT_KEY, $OPENAI_API_KEY, or the server's first MJ_ADAPTER_API_KEYS")
        p.set_defaults(fn=fn)

    spec = sub.add_parser("openapi", help="print the OpenAPI spec")
    spec.set_defaults(fn=cmd_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(f"mj-adapter: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
