"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from adapter.api.common.bodies import body_operation, decode_json
from adapter.api.common.sse import SSEResponse
from adapter.api.context import ApiContext, ctx_of, request_meta
from adapter.api.openai.errors import responses
from adapter.api.openai.protocol_chat import ChatCompletion, ChatCompletionRequest, parse_chat_request
from adapter.api.openai.router_images import openai_owner


@post(
    "/v1/chat/completions",
    status_code=200,
    operation_class=body_operation(ChatCompletionRequest, also_answers=("text/event-stream",)),
    responses=responses(ChatCompletion, "The answer; with `stream: true` a text/event-stream of chat.completion.chunk objects ending in [DONE]."),
)
async def create_chat_completion(request: Request[Any, Any, Any]) -> Response[Any]:
    """A chat turn runs one Midjourney job: the last user message is the prompt (or a command
    such as U2 on an earlier result); the answer shows the images as markdown."""
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    body = await request.body()
    req = parse_chat_request(decode_json(body, ChatCompletionRequest))
    serving = ctx.chat_serving
    # the job starts here, before any byte is sent: refusals are still proper HTTP errors
    turn = await serving.prepare(req, request_meta(request, owner, body))
    public = ctx.public_base(request)
    if req.stream:
        return SSEResponse(
            serving.stream(turn, owner, public, include_usage=req.include_usage),
            keepalive_seconds=ctx.settings.stream_keepalive_seconds,
        )
    answer = await serving.respond(turn, owner, public)
    return Response(content=msgspec.json.encode(answer), media_type="application/json")
