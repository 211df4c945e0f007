"""yokonsan/midjourney-api's error codes and body (its `exceptions.py` and `app/server.py`).

A request body that does not validate answers HTTP 400 `{"code": 13, "message": "request params
error: ..."}`; the project's own refusals answer HTTP 200 with their code (clients read the
code). We add only what a shared, keyed server needs: 401 for a missing/wrong key, 404 for an
unknown URL, 500 for an internal error, all in the same body.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import ResponseSpec

from adapter.api.common.bodies import BodyError
from adapter.api.yokonsan.protocol import ErrorResponse
from adapter.engine.errors import EngineError, NoAccountAvailable, PromptRejected, QueueFull

log = logging.getLogger(__name__)

# exceptions.py ErrorCode
MISS_REQUIRED_VARIABLE_ERROR = 11
MAX_RETRY_ERROR = 12
REQUEST_PARAMS_ERROR = 13
BANNED_PROMPT_ERROR = 14
QUEUE_FULL_ERROR = 15


class YkError(Exception):
    def __init__(self, code: int, message: str, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}


def params(message: str, *, status: int = 200) -> YkError:
    return YkError(REQUEST_PARAMS_ERROR, message, status=status)


def from_engine(exc: EngineError) -> YkError:
    if isinstance(exc, PromptRejected):
        return YkError(BANNED_PROMPT_ERROR, f"banned prompt: {exc.message}")
    if isinstance(exc, (QueueFull, NoAccountAvailable)):
        retry = getattr(exc, "retry_after", None)
        return YkError(QUEUE_FULL_ERROR, f"Task queue is full: {exc.message}", headers={"Retry-After": str(retry)} if retry else None)
    return params(exc.message)


def _respond(exc: YkError) -> Response[Any]:
    body = msgspec.json.encode(ErrorResponse(code=exc.code, message=exc.message))
    return Response(content=body, status_code=exc.status, media_type="application/json", headers=exc.headers)


def handle_yk_error(_: Request[Any, Any, Any], exc: YkError) -> Response[Any]:
    return _respond(exc)


def handle_engine_error(_: Request[Any, Any, Any], exc: EngineError) -> Response[Any]:
    return _respond(from_engine(exc))


def handle_body_error(_: Request[Any, Any, Any], exc: BodyError) -> Response[Any]:
    return _respond(params(f"request params error: {exc.message}", status=400))


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotFoundException):
        return _respond(params("Not Found", status=404))
    if isinstance(exc, ValidationException):
        return _respond(params(f"request params error: {exc.detail}", status=400))
    return _respond(params(str(exc.detail), status=exc.status_code))


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error in the /v1/api/trigger API", exc_info=exc)
    return _respond(YkError(MAX_RETRY_ERROR, "Internal error.", status=500))


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    YkError: handle_yk_error,
    EngineError: handle_engine_error,
    BodyError: handle_body_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}

_ERROR_STATUSES: dict[int, str] = {
    400: "The body is not the request it should be (code 13, `request params error: ...`).",
    401: "No API key, or not one of ours (code 13).",
    404: "Unknown endpoint (code 13).",
    500: "An internal error (code 12).",
}


def responses(success: type[Any], description: str) -> dict[int, ResponseSpec]:
    out = {s: ResponseSpec(data_container=ErrorResponse, description=t, generate_examples=False) for s, t in _ERROR_STATUSES.items()}
    out[200] = ResponseSpec(
        data_container=success | ErrorResponse,  # type: ignore[arg-type]
        description=description + " Refusals also answer 200, as `{code, message}`: 13 bad parameters / unknown message, 14 banned prompt, 15 queue full.",
        generate_examples=False,
    )
    return out
