"""A scripted in-memory Account for engine tests: the engine's side of the contract is what is
under test here; the Discord account is tested against the simulator elsewhere."""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import Callable
from typing import Any

from PIL import Image

from adapter.backends.base import (
    AccountState,
    AccountStatus,
    BackendError,
    BeforeSend,
    EventSink,
    Imagine,
    JobEvent,
    JobFailed,
    JobOutput,
    NotSent,
    Operation,
    PressButton,
    RecoveryProbe,
    StateListener,
)
from adapter.domain import buttons as b
from adapter.domain.actions import Mode
from adapter.domain.errors import ErrorCategory


def grid_png(size: tuple[int, int] = (64, 64)) -> bytes:
    img = Image.new("RGB", size)
    w, h = size
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    for i, colour in enumerate(colours):
        x0, y0 = (i % 2) * w // 2, (i // 2) * h // 2
        img.paste(colour, (x0, y0, x0 + w // 2, y0 + h // 2))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def grid_buttons(job_hash: str) -> tuple[b.Button, ...]:
    ids = [b.upsample(i, job_hash) for i in range(1, 5)] + [b.reroll(job_hash)] + [b.variation(i, job_hash) for i in range(1, 5)]
    return tuple(b.Button(custom_id=c, label=c.split("::")[2]) for c in ids)


def upscaled_buttons(job_hash: str) -> tuple[b.Button, ...]:
    ids = [b.upscale_subtle(job_hash), b.upscale_creative(job_hash), b.vary_subtle(job_hash), b.vary_strong(job_hash), b.vary_region(job_hash), b.zoom_out(2.0, job_hash), b.custom_zoom(job_hash)]
    return tuple(b.Button(custom_id=c, label="x") for c in ids)


class FakeAccount:
    kind = "fake"

    def __init__(self, account_id: str = "a1", *, modes: tuple[Mode, ...] = (Mode.FAST, Mode.RELAX), concurrency: int = 2, queue_size: int = 2) -> None:
        self._id = account_id
        self.modes = modes
        self.concurrency = concurrency
        self.queue_size = queue_size
        self.state = AccountState.READY
        self.reason: str | None = None
        self.listeners: list[StateListener] = []
        self.sent: list[Operation] = []  # what reached "Midjourney"
        self.running = 0
        self.max_running = 0
        self.gate: asyncio.Event | None = None  # when set, jobs block until it is set
        self.fail_with: BackendError | None = None
        self.not_sent = False
        self.not_sent_after_submit = 0  # this many runs persist "submitted", then raise NotSent
        self.until_ms: int | None = None
        self.drained = False
        self.cancel_requests: list[str] = []
        self.recovered: list[RecoveryProbe] = []
        self.recover_result: Callable[[RecoveryProbe], JobOutput] | None = None
        self.started = asyncio.Event()

    @property
    def id(self) -> str:
        return self._id

    def status(self) -> AccountStatus:
        return AccountStatus(
            id=self._id, kind=self.kind, state=self.state, reason=self.reason, modes=self.modes,
            running=self.running, concurrency=self.concurrency, queue_size=self.queue_size, until_ms=self.until_ms,
        )

    def add_listener(self, listener: StateListener) -> None:
        self.listeners.append(listener)

    def set_state(self, state: AccountState, reason: str | None = None) -> None:
        self.state, self.reason = state, reason
        for listener in self.listeners:
            listener(self.status())

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def drain(self, timeout: float) -> None:
        self.drained = True

    async def cancel_running(self, progress_message_id: str) -> bool:
        self.cancel_requests.append(progress_message_id)
        return False  # nothing to stop at a fake Midjourney: the engine cancels locally

    def output(self, op: Operation) -> JobOutput:
        h = str(uuid.uuid4())
        single = isinstance(op, PressButton) and (parsed := b.parse_custom_id(op.custom_id)) is not None and parsed.action.value.startswith("UPSCALE")
        return JobOutput(
            account_id=self._id,
            message_id=f"m-{h[:8]}",
            job_hash=h,
            image_url=data_url(grid_png()),
            prompt=op.prompt if isinstance(op, Imagine) else "",
            buttons=upscaled_buttons(h) if single else grid_buttons(h),
        )

    async def run(self, op: Operation, mode: Mode, emit: EventSink, *, before_send: BeforeSend | None = None) -> JobOutput:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.started.set()
        try:
            if self.not_sent:
                raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="not sent"))
            if before_send is not None:
                await before_send("nonce-" + uuid.uuid4().hex[:6])
            if self.not_sent_after_submit > 0:
                self.not_sent_after_submit -= 1
                raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message="Discord did not take it"))
            self.sent.append(op)
            emit(JobEvent(kind="waiting", message_id="progress-1"))
            if self.gate is not None:
                await self.gate.wait()
            emit(JobEvent(kind="progress", progress=50, preview_url=data_url(grid_png((32, 32)))))
            await asyncio.sleep(0)
            if self.fail_with is not None:
                raise JobFailed(self.fail_with)
            return self.output(op)
        finally:
            self.running -= 1

    async def recover(self, probe: RecoveryProbe, emit: EventSink) -> JobOutput:
        self.recovered.append(probe)
        if self.recover_result is None:
            raise JobFailed(BackendError(category=ErrorCategory.RETRYABLE, message="gone"))
        return self.recover_result(probe)


def any_args(*_: Any, **__: Any) -> None:
    return None
