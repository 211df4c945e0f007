"""What the front doors ask the engine for. Handlers build these; the engine decides."""

from __future__ import annotations

from typing import Literal

import msgspec

from adapter.backends.base import ImageInput
from adapter.domain.actions import Action, Bot, Mode


class RequestMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Bookkeeping every job request carries."""

    owner: str
    idempotency_key: str | None = None
    fingerprint: str | None = None  # hash of the request; stored always
    is_retry: bool = False  # an SDK retry: look the fingerprint up before spending a job
    webhook_url: str | None = None
    state: str | None = None
    # front-door bookkeeping kept on the job (`Job.extra`), e.g. which wire format its webhook
    # payloads take; the engine only stores it
    tags: dict[str, str] = {}


class SubmitSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A new job that needs no parent: imagine, describe, blend, shorten."""

    meta: RequestMeta
    action: Literal[Action.IMAGINE, Action.DESCRIBE, Action.BLEND, Action.SHORTEN] = Action.IMAGINE
    prompt: str = ""
    mode: Mode = Mode.FAST
    bot: Bot = Bot.MIDJOURNEY
    images: tuple[ImageInput, ...] = ()  # image prompts (imagine), 2-5 (blend), 1 (describe)
    link: str | None = None  # describe by link instead of an upload
    dimensions: Literal["portrait", "square", "landscape"] = "square"  # blend


class ActSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A follow-up: press one of a finished job's buttons."""

    meta: RequestMeta
    parent_id: str
    custom_id: str
    prompt: str | None = None  # the modal's answer (custom zoom, remix, vary region)
    mask_png: bytes | None = None  # vary region
    mode: Mode | None = None  # default: the parent's mode
    # True: a button that needs a modal, asked without its prompt, becomes a MODAL job that waits
    # for submit_modal (midjourney-proxy's code 21). False: the prompt defaults to the parent's.
    defer_modal: bool = False
