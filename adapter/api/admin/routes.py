"""Operations endpoints: liveness, readiness, Prometheus metrics, account states, and the image
files we host."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

import msgspec
from litestar.params import FromPath
from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.openapi import ResponseSpec
from litestar.response import Stream

from adapter.api.common.auth import bearer
from adapter.api.common.bodies import ONE_LINE, body_operation, decode_json
from adapter.api.context import ctx_of
from adapter.api.openai.errors import OpenAIError, responses
from adapter.api.openai.router_images import openai_owner
from adapter.backends.base import Account, AccountState
from adapter.engine.retention import DAY_SECONDS
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
    # several replicas: the one driving the account, since when (ISO 8601 UTC), and whether it is
    # the replica that answered
    replica: str | None = None
    held_since: str | None = None
    held_here: bool | None = None


class Readiness(msgspec.Struct, omit_defaults=True):
    """Anyone (a load balancer's probe) sees `ready` alone; an admin (or the local operator in
    keyless mode) also sees the accounts, since their names, states and reasons say what the
    operator runs and when it is down."""

    ready: bool
    demo: bool | None = None
    accounts: list[AccountView] | None = None
    simulator_url: str | None = None  # demo mode: the built-in simulator (loopback)


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _accounts(request: Request[Any, Any, Any]) -> list[AccountView]:
    ctx = ctx_of(request)
    holders = ctx.cluster.holders() if ctx.cluster is not None else {}
    me = ctx.cluster.replica_id if ctx.cluster is not None else None
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
            replica=(held := holders.get(st.id)) and held.replica_id,
            held_since=_iso(held.since_ms) if held else None,
            held_here=(held.replica_id == me) if held else (False if me else None),
        )
        for st in ctx.scheduler.statuses()
    ]


@get("/healthz", sync_to_thread=False, responses={200: ResponseSpec(Health, description="Alive.", generate_examples=False)})
def healthz(request: Request[Any, Any, Any]) -> Health:
    return Health(status="ok", uptime_seconds=round(time.time() - ctx_of(request).started_at, 3))


def _presents_admin_key(request: Request[Any, Any, Any]) -> bool:
    keys = ctx_of(request).keys
    return keys.is_admin(keys.owner(bearer(request.headers.get("authorization"))))


def _admin(request: Request[Any, Any, Any]) -> None:
    """401 without a valid key, 403 with a key that is not in ADMIN_KEYS (with none configured,
    every key: customer keys must not control the accounts)."""
    owner = openai_owner(request)
    if not ctx_of(request).keys.is_admin(owner):
        raise OpenAIError(
            403,
            "This endpoint needs an admin key: set MJ_ADAPTER_ADMIN_KEYS on the server and call it with one of those keys.",
            type="permission_error",
            code="admin_key_required",
        )


@get(
    "/readyz",
    sync_to_thread=False,
    responses={
        200: ResponseSpec(Readiness, description="Ready: an account can take jobs (details with an admin key).", generate_examples=False),
        503: ResponseSpec(Readiness, description="Not ready: no account can take jobs.", generate_examples=False),
        **{k: v for k, v in responses(None, "").items() if k in (401, 403)},
    },
)
def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    """Probes get the bare answer without a key; account names, states and reasons (which say
    what the operator runs and when it is down) are for admins."""
    ctx = ctx_of(request)
    ready = ctx.scheduler.any_ready()
    body: Readiness = Readiness(ready=ready)
    if _presents_admin_key(request):
        body = Readiness(ready=ready, demo=ctx.settings.demo, accounts=_accounts(request), simulator_url=ctx.simulator_url)
    return Response(body, status_code=200 if ready else 503)


@get("/metrics", media_type="text/plain; version=0.0.4", responses=responses(str, "Prometheus metrics (admin key).", media_type="text/plain; version=0.0.4"))
async def metrics(request: Request[Any, Any, Any]) -> str:
    _admin(request)
    ctx = ctx_of(request)
    counts = await ctx.service.store.count_by_status()
    return ctx.metrics.render(
        ctx.scheduler,
        counts,
        cluster=ctx.cluster.counters() if ctx.cluster is not None else None,
        repeats=(ctx.answers.hits, len(ctx.answers)),
    )


@get("/v1/accounts", sync_to_thread=False, responses=responses(list[AccountView], "Every account and its state (admin key)."))
def accounts(request: Request[Any, Any, Any]) -> list[AccountView]:
    _admin(request)
    return _accounts(request)


class PauseBody(msgspec.Struct, kw_only=True):
    # shown in `accounts` listings, logs and the CLI's table: one bounded line
    reason: Annotated[str, msgspec.Meta(max_length=200, pattern=ONE_LINE)] = "paused by an operator"


def _account_or_404(request: Request[Any, Any, Any], account_id: str) -> Account:
    account = ctx_of(request).scheduler.known(account_id)
    if account is None:
        raise OpenAIError(404, f"No account with id {account_id!r}.", param="account_id", code="not_found")
    return account


@post(
    "/v1/accounts/{account_id:str}/pause",
    status_code=200,
    operation_class=body_operation(PauseBody),
    responses=responses(list[AccountView], "Every account, the paused one included (admin key)."),
)
async def pause_account(request: Request[Any, Any, Any], account_id: FromPath[str]) -> list[AccountView]:
    """Stop giving the account work; its queued jobs move to other accounts."""
    _admin(request)
    reason = decode_json(await request.body(), PauseBody, empty_ok=True).reason
    _account_or_404(request, account_id).pause(reason.strip() or PauseBody().reason)
    return _accounts(request)


@post("/v1/accounts/{account_id:str}/resume", status_code=200, responses=responses(list[AccountView], "Every account (admin key)."))
async def resume_account(request: Request[Any, Any, Any], account_id: FromPath[str]) -> list[AccountView]:
    """Take work again, e.g. after a human solved the captcha in Discord."""
    _admin(request)
    _account_or_404(request, account_id).resume()
    return _accounts(request)


@get(
    "/images/{key:path}",
    operation_class=body_operation(None, also_answers=("image/jpeg", "image/webp", "image/gif", "video/mp4")),
    responses={
        200: ResponseSpec(bytes, description="The image (or MP4 video) file.", media_type="image/png", generate_examples=False),
        **{k: v for k, v in responses(None, "").items() if k == 404},
    },
)
async def image_file(request: Request[Any, Any, Any], key: FromPath[str]) -> Stream:
    key = key.lstrip("/")
    ctx = ctx_of(request)
    image = await ctx.images.open(key) if is_valid_key(key) else None
    if image is None:  # also: deleted by retention in between
        raise NotFoundException("No such image.")
    media_type = content_type_from_key(key) or "application/octet-stream"
    headers = {"Cache-Control": image_cache_control(ctx.settings.retention_days, image.mtime), "X-Content-Type-Options": "nosniff"}
    # the bytes of an already opened file or object, passed through as they are read
    return Stream(
        image.chunks,
        media_type=media_type,
        headers={**headers, "Content-Length": str(image.size), "Content-Disposition": "inline"},
    )


YEAR_SECONDS = 31536000


def image_cache_control(retention_days: float | None, mtime: float, now: float | None = None) -> str:
    """Our image files never change, so without retention they are cacheable for good. With
    retention they are deleted some time after they were written (a job's images are written
    before it finishes, and retention counts from the finish), so no cache may keep one past
    the file's age plus the retention period: a deleted image must not live on in CDNs."""
    if retention_days is None:
        return f"public, max-age={YEAR_SECONDS}, immutable"
    age = (time.time() if now is None else now) - mtime
    left = int(retention_days * DAY_SECONDS - max(age, 0.0))
    return f"public, max-age={min(max(left, 0), YEAR_SECONDS)}"
