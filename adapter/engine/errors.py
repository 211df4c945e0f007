"""What the engine refuses, in terms each front door maps to its own error format."""

from __future__ import annotations

from adapter.domain.errors import ErrorCategory


class EngineError(Exception):
    category: ErrorCategory = ErrorCategory.INTERNAL

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(EngineError):
    category = ErrorCategory.INVALID_REQUEST


class PromptRejected(EngineError):
    """The local banned-word list refused the prompt before any Midjourney job was spent."""

    category = ErrorCategory.CONTENT_POLICY

    def __init__(self, word: str) -> None:
        super().__init__(f"The prompt contains a banned word ({word!r}) and was not sent to Midjourney.", param="prompt")
        self.word = word


class QueueFull(EngineError):
    """Nothing can take the job now, but something will at a known time (a full queue, a daily
    cap): 429 with Retry-After. `code` says which limit."""

    category = ErrorCategory.QUEUE_FULL

    def __init__(self, message: str, retry_after: int, *, code: str = "queue_full") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class NoAccountAvailable(EngineError):
    """No account can serve the request now (all paused/disabled/connecting, or none serves the
    mode)."""

    category = ErrorCategory.ACCOUNT

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobNotFound(EngineError):
    category = ErrorCategory.INVALID_REQUEST

    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job with id {job_id!r}.", param="job_id")
        self.job_id = job_id


class ActionNotAvailable(EngineError):
    """A follow-up that the parent job does not offer (not finished, or no such button)."""

    category = ErrorCategory.INVALID_REQUEST


class ServiceClosing(NoAccountAvailable):
    """The service is shutting down and takes no new jobs (another replica or the restarted
    process will)."""

    def __init__(self) -> None:
        super().__init__("The service is shutting down and takes no new jobs; retry in a few seconds.", retry_after=5)


class SeedUnavailable(EngineError):
    """A finished job's seed could not be read from Midjourney (its message is gone, the bot
    sent no DM, the account is unusable). `category` says which."""

    def __init__(self, message: str, category: ErrorCategory) -> None:
        super().__init__(message, param="job_id")
        self.category = category


class TranslationFailed(EngineError):
    """The configured prompt translator gave no usable English text (unreachable, timed out, an
    error status, a malformed or empty answer, or one that lost the parts kept as written). The
    prompt was not sent in its original language instead: nothing was started."""

    category = ErrorCategory.RETRYABLE

    def __init__(self, message: str) -> None:
        super().__init__(message, param="prompt")
