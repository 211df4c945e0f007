"""POST /v1/images/generations, GET /v1/models."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.params import FromPath
from litestar import Request, Response, get, post

from adapter.api.common.auth import bearer
from adapter.api.common.sse import SSEResponse
from adapter.api.context import ApiContext, ctx_of, request_meta
from adapter.api.openai.errors import OpenAIError, invalid, unknown_model
from adapter.api.openai.serving_images import ImageServing, build_plan


class ModelCard(msgspec.Struct):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "midjourney"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


def openai_owner(request: Request[Any, Any, Any]) -> str:
    ctx = ctx_of(request)
    owner = ctx.keys.owner(bearer(request.headers.get("authorization")))
    if owner is None:
        raise OpenAIError(
            401,
            "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.",
            type="invalid_request_error",
            code="invalid_api_key",
        )
    return owner


async def json_object(request: Request[Any, Any, Any]) -> tuple[dict[str, Any], bytes]:
    body = await request.body()
    try:
        data = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data, body


def _int_like(value: Any) -> Any:
    # form posts and some UIs send numbers as strings
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _str_or_none(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{key} must be a string.", key)
    return value


@get("/v1/models", sync_to_thread=False)
def list_models(request: Request[Any, Any, Any]) -> ModelList:
    openai_owner(request)
    ctx = ctx_of(request)
    created = int(ctx.started_at)
    return ModelList(data=[ModelCard(id=name, created=created) for name in ctx.catalog.names()])


@get("/v1/models/{model_id:str}", sync_to_thread=False)
def get_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> ModelCard:
    openai_owner(request)
    ctx = ctx_of(request)
    if ctx.catalog.resolve(model_id) is None:
        raise unknown_model(model_id, ctx.catalog.names())
    return ModelCard(id=model_id, created=int(ctx.started_at))


@post("/v1/images/generations", status_code=200)
async def create_image(request: Request[Any, Any, Any]) -> Response[Any]:
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    data, body = await json_object(request)
    plan = build_plan(
        ctx.catalog,
        prompt=data.get("prompt"),
        model=_str_or_none(data, "model"),
        n=_int_like(data.get("n")),
        size=_str_or_none(data, "size"),
        quality=_str_or_none(data, "quality"),
        style=_str_or_none(data, "style"),
        response_format=_str_or_none(data, "response_format"),
        output_format=_str_or_none(data, "output_format"),
        output_compression=_int_like(data.get("output_compression")),
        partial_images=_int_like(data.get("partial_images")),
        background=_str_or_none(data, "background"),
    )
    serving: ImageServing = ctx.extras["image_serving"]
    jobs = await serving.submit(plan, request_meta(request, owner, body))
    public = ctx.public_base(request)
    if data.get("stream") is True:
        return SSEResponse(serving.stream(plan, jobs, owner, public), keepalive_seconds=ctx.settings.stream_keepalive_seconds)
    answer = await serving.respond(plan, jobs, owner, public)
    return Response(content=msgspec.json.encode(answer), media_type="application/json")
