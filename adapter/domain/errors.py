"""Failure categories shared by every layer: the backend classifies, the engine decides, the
front doors map a category to their own error format."""

from __future__ import annotations

import enum


class ErrorCategory(str, enum.Enum):
    CONTENT_POLICY = "content_policy"  # banned prompt, output/image filters, moderation delete
    INVALID_REQUEST = "invalid_request"  # bad flags, bad link, duplicate images
    QUEUE_FULL = "queue_full"  # Midjourney's queue (or ours) is full: try later
    ACCOUNT = "account"  # the account needs a human, or is unusable
    RETRYABLE = "retryable"  # Midjourney-side failure; a new attempt may work
    TIMEOUT = "timeout"  # the job took longer than its mode allows
    # it reached Midjourney, but what became of it could not be seen (no result, no refusal)
    OUTCOME_UNKNOWN = "outcome_unknown"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
