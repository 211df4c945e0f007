"""Errors of the Discord transport (REST and gateway).

The transport only reports what Discord said; the account session decides what each error means
for the account (pause on captcha, disable on 401, fail the job on 50035...). No message here
may carry the token: REST scrubs server-supplied text with `redact` before raising.
"""

from __future__ import annotations

from typing import Any


def redact(text: str, *secrets: str) -> str:
    """Replace every occurrence of each (non-empty) secret with a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class DiscordError(Exception):
    """A Discord API call failed. `status` is the HTTP status (0 when no answer came back),
    `code` Discord's JSON error code when it sent one."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Discord API error {status}" + (f" (code {code})" if code else "") + f": {message}")
        self.status = status
        self.code = code
        self.message = message


class Unauthorized(DiscordError):
    """401: the token is invalid or revoked. Never retried."""


class Forbidden(DiscordError):
    """403: the account may not do this (missing access, account needs verification...)."""


class CaptchaRequired(DiscordError):
    """Discord wants a human to solve a captcha. Never retried; the account must stop."""

    def __init__(
        self, status: int, code: int | None, message: str, *, service: str | None, sitekey: str | None
    ) -> None:
        super().__init__(status, code, message)
        self.service = service
        self.sitekey = sitekey


class InvalidFormBody(DiscordError):
    """50035: the payload was rejected (for interactions, often a stale command version)."""

    def __init__(self, status: int, code: int | None, message: str, *, errors: Any = None) -> None:
        super().__init__(status, code, message)
        self.errors = errors  # Discord's nested `errors` object, for logs and diagnosis


class RateLimitExhausted(DiscordError):
    """Still rate limited after the allowed attempts, or the required wait is longer than the
    caller allows. `retry_after` is the wait (seconds) Discord last asked for."""

    def __init__(self, status: int, code: int | None, message: str, *, retry_after: float) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class DiscordUnavailable(DiscordError):
    """5xx answers or network failures persisted through every attempt."""


class OutcomeUnknown(DiscordError):
    """A request that must not run twice (an interaction) got a 5xx or no answer after it was
    sent: Discord may or may not have taken it. Never retried blindly; the caller looks for
    evidence (gateway events, channel history) before deciding."""


class GatewayError(Exception):
    pass


class GatewayFatal(GatewayError):
    """The gateway refused the account for good (bad token, forbidden) or connecting failed too
    often. `close_code` is the websocket close code when one caused it."""

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


class GatewayClosed(GatewayError):
    """The client was closed by its owner while someone waited for it to be ready."""
