"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post

from adapter.api.common.sse import SSEResponse
from adapter.api.context import ApiContext, ctx_of, request_meta
from adapter.api.openai.protocol_chat import parse_chat_request
from adapter.api.openai.router_images import json_object, openai_owner
from adapter.api.openai.serving_chat import ChatServing


@post("/v1/chat/completions", status_code=200)
async def create_chat_completion(request: Request[Any, Any, Any]) -> Response[Any]:
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    data, body = await json_object(request)
    req = parse_chat_request(data)
    serving: ChatServing = ctx.extras["chat_serving"]
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
