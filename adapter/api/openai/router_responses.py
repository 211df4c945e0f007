"""POST /v1/responses, GET /v1/responses/{response_id}."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from adapter.api.common.bodies import body_operation, decode_json
from adapter.api.common.sse import SSEResponse
from adapter.api.context import ApiContext, ctx_of, request_meta
from adapter.api.openai.errors import responses
from adapter.api.openai.protocol_responses import ResponseCreateRequest, ResponseObject
from adapter.api.openai.router_images import openai_owner


def _json(answer: ResponseObject) -> Response[Any]:
    return Response(content=msgspec.json.encode(answer), media_type="application/json")


@post(
    "/v1/responses",
    status_code=200,
    operation_class=body_operation(ResponseCreateRequest, also_answers=("text/event-stream",)),
    responses=responses(
        ResponseObject,
        "The response: an image_generation_call item (the image as base64, plus its URL and job_id) and a message "
        "item with the answer in markdown; with `stream: true` a text/event-stream of response.* events; with "
        "`background: true` the response as it stands (retrieve it until it has finished).",
    ),
)
async def create_response(request: Request[Any, Any, Any]) -> Response[Any]:
    """A turn runs one Midjourney job, as a chat turn does: the input's last user message is
    the prompt (or a command such as U2 on the result of `previous_response_id`)."""
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    body = await request.body()
    req = decode_json(body, ResponseCreateRequest)
    serving = ctx.responses_serving
    # the job starts here, before any byte is sent: refusals are still proper HTTP errors
    turn = await serving.prepare(req, request_meta(request, owner, body))
    public = ctx.public_base(request)
    if req.stream:
        return SSEResponse(serving.stream(turn, owner, public), keepalive_seconds=ctx.settings.stream_keepalive_seconds)
    if req.background:
        return _json(await serving.current(turn, owner, public))
    return _json(await serving.respond(turn, owner, public))


@get("/v1/responses/{response_id:str}", responses=responses(ResponseObject, "The response, rebuilt from its job."))
async def retrieve_response(request: Request[Any, Any, Any], response_id: FromPath[str]) -> Response[Any]:
    """A response that ran a Midjourney job (`resp_<job id>`), as it stands: in progress,
    completed, failed or cancelled. Only the key that created it can read it."""
    owner = openai_owner(request)
    ctx = ctx_of(request)
    return _json(await ctx.responses_serving.retrieve(response_id, owner, ctx.public_base(request)))
