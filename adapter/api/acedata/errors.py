"""That API's error object (`{"success": false, "error": {"code", "message"}}`), its codes, and the
mapping from engine refusals onto them. OpenAI's error never appears under /midjourney: these
routes have their own exception handlers."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.exceptions import HTTPException, NotFoundException
from litestar.openapi import ResponseSpec

from adapter.api.acedata.protocol import ErrorBody, ErrorDetail
from adapter.api.common.door_errors import ErrorMapping, door_responses, exception_handlers
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import Job, JobStatus
from adapter.engine.errors import (
    ActionNotAvailable,
    EngineError,
    InvalidRequest,
    JobNotFound,
    NoAccountAvailable,
    PromptRejected,
    QueueFull,
    TranslationFailed,
)


# the codes that API documents, with the HTTP status it sends them with (its OpenAPI document,
# AceDataCloud/Docs openapi/midjourney.json: 400 bad_request / token_mismatched /
# api_not_implemented, 401 invalid_token, 403 forbidden (moderation: "Sorry! Our AI moderators
# feel your prompt might be against our community standards."), 429 too_many_requests,
# 500 api_error, 504 timeout; the error body is {"error": {code, message}, "trace_id"}, and its
# Tasks guide shows "success": false beside them). not_found (404) is ours: its documents give no
# code for an unknown task or image id.
BAD_REQUEST = "bad_request"
NOT_IMPLEMENTED = "api_not_implemented"
INVALID_TOKEN = "invalid_token"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
TOO_MANY = "too_many_requests"
TIMEOUT = "timeout"
API_ERROR = "api_error"

STATUS = {BAD_REQUEST: 400, NOT_IMPLEMENTED: 400, INVALID_TOKEN: 401, FORBIDDEN: 403, NOT_FOUND: 404, TOO_MANY: 429, TIMEOUT: 504, API_ERROR: 500}


class AceError(Exception):
    def __init__(self, code: str, message: str, *, status: int | None = None, task_id: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)
        self.task_id = task_id
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        # a refusal about a task carries that task's id as its trace id (retrievable by it)
        return ErrorBody(success=False, error=ErrorDetail(code=self.code, message=self.message), task_id=self.task_id, trace_id=self.task_id or str(uuid.uuid4()))


def bad_request(message: str) -> AceError:
    return AceError(BAD_REQUEST, message)


def not_found(what: str) -> AceError:
    return AceError(NOT_FOUND, f"{what} does not exist (or belongs to another key).")


def not_offered(message: str) -> AceError:
    """A capability Midjourney does not offer over Discord: said so, never faked."""
    return AceError(NOT_IMPLEMENTED, message)


def job_error(job: Job) -> ErrorDetail:
    """Why a task ended without its result, in that API's codes."""
    if job.error_category is ErrorCategory.CONTENT_POLICY:
        return ErrorDetail(code=FORBIDDEN, message=job.fail_reason or "Midjourney's moderation refused the prompt.")
    if job.status is JobStatus.CANCEL:
        return ErrorDetail(code=API_ERROR, message=job.fail_reason or "The task was cancelled.")
    return ErrorDetail(code=API_ERROR, message=job.fail_reason or "The task failed.")


def from_engine(exc: EngineError) -> AceError:
    if isinstance(exc, PromptRejected):
        return AceError(FORBIDDEN, f"Banned prompt: the word {exc.word!r} is not allowed; nothing was sent to Midjourney.")
    if isinstance(exc, (QueueFull, NoAccountAvailable)):
        return AceError(TOO_MANY, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, JobNotFound):
        return not_found(f"Task {exc.job_id!r}")
    if isinstance(exc, TranslationFailed):
        return AceError(API_ERROR, exc.message, status=502)
    if isinstance(exc, (ActionNotAvailable, InvalidRequest)):
        return bad_request(exc.message)
    return AceError(API_ERROR, exc.message)


def _from_http(exc: HTTPException) -> AceError:
    if isinstance(exc, NotFoundException):
        return AceError(NOT_FOUND, "Unknown URL: this server has no such /midjourney endpoint.")
    code = BAD_REQUEST if exc.status_code < 500 else API_ERROR
    return AceError(code, str(exc.detail), status=exc.status_code)


EXCEPTION_HANDLERS = exception_handlers(
    ErrorMapping(
        error_type=AceError,
        from_engine=from_engine,
        from_body=lambda exc: bad_request(exc.message),
        from_http=_from_http,
        internal=lambda: AceError(API_ERROR, "Internal error."),
        name="the /midjourney API",
    )
)

_ERROR_STATUSES: dict[int, str] = {
    400: "bad_request (a malformed body, an action the image does not offer) or api_not_implemented (a capability Midjourney does not offer over Discord).",
    401: "invalid_token: no API key, or not one of ours.",
    403: "forbidden: the prompt was refused by moderation (ours or Midjourney's); invalid_token: a browser page from another origin called a keyless server.",
    404: "not_found: an unknown task or image id, or another key's.",
    429: "too_many_requests: the queues are full or no account can take the job.",
    500: "api_error: the task failed or an internal error.",
    504: "timeout: the task did not end within `timeout` (it goes on; retrieve it by `task_id`).",
}


def responses(success: type[Any], description: str) -> dict[int, ResponseSpec]:
    return door_responses(ErrorBody, _ERROR_STATUSES, success, description)
