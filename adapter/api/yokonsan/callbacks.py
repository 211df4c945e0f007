"""Callbacks in yokonsan/midjourney-api's shape: each event of a job made through this front door
is POSTed to the configured `yokonsan_callback_url` as that project's message payload
(`task/bot/_typing.py` CallbackData). The project has no per-request callback field (one
`CALLBACK_URL` for the whole server), so neither do we.

Delivery is the engine's webhook machinery (outbox, claims, retries, Standard Webhooks
signature headers): a second WebhookDispatcher whose render is this module and whose only URL is
the callback URL, fed only with jobs of this front door.
"""

from __future__ import annotations

import hashlib
import logging

import msgspec

from adapter.api.mjproxy.hooks import webhook_base
from adapter.api.mjproxy.views import result_text
from adapter.api.yokonsan.protocol import Attachment, CallbackData, Embed, EmbedsImage
from adapter.api.yokonsan.serving import trigger_id_of
from adapter.config import Settings
from adapter.domain.actions import Action
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import ImageRef, Job, JobStatus
from adapter.engine.webhooks import WebhookDispatcher, WebhookOptions, hook_url_problem, load_or_create_secret
from adapter.media.store import image_url
from adapter.stores.base import JobStore

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4"}


def message_type(job: Job) -> str | None:
    """The project's TriggerStatus: start (Midjourney took it), generating (progress), end,
    error, banned (moderation), text (describe's answer). None: nothing to tell yet."""
    if job.status is JobStatus.SUCCESS:
        return "text" if job.action is Action.DESCRIBE else "end"
    if job.status in (JobStatus.FAILURE, JobStatus.CANCEL):
        return "banned" if job.error_category is ErrorCategory.CONTENT_POLICY else "error"
    if job.status is JobStatus.IN_PROGRESS:
        return "generating" if job.progress > 0 or job.preview_image is not None else "start"
    return None


def _snowflake(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _attachment(ref: ImageRef, job: Job, base: str, *, final: bool) -> Attachment:
    # Midjourney names files "<user>_<prompt words>_<job hash>.png": clients take msg_hash as
    # filename.split("_")[-1].split(".")[0]
    words = "_".join("".join(c for c in w if c.isalnum()) for w in (job.prompt or "image").split()[:6]) or "image"
    tail = job.job_hash or job.id.replace("_", "-")
    name = f"mjadapter_{words}_{tail}.{_EXT.get(ref.content_type, 'png')}" if final else f"{tail}_grid_0.webp"
    url = image_url(base, ref.key)
    return Attachment(
        id=int(hashlib.sha256(ref.key.encode()).hexdigest()[:15], 16),
        url=url,
        proxy_url=url,
        filename=name,
        content_type=ref.content_type,
        width=ref.width,
        height=ref.height,
        size=ref.size,
        ephemeral=False,
        spoiler=False,
    )


def _content(job: Job, trigger_id: str) -> str:
    prompt = job.final_prompt or job.prompt
    if job.status.finished and job.status is not JobStatus.SUCCESS:
        return f"**<#{trigger_id}#>{prompt}** (Stopped) {job.fail_reason or ''}".rstrip()
    if job.status is JobStatus.IN_PROGRESS:
        return f"**<#{trigger_id}#>{prompt}** - ({job.progress}%) ({job.mode.value})"
    if job.action is Action.UPSCALE and job.index:
        return f"**<#{trigger_id}#>{prompt}** - Image #{job.index}"
    return f"**<#{trigger_id}#>{prompt}** - ({job.mode.value})"


def callback_data(job: Job, base: str) -> CallbackData | None:
    trigger_id = trigger_id_of(job)
    kind = message_type(job)
    if trigger_id is None or kind is None:
        return None
    attachments: list[Attachment] = []
    embeds: list[Embed] = []
    if kind == "text":
        shown = job.inputs[0] if job.inputs else None
        url = image_url(base, shown.key) if shown else ""
        size = (shown.width, shown.height) if shown else (0, 0)
        embeds.append(Embed(type="rich", description=result_text(job), image=EmbedsImage(url=url, proxy_url=url, width=size[0], height=size[1])))
        content = ""
    else:
        if kind == "end" and job.image is not None:
            attachments.append(_attachment(job.image, job, base, final=True))
        elif kind == "generating" and job.preview_image is not None:
            attachments.append(_attachment(job.preview_image, job, base, final=False))
        content = _content(job, trigger_id)
    return CallbackData(
        type=kind,
        id=_snowflake(job.message_id or job.progress_message_id),
        content=content,
        attachments=attachments,
        embeds=embeds,
        trigger_id=trigger_id,
    )


class YokonsanCallbacks(WebhookDispatcher):
    """Only this front door's jobs, only to the callback URL, only the states the project
    reports (the inherited observe also skips a repeat of the same body)."""

    def observe(self, job: Job) -> None:
        if trigger_id_of(job) is None or message_type(job) is None:
            return
        if job.webhook_url:  # never set by this door; keep the callback URL the only target
            job = msgspec.structs.replace(job, webhook_url=None)
        super().observe(job)


def build_callbacks(settings: Settings, store: JobStore) -> YokonsanCallbacks | None:
    url = settings.yokonsan_callback_url
    if not url:
        return None
    if problem := hook_url_problem(url, settings.webhook_allow_hosts):
        log.warning("yokonsan_callback_url %s: callbacks will not be delivered", problem)
    base = webhook_base(settings)

    def render(job: Job) -> bytes:
        data = callback_data(job, base)
        return _encoder.encode(data) if data is not None else b"{}"

    options = WebhookOptions(
        global_url=url,
        retry_seconds=settings.webhook_retry_seconds,
        backoff_seconds=settings.webhook_backoff_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
        allow_hosts=settings.webhook_allow_hosts,
    )
    configured = settings.webhook_secret.reveal()
    return YokonsanCallbacks(store, render, options, lambda: load_or_create_secret(configured, settings.data_dir))
