"""Tables that translate an upstream midjourney-proxy's answers into our terms: submit codes,
task statuses, failure reasons, progress strings, describe/shorten texts."""

from __future__ import annotations

import re
from typing import Literal

from adapter.domain.actions import Bot
from adapter.domain.errors import ErrorCategory

SubmitOutcome = Literal["accepted", "queued", "modal"]

# result code -> what it means for the job we are running
SUBMIT_CODES: dict[int, SubmitOutcome | ErrorCategory] = {
    1: "accepted",
    22: "queued",  # accepted, waiting upstream
    21: "modal",  # Plus: answer with /mj/submit/modal
    23: ErrorCategory.QUEUE_FULL,
    24: ErrorCategory.CONTENT_POLICY,
    4: ErrorCategory.INVALID_REQUEST,
    3: ErrorCategory.RETRYABLE,  # task not found / no account upstream
    9: ErrorCategory.RETRYABLE,
}

# upstream task status -> our event kind (None: the task has ended)
STATUS_EVENTS: dict[str, Literal["waiting", "progress", "modal"] | None] = {
    "NOT_START": "waiting",
    "SUBMITTED": "waiting",
    "IN_PROGRESS": "progress",
    "MODAL": "modal",
    "SUCCESS": None,
    "FAILURE": None,
    "CANCEL": None,
}

BOT_TYPES: dict[Bot, str] = {Bot.MIDJOURNEY: "MID_JOURNEY", Bot.NIJI: "NIJI_JOURNEY"}
DIMENSIONS: dict[str, str] = {"portrait": "PORTRAIT", "square": "SQUARE", "landscape": "LANDSCAPE"}

# failReason keywords (English and the Chinese the open-source projects use), first match wins
_FAILURE_WORDS: tuple[tuple[ErrorCategory, tuple[str, ...]], ...] = (
    # before "cancel": Midjourney words moderation as "Request cancelled due to output filters"
    (ErrorCategory.CONTENT_POLICY, ("banned", "moderation", "filter", "敏感词", "违规", "审核")),
    (ErrorCategory.CANCELLED, ("cancel", "取消")),
    (ErrorCategory.QUEUE_FULL, ("queue full", "队列已满")),
    (ErrorCategory.TIMEOUT, ("timeout", "timed out", "超时")),
    (ErrorCategory.INVALID_REQUEST, ("invalid", "参数", "duplicate images")),
    (ErrorCategory.ACCOUNT, ("account", "账号", "subscription")),
)


def submit_outcome(code: object) -> SubmitOutcome | ErrorCategory:
    if isinstance(code, int) and not isinstance(code, bool):
        return SUBMIT_CODES.get(code, ErrorCategory.RETRYABLE)
    return ErrorCategory.RETRYABLE


def failure_category(reason: str | None, declared: object = None) -> ErrorCategory:
    """An upstream that is itself mj-adapter declares the category (properties.errorCategory);
    other providers only give a free-text failReason."""
    if isinstance(declared, str):
        try:
            return ErrorCategory(declared)
        except ValueError:
            pass
    text = (reason or "").casefold()
    for category, words in _FAILURE_WORDS:
        if any(w in text for w in words):
            return category
    return ErrorCategory.RETRYABLE


_PERCENT = re.compile(r"(\d{1,3})(?:\.\d+)?\s*%?")


def parse_progress(value: object) -> int:
    """"45%" (or 45, or "45") -> 45, clamped to 0-100; anything else -> 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0, min(int(value), 100))
    if isinstance(value, str) and (m := _PERCENT.fullmatch(value.strip())):
        return max(0, min(int(m.group(1)), 100))
    return 0


_KEYCAP = re.compile(r"(?:^|\s)([1-9])\ufe0f?\u20e3\s*")


def split_texts(text: str | None) -> tuple[str, ...]:
    """Describe / shorten results: "1️⃣ a ...\n\n2️⃣ b ..." -> ("a ...", "b ..."); unnumbered
    text splits on blank lines."""
    if not text or not text.strip():
        return ()
    marks = list(_KEYCAP.finditer(text))
    if marks:
        parts = [text[m.end() : nxt.start() if nxt else len(text)] for m, nxt in zip(marks, [*marks[1:], None])]
    else:
        parts = re.split(r"\n\s*\n", text)
    return tuple(p.strip() for p in parts if p.strip())
