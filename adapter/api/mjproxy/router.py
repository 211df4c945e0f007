"""The /mj routes (midjourney-proxy protocol), also under /mj-fast, /mj-relax and /mj-turbo.

Handlers authenticate, decode and hand over to MjServing. The same handler functions are
mounted under each prefix; the prefix a request came through forces its speed mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from litestar import Request, Router, get, post, route
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from adapter.api.common.auth import bearer_or_bare
from adapter.api.common.bodies import body_operation, decode_json
from adapter.api.context import ctx_of, request_meta
from adapter.api.mjproxy import errors as E
from adapter.api.mjproxy.errors import EXCEPTION_HANDLERS, MjError, responses
from adapter.api.mjproxy.protocol import (
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    DescribeRequest,
    ImagineRequest,
    ListCondition,
    ModalRequest,
    ShortenRequest,
    SimpleChangeRequest,
    SubmitResult,
    TaskView,
)
from adapter.api.mjproxy.serving import MjServing
from adapter.api.mjproxy.views import MODE_PREFIXES, task_view
from adapter.domain.actions import Mode
from adapter.engine.specs import RequestMeta

TAGS = ["midjourney-proxy"]
T = TypeVar("T")


def serving_of(request: Request[Any, Any, Any]) -> MjServing:
    return ctx_of(request).mj_serving


def mj_owner(request: Request[Any, Any, Any]) -> str:
    """`mj-api-secret: <key>`, or `Authorization: Bearer <key>` (relays), or a bare
    `Authorization: <key>`: the same keys, and so the same owners, as the OpenAI front door."""
    ctx = ctx_of(request)
    owner = ctx.keys.owner(request.headers.get("mj-api-secret") or bearer_or_bare(request.headers.get("authorization")))
    if owner is None:
        raise MjError(
            E.VALIDATION_ERROR,
            "Missing or wrong API key: send it as 'mj-api-secret: <key>' or 'Authorization: Bearer <key>'.",
            status=401,
        )
    return owner


def forced_mode(request: Request[Any, Any, Any]) -> Mode | None:
    path: str = request.scope.get("path", "")
    return next((mode for prefix, mode in MODE_PREFIXES.items() if path.startswith(prefix)), None)


async def _body(request: Request[Any, Any, Any], model: type[T]) -> tuple[T, bytes]:
    # lax: midjourney-proxy's clients (Java ones among them) send numbers as strings
    body = await request.body()
    return decode_json(body, model, strict=False, empty_ok=True), body


async def _submit(request: Request[Any, Any, Any], model: type[Any]) -> tuple[MjServing, Any, RequestMeta]:
    owner = mj_owner(request)
    req, body = await _body(request, model)
    serving = serving_of(request)
    hook = serving.check_hook(getattr(req, "notify_hook", None))
    return serving, req, request_meta(request, owner, body, webhook_url=hook, state=getattr(req, "state", None))


# --- submit -----------------------------------------------------------------------------------


async def submit_imagine(request: Request[Any, Any, Any]) -> SubmitResult:
    """Imagine: `prompt`, optional `base64Array` image prompts (data URLs), `botType`."""
    serving, req, meta = await _submit(request, ImagineRequest)
    return await serving.imagine(req, meta, forced_mode(request))


async def submit_action(request: Request[Any, Any, Any]) -> SubmitResult:
    """Press a button (`customId`) of a finished task. Code 21 (task status MODAL) when a modal
    must follow through /mj/submit/modal (custom zoom, vary region)."""
    serving, req, meta = await _submit(request, ActionRequest)
    return await serving.action(req, meta, forced_mode(request))


async def submit_modal(request: Request[Any, Any, Any]) -> SubmitResult:
    """Answer a MODAL task: `prompt` (custom zoom: with --zoom), `maskBase64` (vary region)."""
    owner = mj_owner(request)
    req, _ = await _body(request, ModalRequest)
    return await serving_of(request).modal(req, owner)


async def submit_blend(request: Request[Any, Any, Any]) -> SubmitResult:
    """Blend 2-5 images (`base64Array`), `dimensions` PORTRAIT | SQUARE | LANDSCAPE."""
    serving, req, meta = await _submit(request, BlendRequest)
    return await serving.blend(req, meta, forced_mode(request))


async def submit_describe(request: Request[Any, Any, Any]) -> SubmitResult:
    """Describe an image (`base64` data URL): four prompts in the task's `prompt`."""
    serving, req, meta = await _submit(request, DescribeRequest)
    return await serving.describe(req, meta, forced_mode(request))


async def submit_shorten(request: Request[Any, Any, Any]) -> SubmitResult:
    """Shorten a `prompt`: the suggestions arrive in the task's `prompt`."""
    serving, req, meta = await _submit(request, ShortenRequest)
    return await serving.shorten(req, meta, forced_mode(request))


async def submit_change(request: Request[Any, Any, Any]) -> SubmitResult:
    """`action` UPSCALE | VARIATION | REROLL with `index` 1-4 on a finished grid."""
    serving, req, meta = await _submit(request, ChangeRequest)
    return await serving.change(req, meta, forced_mode(request))


async def submit_simple_change(request: Request[Any, Any, Any]) -> SubmitResult:
    """`content`: "<taskId> U2", "<taskId> V3" or "<taskId> R"."""
    serving, req, meta = await _submit(request, SimpleChangeRequest)
    return await serving.simple_change(req, meta, forced_mode(request))


