"""The Job: one Midjourney operation as the engine tracks it, from submit to its end."""

from __future__ import annotations

import enum
import time

import msgspec

from adapter.domain.actions import Action, Bot, Mode
from adapter.domain.buttons import Button, parse_custom_id
from adapter.domain.errors import ErrorCategory


class JobStatus(str, enum.Enum):
    # midjourney-proxy's names, so the /mj front door maps 1:1
    NOT_START = "NOT_START"
    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    MODAL = "MODAL"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCEL = "CANCEL"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.CANCEL)


def now_ms() -> int:
    return int(time.time() * 1000)


class ImageRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """An image we host: `key` names it in the image store; width/height in pixels; size in
    bytes (0: not recorded, images stored before sizes were kept)."""

    key: str
    width: int = 0
    height: int = 0
    content_type: str = "image/png"
    size: int = 0


class Job(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    owner: str  # API key id ("" when the server runs without keys)
    action: Action
    status: JobStatus = JobStatus.NOT_START
    prompt: str = ""  # what the caller asked for
    final_prompt: str = ""  # what Midjourney ran (as echoed back)
    mode: Mode = Mode.FAST
    bot: Bot = Bot.MIDJOURNEY
    parent_id: str | None = None
    index: int | None = None  # which image of the parent (U2 -> 2)
    custom_id: str | None = None  # the button pressed, for follow-ups
    modal_prompt: str | None = None  # remix / custom zoom / vary region prompt
    progress: int = 0
    preview_url: str | None = None  # Midjourney's URL of the latest progress image
    preview_image: ImageRef | None = None  # that preview, re-hosted by us (downscaled)
    image: ImageRef | None = None  # the whole result (grid or single image)
    images: list[ImageRef] = []  # the grid split into its four images, or [image] for singles
    source_image_url: str | None = None  # Midjourney's own URL of the result (expires)
    inputs: list[ImageRef] = []  # caller's images (image prompts, blend, describe, mask), kept so a
    # queued job can be rebuilt after a restart
    account_id: str | None = None
    message_id: str | None = None
    message_flags: int = 0
    job_hash: str | None = None
    nonce: str | None = None
    progress_message_id: str | None = None
    buttons: list[Button] = []
    result_texts: list[str] = []  # describe prompts / shorten options
    seed: str | None = None  # Midjourney's seed of the result, once someone asked for it
    fail_reason: str | None = None
    error_category: ErrorCategory | None = None
    created_at: int = msgspec.field(default_factory=now_ms)
    started_at: int | None = None
    finished_at: int | None = None
    webhook_url: str | None = None
    idempotency_key: str | None = None
    state: str | None = None  # caller's opaque value (midjourney-proxy `state`)
    attempts: int = 0  # submissions to Midjourney: must never exceed 1 by accident
    extra: dict[str, str] = {}


def is_grid_job(job: Job) -> bool:
    """A grid offers U1-U4 (grid upscales are not SOLO buttons)."""
    for b in job.buttons:
        parsed = parse_custom_id(b.custom_id) if b.custom_id else None
        if parsed is not None and parsed.action is Action.UPSCALE and not parsed.solo:
            return True
    return False
