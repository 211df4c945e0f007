"""midjourney-proxy's result codes, its error body, and the mapping from engine refusals to them.

The protocol answers most failures with HTTP 200 and a `code` in the body (clients read the code,
not the status); queries for an unknown task answer 404 with code 3. OpenAI's error object never
appears under /mj: these routes have their own exception handlers.
"""

from __future__ import annotations

from typing import Any

from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from litestar.openapi import ResponseSpec

from adapter.api.common.door_errors import ErrorMapping, door_responses, exception_handlers
from adapter.api.mjproxy.protocol import SubmitResult
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


# midjourney-proxy result codes (PROTOCOL.md section 5)
SUBMITTED = 1
NOT_FOUND = 3  # unknown task, or no account can take the job
VALIDATION_ERROR = 4
SYSTEM_ERROR = 9
MODAL = 21  # Plus: a modal (prompt / mask) must follow via /mj/submit/modal
IN_QUEUE = 22  # accepted, waiting behind other jobs
QUEUE_FULL = 23
BANNED_PROMPT = 24

CODE_NAMES: dict[int, str] = {
    SUBMITTED: "submitted",
    NOT_FOUND: "not found",
    VALIDATION_ERROR: "validation error",
    SYSTEM_ERROR: "system error",
    MODAL: "modal required",
    IN_QUEUE: "in queue",
    QUEUE_FULL: "queue full",
    BANNED_PROMPT: "banned prompt",
}


class MjError(Exception):
    """A refusal in midjourney-proxy's shape. `status` is the HTTP status (200 for submit
    endpoints, as the protocol does; 401/404 where a client can only act on the status)."""

    def __init__(
        self,
        code: int,
        description: str,
        *,
        status: int = 200,
        properties: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status
        self.properties = properties or {}
        self.headers = headers or {}

    def body(self) -> SubmitResult:
        return SubmitResult(code=self.code, description=self.description, result=None, properties=self.properties)


def validation(description: str) -> MjError:
    return MjError(VALIDATION_ERROR, description)


def task_not_found(task_id: str, *, status: int = 200) -> MjError:
    return MjError(NOT_FOUND, f"Task {task_id!r} does not exist (or belongs to another key).", status=status)


def from_engine(exc: EngineError, *, not_found_status: int = 200) -> MjError:
    if isinstance(exc, PromptRejected):
        return MjError(
            BANNED_PROMPT,
            f"Banned prompt: the word {exc.word!r} is not allowed; nothing was sent to Midjourney.",
            properties={"bannedWord": exc.word},
        )
    if isinstance(exc, QueueFull):
        return MjError(
            QUEUE_FULL,
            f"Queue full, please try again later: {exc.message}",
            properties={"retryAfter": exc.retry_after, "limit": exc.code},
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, NoAccountAvailable):
        return MjError(
            NOT_FOUND,
            f"No account available: {exc.message}",
            properties={"retryAfter": exc.retry_after},
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, JobNotFound):
        return task_not_found(exc.job_id, status=not_found_status)
    if isinstance(exc, TranslationFailed):
        return MjError(SYSTEM_ERROR, exc.message, properties={"reason": "translation_failed"})
    if isinstance(exc, (ActionNotAvailable, InvalidRequest)):
        return validation(exc.message)
    return MjError(SYSTEM_ERROR, exc.message)


def _from_http(exc: HTTPException) -> MjError:
    if isinstance(exc, NotFoundException):
        return MjError(NOT_FOUND, "Unknown URL: this server has no such /mj endpoint.", status=404)
    if isinstance(exc, ValidationException):
        return validation(str(exc.detail))
    code = VALIDATION_ERROR if exc.status_code < 500 else SYSTEM_ERROR
    return MjError(code, str(exc.detail), status=exc.status_code)


EXCEPTION_HANDLERS = exception_handlers(
    ErrorMapping(
        error_type=MjError,
        from_engine=from_engine,
        from_body=lambda exc: validation(exc.message),
        from_http=_from_http,
        internal=lambda: MjError(SYSTEM_ERROR, "Internal error.", status=500),
        name="the /mj API",
    )
)


# The protocol answers refusals with HTTP 200 and a code in the body; these statuses are the
# exceptions, for the OpenAPI document.
_ERROR_STATUSES: dict[int, str] = {
    401: "No API key, or not one of ours (code 4).",
    403: "A browser page from another origin called a keyless server (code 4).",
    404: "Unknown task or endpoint (code 3).",
    413: "The request body is too large (code 4).",
    500: "An internal error (code 9).",
}


def responses(success: type[Any], description: str) -> dict[int, ResponseSpec]:
    return door_responses(SubmitResult, _ERROR_STATUSES, success, description)
