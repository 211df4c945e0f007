"""OpenAI's error object and the mapping from engine refusals and job failures to it."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi import ResponseSpec

from adapter.api.common.bodies import BodyError

from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import Job
from adapter.engine.errors import (
    ActionNotAvailable,
    EngineError,
    InvalidRequest,
    JobNotFound,
    NoAccountAvailable,
    PromptRejected,
    QueueFull,
    ServiceClosing,
    TranslationFailed,
)


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(message=message, type=type, param=param, code=code)
        self.headers = headers or {}

    def envelope(self) -> ErrorEnvelope:
        return ErrorEnvelope(error=self.body)


def invalid(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def unknown_model(name: str | None, available: list[str]) -> OpenAIError:
    return OpenAIError(
        404, f"The model '{name}' does not exist. Available: {', '.join(available)}.", param="model", code="model_not_found"
    )


def from_engine(exc: EngineError) -> OpenAIError:
    if isinstance(exc, PromptRejected):
        return OpenAIError(400, exc.message, param="prompt", code="content_policy_violation", headers={"x-should-retry": "false"})
    if isinstance(exc, QueueFull):
        return OpenAIError(
            429, exc.message, type="rate_limit_error", code=exc.code, headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, NoAccountAvailable):
        code = "service_shutting_down" if isinstance(exc, ServiceClosing) else "no_account_available"
        return OpenAIError(503, exc.message, type="server_error", code=code, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, JobNotFound):
        return OpenAIError(404, exc.message, param=exc.param, code="not_found")
    if isinstance(exc, TranslationFailed):
        # the prompt translator (an upstream of ours) failed; nothing was started, so a retry is safe
        return OpenAIError(502, exc.message, type="server_error", param="prompt", code="translation_failed")
    if isinstance(exc, (ActionNotAvailable, InvalidRequest)):
        return OpenAIError(400, exc.message, param=exc.param, code="invalid_action" if isinstance(exc, ActionNotAvailable) else None)
    return OpenAIError(500, exc.message, type="server_error", headers={"x-should-retry": "false"})


def from_failed_job(job: Job) -> OpenAIError:
    """A job that ended in FAILURE or CANCEL, as the error its request answers with."""
    reason = job.fail_reason or "The Midjourney job failed."
    cat = job.error_category
    if cat is ErrorCategory.CONTENT_POLICY:
        return OpenAIError(400, reason, param="prompt", code="content_policy_violation", headers={"x-should-retry": "false"})
    if cat is ErrorCategory.INVALID_REQUEST:
        return OpenAIError(400, reason, param="prompt", code="invalid_prompt", headers={"x-should-retry": "false"})
    if cat is ErrorCategory.QUEUE_FULL:
        return OpenAIError(429, reason, type="rate_limit_error", code="queue_full", headers={"Retry-After": "30"})
    if cat is ErrorCategory.TIMEOUT:
        return OpenAIError(504, reason, type="server_error", code="timeout", headers={"x-should-retry": "false"})
    if cat is ErrorCategory.OUTCOME_UNKNOWN:
        return OpenAIError(502, reason, type="server_error", code="outcome_unknown", headers={"x-should-retry": "false"})
    if cat is ErrorCategory.CANCELLED:
        return OpenAIError(409, reason, type="invalid_request_error", code="cancelled", headers={"x-should-retry": "false"})
    # Midjourney-side failures: a retry creates a new job, but the SDK's blind retries would
    # spend jobs on an account that may be in trouble, so say plainly not to.
    return OpenAIError(500, reason, type="server_error", code="midjourney_error", headers={"x-should-retry": "false"})


def error_response(exc: OpenAIError) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(exc.envelope()),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers,
    )


def handle_openai_error(_: Request[Any, Any, Any], exc: OpenAIError) -> Response[Any]:
    return error_response(exc)


def handle_engine_error(_: Request[Any, Any, Any], exc: EngineError) -> Response[Any]:
    return error_response(from_engine(exc))


def handle_body_error(_: Request[Any, Any, Any], exc: BodyError) -> Response[Any]:
    return error_response(invalid(exc.message, exc.param, exc.code))


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        return error_response(OpenAIError(404, "Unknown URL: this server does not have that endpoint.", code="unknown_url"))
    if isinstance(exc, ValidationException):
        return error_response(OpenAIError(400, str(exc.detail)))
    kind = "invalid_request_error" if status < 500 else "server_error"
    return error_response(OpenAIError(status, str(exc.detail), type=kind))


def handle_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    import logging

    logging.getLogger(__name__).exception("unhandled error", exc_info=exc)
    return error_response(OpenAIError(500, "Internal server error.", type="server_error"))


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    OpenAIError: handle_openai_error,
    EngineError: handle_engine_error,
    BodyError: handle_body_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}


# What each status means on this API, for the OpenAPI document. Every operation lists them all:
# the error body is the same object whatever went wrong.
_ERROR_STATUSES: dict[int, str] = {
    400: "The request is invalid (`param` names the field).",
    401: "No API key, or not one of ours.",
    403: "Refused: an admin key is needed, or a browser page from another origin called a keyless server.",
    404: "No such model, job, account or endpoint (or it belongs to another key).",
    409: "The job was cancelled.",
    413: "The request body is too large.",
    429: "An account limit or queue is full; see Retry-After.",
    500: "Midjourney or this service failed.",
    502: "The job's outcome could not be established, or the prompt translator failed (nothing was started).",
    503: "No account can take jobs now, or the service is shutting down; see Retry-After.",
    504: "The job did not finish in time.",
}


def responses(success: type[Any] | None, description: str, *, media_type: str = "application/json") -> dict[int, ResponseSpec]:
    out = {status: ResponseSpec(data_container=ErrorEnvelope, description=text, generate_examples=False) for status, text in _ERROR_STATUSES.items()}
    out[200] = ResponseSpec(data_container=success, description=description, media_type=media_type, generate_examples=False)
    return out
