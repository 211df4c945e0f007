"""Job ids: opaque, URL-safe, unguessable, and sortable by creation time."""

from __future__ import annotations

import base64
import os
import re
import time

JOB_ID_RE = re.compile(r"^j_[a-z2-7]{20}$")


def new_job_id() -> str:
    # 40 bits of milliseconds then 60 random bits, base32: ids sort by creation time
    ms = int(time.time() * 1000) & ((1 << 40) - 1)
    raw = ms.to_bytes(5, "big") + os.urandom(8)
    return "j_" + base64.b32encode(raw).decode().lower().rstrip("=")[:20]


def is_job_id(value: str) -> bool:
    return bool(JOB_ID_RE.match(value))
