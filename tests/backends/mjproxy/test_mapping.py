"""The tables that translate a provider's answers: submit codes, statuses, failure reasons,
progress strings and describe/shorten texts."""

from __future__ import annotations

import pytest

from adapter.backends.mjproxy.client import normalize_base
from adapter.backends.mjproxy.mapping import (
    STATUS_EVENTS,
    failure_category,
    parse_progress,
    split_texts,
    submit_outcome,
)
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import JobStatus


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (1, "accepted"),
        (22, "queued"),
        (21, "modal"),
        (23, ErrorCategory.QUEUE_FULL),
        (24, ErrorCategory.CONTENT_POLICY),
        (4, ErrorCategory.INVALID_REQUEST),
        (3, ErrorCategory.RETRYABLE),
        (9, ErrorCategory.RETRYABLE),
        (77, ErrorCategory.RETRYABLE),
        ("1", ErrorCategory.RETRYABLE),
        (True, ErrorCategory.RETRYABLE),
    ],
)
def test_submit_codes(code: object, outcome: object) -> None:
    assert submit_outcome(code) == outcome


def test_every_status_of_ours_is_known_upstream() -> None:
    # the provider speaks the same status names as our jobs
    assert set(STATUS_EVENTS) == {s.value for s in JobStatus}
    assert {k for k, v in STATUS_EVENTS.items() if v is None} == {"SUCCESS", "FAILURE", "CANCEL"}


@pytest.mark.parametrize(
    ("reason", "declared", "category"),
    [
        ("Banned prompt detected", None, ErrorCategory.CONTENT_POLICY),
        ("Request cancelled due to output filters", None, ErrorCategory.CONTENT_POLICY),  # Midjourney's moderation wording
        ("Cancelled by the caller.", None, ErrorCategory.CANCELLED),
        ("可能包含敏感词", None, ErrorCategory.CONTENT_POLICY),
        ("Invalid parameter", None, ErrorCategory.INVALID_REQUEST),
        ("Queue full", None, ErrorCategory.QUEUE_FULL),
        ("任务超时", None, ErrorCategory.TIMEOUT),
        ("Sorry! Could not complete the job!", None, ErrorCategory.RETRYABLE),
        (None, None, ErrorCategory.RETRYABLE),
        ("anything", "content_policy", ErrorCategory.CONTENT_POLICY),
        ("Banned prompt", "not-a-category", ErrorCategory.CONTENT_POLICY),
    ],
)
def test_failure_categories(reason: str | None, declared: object, category: ErrorCategory) -> None:
    assert failure_category(reason, declared) is category


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0%", 0), ("45%", 45), ("100%", 100), ("45", 45), (45, 45), (45.7, 45), ("12.5%", 12), ("250%", 100), ("", 0), (None, 0), ("abc", 0), (-3, 0)],
)
def test_progress_strings(value: object, expected: int) -> None:
    assert parse_progress(value) == expected


def test_split_texts() -> None:
    keycaps = "1\ufe0f\u20e3 a fox, snow --ar 3:2\n\n2\ufe0f\u20e3 two\n\n3\u20e3 three without the variation selector\n\n4\ufe0f\u20e3 four"
    assert split_texts(keycaps) == ("a fox, snow --ar 3:2", "two", "three without the variation selector", "four")
    assert split_texts("one\n\ntwo\n \nthree") == ("one", "two", "three")
    assert split_texts("") == () and split_texts(None) == ()
    # a digit inside a prompt is not a number mark
    assert split_texts("1\ufe0f\u20e3 version 6 of 10 foxes\n\n2\ufe0f\u20e3 b") == ("version 6 of 10 foxes", "b")


@pytest.mark.parametrize("url", ["http://p:8080", "http://p:8080/", "http://p:8080/mj", "http://p:8080/mj/", " http://p:8080/mj "])
def test_base_urls(url: str) -> None:
    assert normalize_base(url) == "http://p:8080"
