"""POST /v1/images/generations, GET /v1/models."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.params import FromPath
from litestar import Request, Response, get, post

from adapter.api.common.auth import bearer
from adapter.api.common.sse import SSEResponse
from adapter.api.context import ApiContext, ctx_of, request_meta
from adapter.api.common.bodies import body_operation, decode_json
from adapter.api.openai.errors import OpenAIError, responses, unknown_model
from adapter.api.openai.protocol_images import ImageGenerationRequest, ImagesResponse
from adapter.api.openai.serving_images import make_plan


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


@get("/v1/models", sync_to_thread=False, responses=responses(ModelList, "The models: Midjourney bots and speeds, plus the configured aliases."))
def list_models(request: Request[Any, Any, Any]) -> ModelList:
    openai_owner(request)
    ctx = ctx_of(request)
    created = int(ctx.started_at)
    # the same for the process's life: given again to the same request without this handler
    return ctx.answers.json(request, ModelList(data=[ModelCard(id=name, created=created) for name in ctx.catalog.names()]), (), fixed=True)  # type: ignore[return-value]


@get("/v1/models/{model_id:str}", sync_to_thread=False, responses=responses(ModelCard, "The model."))
def get_model(request: Request[Any, Any, Any], model_id: FromPath[str]) -> ModelCard:
    openai_owner(request)
    ctx = ctx_of(request)
    if ctx.catalog.resolve(model_id) is None:
        raise unknown_model(model_id, ctx.catalog.names())
    return ModelCard(id=model_id, created=int(ctx.started_at))


@post(
    "/v1/images/generations",
    status_code=200,
    operation_class=body_operation(ImageGenerationRequest, also_answers=("text/event-stream",)),
    responses=responses(ImagesResponse, "The images; with `stream: true` a text/event-stream of image_generation.partial_image and image_generation.completed events."),
)
async def create_image(request: Request[Any, Any, Any]) -> Response[Any]:
    """Generate images with Midjourney: `n` up to 4 from one grid, more from several; `quality`
    hd/high upscales each image; `size` becomes --ar."""
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    body = await request.body()
    req = decode_json(body, ImageGenerationRequest)
    plan = make_plan(ctx.catalog, req, req.prompt, style=req.style)
    serving = ctx.image_serving
    meta = request_meta(request, owner, body)
    jobs = await serving.submit(plan, meta)
    public = ctx.public_base(request)
    if req.stream:
        return SSEResponse(serving.stream(plan, jobs, owner, public), keepalive_seconds=ctx.settings.stream_keepalive_seconds)
    pairs = await serving.results(plan, jobs, owner)
    answer = msgspec.json.encode(await serving.answer(plan, jobs, pairs, public))
    # an idempotent retry of a finished request gets this again without this handler (fast_lane.py)
    ctx.answers.keep(request.scope, body, answer, serving.replay_marks(plan, meta, jobs, pairs), stamped=True)
    return Response(content=answer, media_type="application/json")
