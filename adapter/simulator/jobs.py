"""Midjourney jobs: per-account concurrency and queue, and the lifecycle of one job in scaled
time (PROTOCOL.md section 3):

    MESSAGE_CREATE "(Waiting to start)" (with the nonce) -> MESSAGE_UPDATE "(NN%) (fast)" with a
    blurred `<uuid>_grid_0.webp` preview, every few seconds -> MESSAGE_CREATE of the result (new
    id, no nonce, image + buttons) -> MESSAGE_DELETE of the progress message.

U1-U4 are instant in today's Midjourney: no progress message, only the result.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
import random
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Literal

import msgspec
from PIL import Image, ImageEnhance

from adapter.domain.actions import Action, Mode
from adapter.domain.prompt import parse_prompt
from adapter.simulator import content, images
from adapter.simulator.context import SimContext
from adapter.simulator.faults import FailFault
from adapter.simulator.messages import Messenger, Origin
from adapter.simulator.state import UserState
from adapter.simulator.wire import ActionRow, Attachment, Message

log = logging.getLogger(__name__)

GRID_STEPS = (0, 15, 31, 46, 62, 78, 93)
MAX_JOBS = 5000  # finished jobs beyond this are forgotten, oldest first (a long demo run)
UPSCALE_STEPS = (0, 31, 62, 93)
VIDEO_FRAMES = 6  # frames of a simulated video (an animated WebP, as Midjourney delivers them)


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    STALLED = "stalled"
    DONE = "done"
    FAILED = "failed"
    MODERATED = "moderated"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # queue full: never ran

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING, JobState.STALLED)


class Plan(msgspec.Struct, frozen=True):
    """Realistic seconds; the clock scales them."""

    start_delay: float
    step: float
    steps: tuple[int, ...]
    jitter: tuple[float, ...]


def plan_for(action: Action, mode: Mode, rng: random.Random) -> Plan:
    if action is Action.UPSCALE:
        return Plan(start_delay=rng.uniform(1.0, 2.5), step=0.0, steps=(), jitter=())
    if mode is Mode.TURBO:
        start, step = rng.uniform(0.5, 1.5), rng.uniform(2.0, 3.5)
    elif mode is Mode.RELAX:
        start, step = rng.uniform(10.0, 40.0), rng.uniform(12.0, 20.0)
    else:
        start, step = rng.uniform(1.0, 3.0), rng.uniform(5.0, 7.0)
    steps = UPSCALE_STEPS if action in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE) else GRID_STEPS
    jitter = tuple(rng.uniform(-0.5, 0.5) for _ in steps)
    return Plan(start_delay=start, step=step, steps=steps, jitter=jitter)


def job_hash(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class SimJob:
    def __init__(
        self,
        *,
        rng: random.Random,
        action: Action,
        user: UserState,
        app_id: str,
        channel_id: str,
        prompt: str,
        mode: Mode,
        origin: Origin,
        shape: Literal["grid", "single"],
        size: tuple[int, int],
        colours: list[images.RGB],
        label: str,
        running_label: str | None = None,
        caption: str = "",
        number: int | None = None,
        show_mode: bool = True,
        rows: list[ActionRow] | None = None,
        parent: str | None = None,
        command: str = "",
        web_link_ratio: float = 0.5,
        kind: str | None = None,
        video: bool = False,
    ) -> None:
        self.rng = rng
        self.hash = job_hash(rng)
        self.action = action
        self.user = user
        self.app_id = app_id
        self.channel_id = channel_id
        self.prompt = prompt  # as echoed
        self.mode = mode
        self.origin = origin
        self.shape = shape
        self.size = size
        self.colours = colours
        self.label = label
        self.running_label = label if running_label is None else running_label
        self.caption = caption
        self.number = number
        self.show_mode = show_mode
        self.rows = rows  # result buttons; filled by the bot once the hash is known
        self.parent = parent
        self.command = command  # "/imagine <prompt>": footers of error embeds
        self.plan = plan_for(action, mode, rng)
        self.web_link = rng.random() < web_link_ratio
        self.fail_at = rng.choice(GRID_STEPS[2:5])
        self.counts_toward_limits = action is not Action.UPSCALE
        self.state = JobState.QUEUED
        self.progress = 0
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.progress_message: Message | None = None
        self.result_message: Message | None = None
        self.result_path: str | None = None
        self.fail_title: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.kind = kind or action.value  # what /_simulator/jobs calls it (ANIMATE, ENHANCE, ...)
        self.video = video  # the result is an animated WebP
        self.result_attachment: Attachment | None = None
        # drawn last, so adding it moved no other draw: the seed a ✉️ reaction reports
        flag_seed = parse_prompt(prompt).flags.get("seed", "")
        self.seed = int(flag_seed) if flag_seed.isdigit() else rng.randrange(4294967296)

    def info(self) -> dict[str, object]:
        return {
            "hash": self.hash,
            "action": self.kind,
            "user_id": self.user.id,
            "channel_id": self.channel_id,
            "prompt": self.prompt,
            "mode": self.mode.value,
            "state": self.state.value,
            "progress": self.progress,
            "parent": self.parent,
            "progress_message_id": self.progress_message.id if self.progress_message else None,
            "result_message_id": self.result_message.id if self.result_message else None,
            "fail_title": self.fail_title,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class _Lane:
    def __init__(self) -> None:
        self.running: list[SimJob] = []
        self.queued: deque[SimJob] = deque()


SubmitOutcome = Literal["started", "queued", "full"]


class JobRunner:
    def __init__(self, ctx: SimContext, messenger: Messenger) -> None:
        self.ctx = ctx
        self.messenger = messenger
        self.jobs: dict[str, SimJob] = {}
        self.relaxed_images: dict[str, int] = {}  # per user: images made in relax mode (/info)
        self._lanes: dict[str, _Lane] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- scheduling ------------------------------------------------------------------------

    def _lane(self, user_id: str) -> _Lane:
        return self._lanes.setdefault(user_id, _Lane())

    def submit(self, job: SimJob) -> tuple[SubmitOutcome, int]:
        """Start now, queue (returns the queue position) or refuse (queue full)."""
        self.jobs[job.hash] = job
        self._forget_old()
        if not job.counts_toward_limits:
            self._start(job)
            return ("started", 0)
        lane = self._lane(job.user.id)
        account = job.user.account
        if len(lane.running) < account.plan_concurrency:
            lane.running.append(job)
            self._start(job)
            return ("started", 0)
        if len(lane.queued) < account.plan_queue:
            lane.queued.append(job)
            self._changed.set()
            return ("queued", len(lane.queued))
        job.state = JobState.REFUSED
        job.finished_at = time.time()
        return ("full", 0)

    def _start(self, job: SimJob) -> None:
        job.state = JobState.RUNNING
        job.started_at = time.time()
        task = asyncio.get_running_loop().create_task(self._run(job))
        job.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._changed.set()

    def _release(self, job: SimJob) -> None:
        lane = self._lane(job.user.id)
        if job in lane.running:
            lane.running.remove(job)
        account = job.user.account
        while not self._stopping and lane.queued and len(lane.running) < account.plan_concurrency:
            nxt = lane.queued.popleft()
            lane.running.append(nxt)
            self._start(nxt)
        self._changed.set()

    def _forget_old(self) -> None:
        excess = len(self.jobs) - MAX_JOBS
        if excess <= 0:
            return
        for key in [k for k, j in self.jobs.items() if j.state.finished][:excess]:
            del self.jobs[key]

    def counts(self, user_id: str) -> tuple[int, int, list[str]]:
        """(queued fast+turbo, queued relax, running job hashes)."""
        lane = self._lane(user_id)
        relax = sum(1 for j in lane.queued if j.mode is Mode.RELAX)
        return (len(lane.queued) - relax, relax, [j.hash for j in lane.running])

    def busy(self) -> bool:
        return any(j.state in (JobState.QUEUED, JobState.RUNNING) for j in self.jobs.values())

    def notify(self) -> None:
        """Something that `wait_idle` may be waiting on changed."""
        self._changed.set()

    async def wait_idle(self, timeout: float, also_busy: Callable[[], bool] = lambda: False) -> None:
        async with asyncio.timeout(timeout):
            while self.busy() or also_busy():
                self._changed.clear()
                await self._changed.wait()

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- interruptions ---------------------------------------------------------------------

    def _interrupt(self, job: SimJob, state: JobState) -> None:
        job.state = state
        job.finished_at = time.time()
        if job.progress_message is not None:
            self.messenger.delete(job.progress_message)
        if job.task is not None:
            job.task.cancel()

    def moderate(self, user_id: str | None) -> int:
        hit = [
            j for j in self.jobs.values()
            if j.state in (JobState.RUNNING, JobState.STALLED) and j.progress_message is not None and user_id in (None, j.user.id)
        ]
        for job in hit:
            self._interrupt(job, JobState.MODERATED)
        return len(hit)

    def cancel_by_message(self, user_id: str, message_id: str) -> bool:
        for job in self.jobs.values():
            if (
                job.state in (JobState.RUNNING, JobState.STALLED)
                and job.user.id == user_id
                and job.progress_message is not None
                and job.progress_message.id == message_id
            ):
                self._interrupt(job, JobState.CANCELLED)
                return True
        return False

    # --- one job ---------------------------------------------------------------------------

    async def _run(self, job: SimJob) -> None:
        try:
            await self._lifecycle(job)
        except asyncio.CancelledError:
            if not job.state.finished:
                job.state = JobState.CANCELLED
                job.finished_at = time.time()
        except Exception:
            log.exception("simulated job %s crashed", job.hash)
            job.state = JobState.FAILED
            job.fail_title = "simulator error"
            job.finished_at = time.time()
        finally:
            self._release(job)

    async def _lifecycle(self, job: SimJob) -> None:
        ctx = self.ctx
        fail = ctx.faults.take_fail(job.user.id) if job.counts_toward_limits else None
        stall = ctx.faults.take_stall(job.user.id) if job.counts_toward_limits else None
        if job.action is Action.UPSCALE:
            await ctx.clock.sleep(job.plan.start_delay)
            picture = await asyncio.to_thread(self._render, job)
            await self._publish(job, picture)
            return

        progress = self.messenger.build(
            app_id=job.app_id,
            channel_id=job.channel_id,
            content=content.waiting_line(job.prompt, job.running_label, job.user.id),
            origin=job.origin,
            first_response=job.origin.interaction is not None,
        )
        job.progress_message = self.messenger.post(progress)
        if stall:
            job.state = JobState.STALLED
            self._changed.set()
            await asyncio.Event().wait()  # for ever, until cancelled or moderated

        picture = await asyncio.to_thread(self._render, job)
        # every preview starts from the same small copy: downscale once, not at every step
        small = await asyncio.to_thread(images.downscale, picture, ctx.config.preview_long_side)
        await ctx.clock.sleep(job.plan.start_delay)
        for i, percent in enumerate(job.plan.steps):
            if fail is not None and percent >= job.fail_at:
                await self._fail(job, fail)
                return
            attachments: list[Attachment] = []
            if percent > 0:
                data = await asyncio.to_thread(images.preview_webp, small, percent, ctx.config.preview_long_side)
                attachments = [ctx.cdn.store(job.channel_id, f"{job.hash}_grid_0.webp", data, content_type="image/webp")]
            self.messenger.edit(
                progress,
                content=content.progress_line(job.prompt, job.running_label, job.user.id, percent, job.mode),
                attachments=attachments,
            )
            job.progress = percent
            await ctx.clock.sleep(job.plan.step + job.plan.jitter[i])
        if fail is not None:
            await self._fail(job, fail)
            return
        await self._publish(job, picture)
        self.messenger.delete(progress)

    def find_by_result(self, message_id: str) -> SimJob | None:
        """The finished job whose result is this message."""
        for job in self.jobs.values():
            if job.state is JobState.DONE and job.result_message is not None and job.result_message.id == message_id:
                return job
        return None

    def _render(self, job: SimJob) -> Image.Image:
        if self.ctx.config.photo_images:
            # drawn from the job's hash (itself from the job's rng): the same seed, the same picture
            seed = int(job.hash.replace("-", ""), 16)
            if job.shape == "grid":
                return images.render_photo_grid(job.size, job.colours, seed)
            return images.render_photo_single(job.size, job.colours[0], seed, job.number)
        if job.shape == "grid":
            return images.render_grid(job.size, job.colours, job.prompt, job.caption)
        return images.render_single(job.size, job.colours[0], job.prompt, job.caption, job.number)

    async def _publish(self, job: SimJob, picture: Image.Image) -> None:
        ctx = self.ctx
        if job.video and job.kind == "VIDEO_UPSCALE":  # one video of a grid: an MP4 named after the grid (README)
            data = await asyncio.to_thread(_placeholder_mp4, picture)
            filename = f"{job.parent}_{job.number or 1}_720_N.mp4"
            attachment = ctx.cdn.store(job.channel_id, filename, data, width=picture.width, height=picture.height, content_type="video/mp4")
        elif job.video:
            data = await asyncio.to_thread(_animated_webp, picture)
            filename = f"{job.user.user.username}_{content.slug(job.prompt)}_{job.hash}.webp"
            attachment = ctx.cdn.store(job.channel_id, filename, data, width=picture.width, height=picture.height, content_type="image/webp")
        else:
            png = await asyncio.to_thread(images.encode_png, picture)
            filename = f"{job.user.user.username}_{content.slug(job.prompt)}_{job.hash}.png"
            attachment = ctx.cdn.store(job.channel_id, filename, png, width=picture.width, height=picture.height, content_type="image/png")
        job.result_attachment = attachment
        job.result_path = attachment.url.split("?", 1)[0][len(ctx.cdn.base_url) :]
        web = f"https://midjourney.com/jobs/{job.hash}" if job.web_link else None
        text = content.final_line(job.prompt, job.label, job.user.id, job.mode if job.show_mode else None, web)
        message = self.messenger.build(
            app_id=job.app_id,
            channel_id=job.channel_id,
            content=text,
            origin=job.origin,
            with_nonce=job.user.final_message_nonce,  # one of Discord's two behaviours (README)
            attachments=[attachment],
            components=job.rows or [],
        )
        job.result_message = self.messenger.post(message)
        job.progress = 100
        job.state = JobState.DONE
        job.finished_at = time.time()
        if not job.video:
            job.user.images_made += 4 if job.shape == "grid" else 1
            if job.mode is Mode.RELAX:
                self.relaxed_images[job.user.id] = self.relaxed_images.get(job.user.id, 0) + (4 if job.shape == "grid" else 1)
        if job.mode is not Mode.RELAX:
            job.user.fast_seconds_left -= 60.0 if job.mode is Mode.FAST else 120.0

    async def _fail(self, job: SimJob, fail: FailFault) -> None:
        embed = content.error_embed(fail.title, fail.description, footer=job.command or None)
        message = self.messenger.build(
            app_id=job.app_id, channel_id=job.channel_id, origin=job.origin, with_nonce=False, embeds=[embed]
        )
        self.messenger.post(message)
        if job.progress_message is not None:
            self.messenger.delete(job.progress_message)
        job.state = JobState.FAILED
        job.fail_title = fail.title
        job.finished_at = time.time()


def _animated_webp(picture: Image.Image) -> bytes:
    """A short looping animated WebP of `picture` (brightness pulsing), the way Midjourney
    delivers Animate results: `image/webp`, not a video container."""
    frames = [ImageEnhance.Brightness(picture).enhance(0.8 + 0.4 * i / (VIDEO_FRAMES - 1)) for i in range(VIDEO_FRAMES)]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:], duration=120, loop=0, quality=40, method=0)
    return out.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _placeholder_mp4(picture: Image.Image) -> bytes:
    """A video upscale's file: an ISO-BMFF (`ftyp` isom/mp41) file whose `mdat` holds the
    animated WebP frames. Typed and named like Midjourney's MP4s; not a playable stream."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    return ftyp + _box(b"mdat", _animated_webp(picture))
