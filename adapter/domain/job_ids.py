"""Job ids: opaque, URL-safe, unguessable, and sortable by creation time."""

from __future__ import annotations

import base64
import os
import re
import time

# New ids use base32hex ([0-9a-v]); ids made before that used RFC 4648 base32 ([a-z2-7]) and
# are still valid ids.
JOB_ID_RE = re.compile(r"^j_[0-9a-z]{20}$")


def new_job_id() -> str:
    # 40 bits of milliseconds then 60 random bits. base32hex, because its alphabet is in ASCII
    # order (plain base32 puts "2".."7" after "z" in value but before "a" in ASCII), so the
    # strings sort by creation time.
    ms = int(time.time() * 1000) & ((1 << 40) - 1)
    raw = ms.to_bytes(5, "big") + os.urandom(8)
    return "j_" + base64.b32hexencode(raw).decode().lower().rstrip("=")[:20]


def is_job_id(value: str) -> bool:
    return bool(JOB_ID_RE.match(value))
