"""A Job as a midjourney-proxy Task: the one mapping used by fetch, list and webhooks."""

from __future__ import annotations

from typing import Any

import msgspec

from adapter.api.mjproxy.protocol import TaskButton, TaskView
from adapter.domain.actions import Action, Bot, Mode
from adapter.domain.jobs import Job, JobStatus
from adapter.media.store import image_url

# Our finer actions collapse onto the names midjourney-proxy clients know (PROTOCOL.md section 5);
# the exact one is kept in properties.jobAction.
ACTION_NAMES: dict[Action, str] = {
    Action.IMAGINE: "IMAGINE",
    Action.UPSCALE: "UPSCALE",
    Action.UPSCALE_SUBTLE: "UPSCALE",
    Action.UPSCALE_CREATIVE: "UPSCALE",
    Action.VARIATION: "VARIATION",
    Action.VARY_SUBTLE: "VARIATION",
    Action.VARY_STRONG: "VARIATION",
    Action.VARY_REGION: "VARIATION",
    Action.REROLL: "REROLL",
    Action.ZOOM: "ZOOM",
    Action.CUSTOM_ZOOM: "ZOOM",
    Action.PAN: "PAN",
    Action.DESCRIBE: "DESCRIBE",
    Action.BLEND: "BLEND",
    Action.SHORTEN: "SHORTEN",
    Action.ANIMATE: "VIDEO",  # midjourney-proxy Plus's name for animate tasks
    Action.CUSTOM: "ACTION",  # Plus's name for a button press it has no better name for
}

BOT_TYPES: dict[str, Bot] = {"MID_JOURNEY": Bot.MIDJOURNEY, "NIJI_JOURNEY": Bot.NIJI}
BOT_NAMES: dict[Bot, str] = {v: k for k, v in BOT_TYPES.items()}

MODE_PREFIXES: dict[str, Mode] = {"/mj-fast/": Mode.FAST, "/mj-relax/": Mode.RELAX, "/mj-turbo/": Mode.TURBO}

_TEXT_ACTIONS = (Action.DESCRIBE, Action.SHORTEN)


def progress_text(job: Job) -> str:
    value = 100 if job.status is JobStatus.SUCCESS else max(0, min(job.progress, 100))
    return f"{value}%"


def result_text(job: Job) -> str:
    """Describe / shorten results as one text, numbered with keycap digits the way Midjourney
    writes them (and midjourney-proxy passes them on in `prompt`)."""
    return "\n\n".join(f"{i}\ufe0f\u20e3 {t}" for i, t in enumerate(job.result_texts, start=1))


def _description(job: Job) -> str:
    if job.status is JobStatus.MODAL:
        return "Waiting for window confirm"
    if job.action is Action.IMAGINE and job.parent_id is None:
        return f"/imagine {job.prompt}"
    if job.action is Action.DESCRIBE:
        return "/describe"
    if job.action is Action.BLEND:
        return f"/blend {len(job.inputs)} images"
    if job.action is Action.SHORTEN:
        return f"/shorten {job.prompt}"
    index = f" #{job.index}" if job.index else ""
    return f"/{job.action.value.lower()}{index} of {job.parent_id}"


def _image(job: Job, base: str) -> str | None:
    if job.status is JobStatus.SUCCESS:
        if job.image is not None:
            return image_url(base, job.image.key)
        if job.action is Action.DESCRIBE and job.inputs:
            return image_url(base, job.inputs[0].key)
        return None
    if job.status.finished:
        return None
    if job.preview_image is not None:
        return image_url(base, job.preview_image.key)
    if job.action is Action.DESCRIBE and job.inputs:
        return image_url(base, job.inputs[0].key)
    return None


def task_view(job: Job, base: str) -> TaskView:
    texts = result_text(job) if job.action in _TEXT_ACTIONS and job.result_texts else ""
    # as midjourney-proxy does: a describe / shorten answer replaces the prompt. `prompt` is what
    # the caller wrote, `promptEn` what was sent (they differ when the prompt was translated)
    prompt = texts or job.extra.get("user_prompt") or job.prompt
    prompt_en = texts or job.prompt
    properties: dict[str, Any] = {
        "finalPrompt": texts or job.final_prompt or job.prompt,
        "jobAction": job.action.value,
        "mode": job.mode.value,
    }
    optional = {
        "messageId": job.message_id,
        "messageHash": job.job_hash,
        "discordInstanceId": job.account_id,
        "parentId": job.parent_id,
        "notifyHook": job.webhook_url,
        "errorCategory": job.error_category.value if job.error_category else None,
        "seed": job.seed,
    }
    properties.update({k: v for k, v in optional.items() if v})
    if job.message_id:
        properties["flags"] = job.message_flags
    if job.index:
        properties["index"] = job.index
    return TaskView(
        id=job.id,
        action=ACTION_NAMES.get(job.action, job.action.value),
        status=job.status.value,
        prompt=prompt,
        prompt_en=prompt_en,
        description=_description(job),
        state=job.state,
        submit_time=job.created_at,
        start_time=job.started_at,
        finish_time=job.finished_at,
        progress=progress_text(job),
        image_url=_image(job, base),
        fail_reason=job.fail_reason if job.status.finished and job.status is not JobStatus.SUCCESS else None,
        buttons=[
            TaskButton(custom_id=b.custom_id, emoji=b.emoji or "", label=b.label, style=b.style)
            for b in job.buttons
            if b.custom_id
        ],
        properties=properties,
        bot_type=BOT_NAMES.get(job.bot, "MID_JOURNEY"),
    )


_encoder = msgspec.json.Encoder()


def task_json(job: Job, base: str) -> bytes:
    return _encoder.encode(task_view(job, base))
