"""Hosted images may be cached for good only when retention never deletes them."""

from __future__ import annotations

from adapter.api.admin.routes import image_cache_control

NOW = 1_700_000_000.0
DAY = 86_400


def test_without_retention_a_year_and_immutable() -> None:
    assert image_cache_control(None, NOW - 10 * DAY, now=NOW) == "public, max-age=31536000, immutable"


def test_with_retention_the_time_left_and_not_immutable() -> None:
    assert image_cache_control(7, NOW, now=NOW) == f"public, max-age={7 * DAY}"
    assert image_cache_control(7, NOW - 2 * DAY, now=NOW) == f"public, max-age={5 * DAY}"
    assert image_cache_control(0.5, NOW - 3600, now=NOW) == f"public, max-age={DAY // 2 - 3600}"


def test_past_retention_it_is_zero() -> None:
    assert image_cache_control(1, NOW - 3 * DAY, now=NOW) == "public, max-age=0"


def test_a_file_from_the_future_counts_as_new_and_the_cap_is_a_year() -> None:
    # clock skew between writer and reader must not lengthen the lifetime past retention
    assert image_cache_control(2, NOW + 100, now=NOW) == f"public, max-age={2 * DAY}"
    assert image_cache_control(3650, NOW, now=NOW) == "public, max-age=31536000"
