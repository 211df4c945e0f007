"""yokonsan/midjourney-api's error codes and body (its `exceptions.py` and `app/server.py`).

A request body that does not validate answers HTTP 400 `{"code": 13, "message": "request params
error: ..."}`; the project's own refusals answer HTTP 200 with their code (clients read the
code). We add only what a shared, keyed server needs: 401 for a missing/wrong key, 404 for an
unknown URL, 500 for an internal error, all in the same body.
"""

from __future__ import annotations

from typing import Any

from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import ResponseSpec

from adapter.api.common.door_errors import ErrorMapping, door_responses, exception_handlers
from adapter.api.yokonsan.protocol import ErrorResponse
from adapter.engine.errors import EngineError, NoAccountAvailable, PromptRejected, QueueFull


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

    def body(self) -> ErrorResponse:
        return ErrorResponse(code=self.code, message=self.message)


def params(message: str, *, status: int = 200) -> YkError:
    return YkError(REQUEST_PARAMS_ERROR, message, status=status)


def from_engine(exc: EngineError) -> YkError:
    if isinstance(exc, PromptRejected):
        return YkError(BANNED_PROMPT_ERROR, f"banned prompt: {exc.message}")
    if isinstance(exc, (QueueFull, NoAccountAvailable)):
        retry = getattr(exc, "retry_after", None)
        return YkError(QUEUE_FULL_ERROR, f"Task queue is full: {exc.message}", headers={"Retry-After": str(retry)} if retry else None)
    return params(exc.message)


def _from_http(exc: HTTPException) -> YkError:
    if isinstance(exc, NotFoundException):
        return params("Not Found", status=404)
    if isinstance(exc, ValidationException):
        return params(f"request params error: {exc.detail}", status=400)
    return params(str(exc.detail), status=exc.status_code)


EXCEPTION_HANDLERS = exception_handlers(
    ErrorMapping(
        error_type=YkError,
        from_engine=from_engine,
        from_body=lambda exc: params(f"request params error: {exc.message}", status=400),
        from_http=_from_http,
        internal=lambda: YkError(MAX_RETRY_ERROR, "Internal error.", status=500),
        name="the /v1/api/trigger API",
    )
)

_ERROR_STATUSES: dict[int, str] = {
    400: "The body is not the request it should be (code 13, `request params error: ...`).",
    401: "No API key, or not one of ours (code 13).",
    403: "A browser page from another origin called a keyless server (code 13).",
    404: "Unknown endpoint (code 13).",
    500: "An internal error (code 12).",
}


def responses(success: type[Any], description: str) -> dict[int, ResponseSpec]:
    # the project answers its refusals with 200 too
    refusals = " Refusals also answer 200, as `{code, message}`: 13 bad parameters / unknown message, 14 banned prompt, 15 queue full."
    return door_responses(ErrorResponse, _ERROR_STATUSES, success | ErrorResponse, description + refusals)
