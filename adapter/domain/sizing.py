"""OpenAI `size` -> Midjourney `--ar`, and the reverse for reporting sizes."""

from __future__ import annotations

import math
import re

# ASCII digits only: `\d` alone would take Arabic-Indic and other digits too
_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$", re.ASCII)
# Midjourney accepts ratios up to 2:1 on most versions, and whole numbers only.
MAX_AR_SIDE = 1000


class SizeError(ValueError):
    pass


def aspect_for_size(size: str | None) -> str | None:
    """`1792x1024` -> `7:4`; `auto` / None -> None (Midjourney's default 1:1)."""
    if size is None or size.strip().lower() in ("", "auto"):
        return None
    m = _SIZE_RE.match(size)
    if not m:
        raise SizeError(f"size must be 'auto' or WIDTHxHEIGHT (e.g. 1024x1024), got {size!r}")
    w, h = int(m[1]), int(m[2])
    if w <= 0 or h <= 0:
        raise SizeError("size width and height must be positive")
    g = math.gcd(w, h)
    w, h = w // g, h // g
    if max(w, h) > MAX_AR_SIDE:
        # keep the shape, bring the numbers into a range Midjourney takes
        scale = max(w, h) / MAX_AR_SIDE
        w, h = max(1, round(w / scale)), max(1, round(h / scale))
    return f"{w}:{h}"


def parse_ar(value: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", value, re.ASCII)
    if not m or int(m[1]) == 0 or int(m[2]) == 0:
        return None
    return int(m[1]), int(m[2])


def size_label(width: int, height: int) -> str:
    return f"{width}x{height}"
