"""Durable job storage: SQLite embedded by default, Redis when several replicas share jobs."""

from adapter.stores.base import (
    FINGERPRINT_KEY,
    DuplicateJob,
    DuplicateOutboxItem,
    DuplicateRequest,
    JobStore,
    OutboxItem,
    StoreError,
    StoreUnavailable,
)
from adapter.stores.factory import open_store

__all__ = [
    "FINGERPRINT_KEY",
    "DuplicateJob",
    "DuplicateOutboxItem",
    "DuplicateRequest",
    "JobStore",
    "OutboxItem",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
