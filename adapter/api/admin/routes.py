"""Operations endpoints: liveness, readiness, Prometheus metrics, account states, and the image
files we host."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import msgspec
from litestar.params import FromPath
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import File

from adapter.api.context import ctx_of
from adapter.api.openai.errors import OpenAIError
from adapter.api.openai.router_images import openai_owner
from adapter.backends.base import Account, AccountState
from adapter.media.store import content_type_from_key, is_valid_key


class Health(msgspec.Struct):
    status: str
    uptime_seconds: float


class AccountView(msgspec.Struct):
    id: str
    kind: str
    state: str
    reason: str | None
    modes: list[str]
    running: int
    queued: int
    concurrency: int
    queue_size: int
    # cooling down (a daily cap, Midjourney's queue full): when it takes jobs again, ISO 8601 UTC
    available_at: str | None = None


class Readiness(msgspec.Struct, omit_defaults=True):
    ready: bool
    demo: bool
    accounts: list[AccountView]
    simulator_url: str | None = None  # demo mode: the built-in simulator (loopback)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _accounts(request: Request[Any, Any, Any]) -> list[AccountView]:
    ctx = ctx_of(request)
    return [
        AccountView(
            id=st.id,
            kind=st.kind,
            state=st.state.value,
            reason=st.reason,
            modes=[m.value for m in st.modes],
            running=st.running,
            queued=st.waiting,
            concurrency=st.concurrency,
            queue_size=st.queue_size,
            available_at=_iso(st.until_ms) if st.until_ms is not None and st.state is AccountState.COOLING_DOWN else None,
        )
        for st in ctx.scheduler.statuses()
    ]


@get("/healthz", sync_to_thread=False)
def healthz(request: Request[Any, Any, Any]) -> Health:
    return Health(status="ok", uptime_seconds=round(time.time() - ctx_of(request).started_at, 3))


@get("/readyz", sync_to_thread=False)
def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    ctx = ctx_of(request)
    ready = ctx.scheduler.any_ready()
    body = Readiness(ready=ready, demo=ctx.settings.demo, accounts=_accounts(request), simulator_url=ctx.extras["demo"].get("simulator_url"))
    return Response(body, status_code=200 if ready else 503)


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics(request: Request[Any, Any, Any]) -> str:
    ctx = ctx_of(request)
    counts = await ctx.service.store.count_by_status()
    return ctx.extras["metrics"].render(ctx.scheduler, counts)


def _admin(request: Request[Any, Any, Any]) -> None:
    owner = openai_owner(request)
    if not ctx_of(request).keys.is_admin(owner):
        raise OpenAIError(403, "This key may not manage accounts (MJ_ADAPTER_ADMIN_KEYS).", type="permission_error", code="forbidden")


@get("/v1/accounts", sync_to_thread=False)
def accounts(request: Request[Any, Any, Any]) -> list[AccountView]:
    _admin(request)
    return _accounts(request)


class PauseBody(msgspec.Struct):
    reason: str = "paused by an operator"


def _account_or_404(request: Request[Any, Any, Any], account_id: str) -> Account:
    account = ctx_of(request).scheduler.account(account_id)
    if account is None:
        raise OpenAIError(404, f"No account with id {account_id!r}.", param="account_id", code="not_found")
    return account


@post("/v1/accounts/{account_id:str}/pause", status_code=200)
async def pause_account(request: Request[Any, Any, Any], account_id: FromPath[str]) -> list[AccountView]:
    """Stop giving the account work; its queued jobs move to other accounts."""
    _admin(request)
    body = await request.body()
    reason = msgspec.json.decode(body, type=PauseBody).reason if body.strip() else PauseBody().reason
    _account_or_404(request, account_id).pause(reason[:200])
    return _accounts(request)


@post("/v1/accounts/{account_id:str}/resume", status_code=200)
async def resume_account(request: Request[Any, Any, Any], account_id: FromPath[str]) -> list[AccountView]:
    """Take work again, e.g. after a human solved the captcha in Discord."""
    _admin(request)
    _account_or_404(request, account_id).resume()
    return _accounts(request)


@get("/images/{key:path}")
async def image_file(request: Request[Any, Any, Any], key: FromPath[str]) -> File:
    key = key.lstrip("/")
    ctx = ctx_of(request)
    path = await ctx.images.path(key) if is_valid_key(key) else None
    if path is None:
        raise NotFoundException("No such image.")
    return File(
        path=path,
        media_type=content_type_from_key(key) or "application/octet-stream",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )
