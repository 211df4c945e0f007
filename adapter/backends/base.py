"""The interface between the engine and whatever actually runs Midjourney jobs.

An `Account` is one place jobs can run: a Discord user account (adapter.backends.discord) or an
upstream midjourney-proxy provider (adapter.backends.mjproxy). The engine picks an account and
calls `run(op, mode, emit)`; the account reports what happens through `emit` and returns the
final output, or raises `JobFailed`. Nothing here knows about HTTP front doors.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, runtime_checkable

import msgspec

from adapter.domain.actions import Bot, Mode
from adapter.domain.buttons import Button
from adapter.domain.errors import ErrorCategory


class ImageInput(msgspec.Struct, frozen=True):
    """Bytes the caller supplied (already fetched and checked to be an image)."""

    filename: str
    content_type: str
    data: bytes


# --- operations -------------------------------------------------------------------------------


class Imagine(msgspec.Struct, frozen=True, tag="imagine"):
    prompt: str
    images: tuple[ImageInput, ...] = ()  # uploaded and prepended as image prompts
    bot: Bot = Bot.MIDJOURNEY


class PressButton(msgspec.Struct, frozen=True, tag="button"):
    """A button on a finished result. `prompt` answers the modal the button opens (custom zoom,
    remix, vary region); `mask_png` is the vary-region mask (white = redo)."""

    message_id: str
    custom_id: str
    message_flags: int = 0
    bot: Bot = Bot.MIDJOURNEY
    prompt: str | None = None
    mask_png: bytes | None = None


class Describe(msgspec.Struct, frozen=True, tag="describe"):
    image: ImageInput | None = None
    link: str | None = None
    bot: Bot = Bot.MIDJOURNEY


class Blend(msgspec.Struct, frozen=True, tag="blend"):
    images: tuple[ImageInput, ...]
    dimensions: Literal["portrait", "square", "landscape"] = "square"
    bot: Bot = Bot.MIDJOURNEY


class Shorten(msgspec.Struct, frozen=True, tag="shorten"):
    prompt: str
    bot: Bot = Bot.MIDJOURNEY


class Info(msgspec.Struct, frozen=True, tag="info"):
    bot: Bot = Bot.MIDJOURNEY


Operation = Imagine | PressButton | Describe | Blend | Shorten | Info


# --- what comes back --------------------------------------------------------------------------


class BackendError(msgspec.Struct, frozen=True):
    category: ErrorCategory
    message: str  # readable, safe to show a user (never a token)
    title: str | None = None


class JobFailed(Exception):
    def __init__(self, error: BackendError) -> None:
        super().__init__(error.message)
        self.error = error


class NotSent(JobFailed):
    """The operation never reached Midjourney (the account paused or closed while the job was
    waiting for its turn): the engine may safely run it on another account."""


class JobOutput(msgspec.Struct, frozen=True, kw_only=True):
    """The final result of an operation."""

    account_id: str
    message_id: str | None = None
    message_flags: int = 0
    job_hash: str | None = None
    image_url: str | None = None  # the grid or single image, at Midjourney's (expiring) URL
    prompt: str = ""  # the prompt as Midjourney echoed it
    buttons: tuple[Button, ...] = ()
    texts: tuple[str, ...] = ()  # describe prompts, shorten options, info lines
    mode: Mode | None = None


class JobEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A step of a running operation, in order: submitted -> waiting|queued -> progress... ;
    the final output is `run`'s return value, not an event."""

    # "sending": right before the interaction goes out, with the prompt exactly as sent
    kind: Literal["sending", "submitted", "waiting", "queued", "progress"]
    progress: int = 0
    preview_url: str | None = None
    prompt: str | None = None
    nonce: str | None = None
    message_id: str | None = None  # the progress message, for recovery
    mode: Mode | None = None
    interaction_ids: tuple[str, ...] = ()  # Discord's ids of its interactions: final messages carry one


EventSink = Callable[[JobEvent], None]
# Awaited with the interaction nonce right before the first request that could start a
# Midjourney job; the engine persists "submitted" there so a crash never leads to a resend.
BeforeSend = Callable[[str], Awaitable[None]]


# --- the account ------------------------------------------------------------------------------


class AccountState(str, enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    RECONNECTING = "reconnecting"
    COOLING_DOWN = "cooling_down"  # e.g. Midjourney's queue is full; ready again later
    PAUSED = "paused"  # a human must act (captcha, pending moderation message)
    DISABLED = "disabled"  # unusable (bad token, banned, subscription gone)
    STOPPED = "stopped"


class AccountStatus(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str  # "discord" | "mjproxy"
    state: AccountState
    reason: str | None = None
    modes: tuple[Mode, ...] = (Mode.FAST, Mode.RELAX)
    running: int = 0
    waiting: int = 0  # accepted by run() but not yet sent (concurrency or pacing)
    concurrency: int = 3
    queue_size: int = 10
    until_ms: int | None = None  # cooling down: when it is expected to take work again

    @property
    def load(self) -> int:
        return self.running + self.waiting

    @property
    def has_room(self) -> bool:
        return self.load < self.concurrency + self.queue_size


class RecoveryProbe(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine remembers of a job that was running when the process died."""

    operation: Operation
    submitted_at_ms: int
    nonce: str | None = None
    interaction_ids: tuple[str, ...] = ()
    progress_message_id: str | None = None
    prompt: str | None = None  # as Midjourney echoed it, else as it was sent
    mode: Mode | None = None


class ResultRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a finished job's result lives on its account (for seeds)."""

    message_id: str  # Discord: the result message; provider: the upstream task id
    job_hash: str | None = None
    message_flags: int = 0
    bot: Bot = Bot.MIDJOURNEY


StateListener = Callable[[AccountStatus], None]


@runtime_checkable
class Account(Protocol):
    @property
    def id(self) -> str: ...

    def status(self) -> AccountStatus: ...

    def add_listener(self, listener: StateListener) -> None:
        """Called on every state change (ready, paused with reason, disabled...)."""

    async def start(self) -> None:
        """Connect; returns once ready or failed (the state says which)."""

    async def close(self) -> None: ...

    async def drain(self, timeout: float) -> None:
        """Shutdown has begun: start nothing new, and return once every request that may
        start a Midjourney job has finished sending (or `timeout` passed)."""

    def pause(self, reason: str) -> None:
        """Stop taking work until resumed (an operator's decision, or a captcha)."""

    def resume(self) -> None:
        """Take work again after a pause."""

    async def run(
        self, op: Operation, mode: Mode, emit: EventSink, *, before_send: BeforeSend | None = None
    ) -> JobOutput:
        """Run one operation to its end. The engine calls it only when the account has a free
        slot (status().running < concurrency); the account still waits for its pacing gap.
        Raises NotSent if nothing reached Midjourney, JobFailed with a category otherwise;
        never returns without a final result."""

    async def recover(self, probe: RecoveryProbe, emit: EventSink) -> JobOutput:
        """After a restart: find a job sent before in the channel's history. Returns the result
        if it finished, follows it to the end if it is still running, raises JobFailed if it is
        gone. Never submits anything to Midjourney."""

    async def seed(self, result: ResultRef) -> str:
        """The seed Midjourney used for a finished job, as decimal text. Discord: reacts ✉️ to
        the result and reads the bot's DM. Raises JobFailed whose category says why (ACCOUNT,
        RETRYABLE, TIMEOUT, INVALID_REQUEST); never starts a Midjourney job."""

    async def cancel_running(self, progress_message_id: str) -> bool:
        """Ask Midjourney to stop a running job (Discord: ❌ on its progress message; provider:
        the upstream task id). True if the request was made, False if there was nothing to
        stop (it already finished, or its message is gone). The job itself then ends through
        run()/recover(), failing with category CANCELLED."""