# --- tasks ------------------------------------------------------------------------------------


async def task_fetch(request: Request[Any, Any, Any], task_id: FromPath[str]) -> TaskView:
    """The task: status, "NN%" progress, imageUrl (preview while running, ours when done),
    buttons. 404 + code 3 for a task that does not exist or belongs to another key."""
    owner = mj_owner(request)
    ctx = ctx_of(request)
    job = await ctx.mj_serving.task(task_id, owner)
    # a finished task's answer is given again to the same poll without this handler (fast_lane.py)
    return ctx.answers.json(request, task_view(job, ctx.public_base(request)), ctx.answers.marks([job]) or ())  # type: ignore[return-value]


async def task_list_by_condition(request: Request[Any, Any, Any]) -> list[TaskView]:
    """The caller's tasks among `ids` (unknown ids are left out)."""
    owner = mj_owner(request)
    cond, _ = await _body(request, ListCondition)
    return await serving_of(request).list_by_ids(cond.ids, owner, ctx_of(request).public_base(request))


async def task_list(request: Request[Any, Any, Any]) -> list[TaskView]:
    """The caller's 100 newest tasks."""
    owner = mj_owner(request)
    return await serving_of(request).recent(owner, ctx_of(request).public_base(request))


async def task_cancel(request: Request[Any, Any, Any], task_id: FromPath[str]) -> SubmitResult:
    """Cancel a task that has not ended."""
    owner = mj_owner(request)
    return await serving_of(request).cancel(task_id, owner)


async def task_image_seed(request: Request[Any, Any, Any], task_id: FromPath[str]) -> SubmitResult:
    """Midjourney's seed of a finished task: code 1 with the seed in `result` (asked of
    Midjourney once, then kept). Code 3 (404) for an unknown task, 4 (400) for one without an
    image yet, 9 when Midjourney did not tell it."""
    owner = mj_owner(request)
    return await serving_of(request).image_seed(task_id, owner)


async def unknown_endpoint(request: Request[Any, Any, Any], rest: FromPath[str]) -> None:
    # without this, a mistyped /mj URL would get the app-wide (OpenAI-shaped) 404
    raise MjError(E.NOT_FOUND, f"Unknown URL: this server has no /mj endpoint {request.url.path!r}.", status=404)


# (handler, method, path, request body Struct, success body, what success holds)
_ROUTES: list[tuple[Callable[..., Any], str, str, type[Any] | None, type[Any], str]] = [
    (submit_imagine, "POST", "/submit/imagine", ImagineRequest, SubmitResult, "Code 1 (submitted) or 22 (queued) with the task id in `result`; refusals: code 4, 9, 23, 24."),
    (submit_action, "POST", "/submit/action", ActionRequest, SubmitResult, "Code 1/22 with the new task id, or 21 when a modal must follow."),
    (submit_modal, "POST", "/submit/modal", ModalRequest, SubmitResult, "Code 1/22 with the task id."),
    (submit_blend, "POST", "/submit/blend", BlendRequest, SubmitResult, "Code 1/22 with the task id."),
    (submit_describe, "POST", "/submit/describe", DescribeRequest, SubmitResult, "Code 1/22 with the task id."),
    (submit_shorten, "POST", "/submit/shorten", ShortenRequest, SubmitResult, "Code 1/22 with the task id."),
    (submit_change, "POST", "/submit/change", ChangeRequest, SubmitResult, "Code 1/22 with the new task id."),
    (submit_simple_change, "POST", "/submit/simple-change", SimpleChangeRequest, SubmitResult, "Code 1/22 with the new task id."),
    (task_fetch, "GET", "/task/{task_id:str}/fetch", None, TaskView, "The task."),
    (task_list_by_condition, "POST", "/task/list-by-condition", ListCondition, list[TaskView] | SubmitResult, "The caller's tasks among `ids` (a malformed body: code 4)."),
    (task_list, "GET", "/task/list", None, list[TaskView], "The caller's newest tasks."),
    (task_cancel, "POST", "/task/{task_id:str}/cancel", None, SubmitResult, "Code 1 when cancelled, 4 when it already ended."),
    (task_image_seed, "GET", "/task/{task_id:str}/image-seed", None, SubmitResult, "Code 1 with the seed in `result`."),
]


def _handlers(in_schema: bool) -> list[HTTPRouteHandler]:
    out: list[HTTPRouteHandler] = []
    for fn, method, path, body, success, description in _ROUTES:
        deco = post if method == "POST" else get
        extra: dict[str, Any] = {"operation_class": body_operation(body)} if body is not None else {}
        out.append(
            deco(path, status_code=200, include_in_schema=in_schema, tags=TAGS, responses=responses(success, description), **extra)(fn)
        )
    methods: list[Any] = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    out.append(route("/{rest:path}", http_method=methods, include_in_schema=False)(unknown_endpoint))
    return out


def mj_routers() -> list[Router]:
    """/mj, plus the mode-prefixed copies (left out of the OpenAPI document: same operations)."""
    routers = [Router(path="/mj", route_handlers=_handlers(True), exception_handlers=EXCEPTION_HANDLERS)]
    for prefix in MODE_PREFIXES:
        routers.append(Router(path=f"{prefix.rstrip('/')}/mj", route_handlers=_handlers(False), exception_handlers=EXCEPTION_HANDLERS))
    return routers
