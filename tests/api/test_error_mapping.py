"""Limits and shutdown in each front door's own format: the true reason, the right status, and
when to come back (Retry-After)."""

from __future__ import annotations

from adapter.api.mjproxy import errors as mj
from adapter.api.openai.errors import from_engine, from_failed_job
from adapter.domain.actions import Action
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import Job, JobStatus
from adapter.engine.errors import NoAccountAvailable, QueueFull, ServiceClosing


def test_daily_cap_is_a_429_with_its_own_code_and_retry_after() -> None:
    exc = QueueFull("Every account for fast mode cannot take jobs until 00:00 UTC (a1: daily interaction cap (10) reached).", 5400, code="daily_cap_reached")
    err = from_engine(exc)
    assert err.status == 429 and err.headers["Retry-After"] == "5400"
    body = err.envelope().error
    assert body.code == "daily_cap_reached" and body.type == "rate_limit_error" and "00:00 UTC" in body.message
    m = mj.from_engine(exc)
    assert m.code == mj.QUEUE_FULL and m.properties["retryAfter"] == 5400 and m.headers["Retry-After"] == "5400"


def test_no_account_and_shutdown_are_503_with_retry_after() -> None:
    err = from_engine(NoAccountAvailable("No Midjourney account can take jobs right now (a1: paused (captcha)).", 60))
    assert err.status == 503 and err.headers["Retry-After"] == "60"
    assert err.envelope().error.code == "no_account_available"
    closing = from_engine(ServiceClosing())
    assert closing.status == 503 and closing.envelope().error.code == "service_shutting_down"
    assert closing.headers["Retry-After"] == "5"
    m = mj.from_engine(ServiceClosing())
    assert m.code == mj.NOT_FOUND and m.headers["Retry-After"] == "5"


def test_unknown_outcome_is_said_as_such() -> None:
    job = Job(id="j_x", owner="k", action=Action.IMAGINE, status=JobStatus.FAILURE, prompt="p", fail_reason="The outcome of this job is unknown: ...", error_category=ErrorCategory.OUTCOME_UNKNOWN)
    err = from_failed_job(job)
    assert err.status == 502 and err.envelope().error.code == "outcome_unknown"
    assert err.headers.get("x-should-retry") == "false"
