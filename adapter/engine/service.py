"""JobService: submit, act, watch, cancel — and make sure every job ends.

A job is written to the store before it is acknowledged, moves NOT_START -> SUBMITTED (persisted
right before the first request that could start it on Midjourney, by compare-and-set, so nothing
is ever sent twice) -> IN_PROGRESS -> SUCCESS | FAILURE | CANCEL. After a restart, jobs that
never left NOT_START are queued again and jobs that had been sent are reconciled against their
account's channel instead of being sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from adapter.backends.base import (
    Account,
    AccountState,
    BackendError,
    Blend,
    Describe,
    ImageInput,
    Imagine,
    JobEvent,
    JobFailed,
    JobOutput,
    NotSent,
    Operation,
    PressButton,
    RecoveryProbe,
    ResultRef,
    Shorten,
)
from adapter.config import Timeouts
from adapter.domain.actions import Action
from adapter.domain.banned import BannedWords
from adapter.domain.buttons import parse_custom_id
from adapter.domain.errors import ErrorCategory
from adapter.domain.job_ids import new_job_id
from adapter.domain.jobs import Job, JobStatus, now_ms
from adapter.engine.bus import JobBus
from adapter.engine.errors import (
    ActionNotAvailable,
    EngineError,
    InvalidRequest,
    JobNotFound,
    NoAccountAvailable,
    PromptRejected,
    SeedUnavailable,
    ServiceClosing,
)
from adapter.engine.peers import Peers
from adapter.engine.results import ResultIngester
from adapter.engine.scheduler import Scheduler, Ticket
from adapter.engine.shared_reads import SharedReads
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.engine.translate import PromptTranslator
from adapter.stores.base import UNFINISHED_STATUSES, DuplicateRequest, JobStore
from adapter.stores.codec import encode_job

log = logging.getLogger(__name__)

_RUNNING = (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
_BLEND_AR = {"portrait": "2:3", "square": "1:1", "landscape": "3:2"}


class JobService:
    def __init__(
        self,
        *,
        store: JobStore,
        scheduler: Scheduler,
        ingester: ResultIngester,
        banned: BannedWords,
        timeouts: Timeouts | None = None,
        bus: JobBus | None = None,
        idempotency_window_seconds: float = 600.0,
        sweep_interval_seconds: float = 5.0,
        translator: PromptTranslator | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.ingester = ingester
        self.banned = banned
        self.translator = translator
        self.timeouts = timeouts or Timeouts()
        self.bus = bus or JobBus()
        self._idem_window_ms = int(idempotency_window_seconds * 1000)
        self._sweep_interval = sweep_interval_seconds
        self._tasks: dict[str, asyncio.Task[Any]] = {}  # job id -> its runner (running jobs)
        self._task_account: dict[str, str] = {}  # job id -> the account its runner drives
        # several replicas: accounts are adopted one by one as their leases are acquired, and
        # jobs placed on accounts other replicas drive are handed over to them
        self.peers = peers
        if peers is not None:
            scheduler.set_remote_dispatch(self._dispatch_remote)
        self._locks: dict[str, asyncio.Lock] = {}
        # watchers attaching to one job together share one store read (and one decoded copy)
        self._attach_reads: SharedReads[Job | None] = SharedReads(lambda job_id: self.store.get(job_id))
        self._admitting: dict[str, asyncio.Event] = {}  # placed, insert not yet finished
        self._background: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self.drain_seconds = 10.0  # how long shutdown waits for interactions being sent
        self.cancel_wait_seconds = 10.0  # how long a cancel waits for Midjourney to stop the job
        self.remote_seed_timeout = 75.0  # a seed asked of another replica (its own wait is 60 s)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.scheduler.start()
        if self.peers is None:
            await self._recover()
        self._sweeper = asyncio.create_task(self._sweep(), name="job-sweeper")

    @property
    def closing(self) -> bool:
        return self._closing

    def begin_shutdown(self) -> None:
        """The first moment of a graceful stop (SIGTERM/SIGINT): take no new work, start no
        queued job, send nothing new. Queued jobs stay queued in the store for the next start;
        running ones are followed until close() and reconciled after the restart. Watchers are
        told so they can end their streams with a clear last event."""
        if self._closing:
            return
        self._closing = True
        self.scheduler.freeze()
        self.bus.close_watchers()
        log.info("shutting down: no new jobs are started; queued jobs stay queued for the next start")

    async def close(self) -> None:
        self.begin_shutdown()
        if self._sweeper:
            self._sweeper.cancel()
        # interactions already on their way finish their send (never cut a POST in half)
        accounts = self.scheduler.accounts()
        await asyncio.gather(*(a.drain(self.drain_seconds) for a in accounts), return_exceptions=True)
        running = [*self._tasks.values(), *self._background]
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._sweeper:
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.scheduler.close()

    # --- queries ------------------------------------------------------------------------------

    async def get(self, job_id: str, owner: str | None = None) -> Job:
        job = await self.store.get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            # another key's job is indistinguishable from a missing one
            raise JobNotFound(job_id)
        return job

    # --- telling at once whether a finished job is still what a caller saw ------------------------

    def finished_mark(self, job: Job) -> bytes | None:
        """What `still_holds` compares with: the job's stored form, for a finished job."""
        return encode_job(job) if job.status.finished else None

    def still_holds(self, job_id: str, mark: bytes) -> bool:
        """True when the store knows, without I/O, that the finished job `job_id` is exactly the
        one `mark` was taken of; False when it changed or the store cannot tell. An answer made
        from the job may be given again only while this holds."""
        return not self._closing and self.store.cached_finished(job_id) == mark

    def still_holds_key(self, owner: str, key: str, mark: bytes) -> bool:
        """As `still_holds`, for the job an idempotent retry with (owner, key) finds."""
        return not self._closing and self.store.cached_finished_by_key(owner, key) == mark

    async def watch(self, job_id: str, owner: str | None = None) -> AsyncIterator[Job]:
        """The job now, then every change, until it has finished."""
        queue = self.bus.subscribe(job_id)
        try:
            # subscribed first, then read: nothing published in between is missed
            job = await self._attach_reads.get(job_id)
            if job is None or (owner is not None and job.owner != owner):
                raise JobNotFound(job_id)
            yield job
            last = job
            while not last.status.finished:
                nxt = await queue.get()
                # drain to the newest: watchers want state, not every intermediate step
                while nxt is not None and not queue.empty() and not nxt.status.finished:
                    nxt = queue.get_nowait()
                if nxt is None:
                    raise ServiceClosing()  # the job goes on; the next start (or replica) follows it
                last = nxt
                yield nxt
        finally:
            self.bus.unsubscribe(job_id, queue)

    async def wait(self, job_id: str, owner: str | None = None, timeout: float | None = None) -> Job:
        async with asyncio.timeout(timeout):
            last: Job | None = None
            async for job in self.watch(job_id, owner):
                last = job
            assert last is not None
            return last

    # --- submit -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing:
            raise ServiceClosing()

    async def submit(self, spec: SubmitSpec) -> Job:
        self._check_open()
        if spec.action in (Action.IMAGINE, Action.SHORTEN):
            if not spec.prompt.strip() and not (spec.action is Action.IMAGINE and spec.images):
                raise InvalidRequest("A prompt is required.", param="prompt")
        if spec.prompt and (word := self.banned.find(spec.prompt)):
            raise PromptRejected(word)
        if spec.action is Action.BLEND and not 2 <= len(spec.images) <= 5:
            raise InvalidRequest("Blend takes 2 to 5 images.", param="images")
        if spec.action is Action.DESCRIBE and not spec.images and not spec.link:
            raise InvalidRequest("Describe needs an image.", param="image")

        if existing := await self._existing(spec.meta):
            return existing
        prompt = await self._for_midjourney(spec.prompt)
        job = Job(
            id=new_job_id(),
            owner=spec.meta.owner,
            action=spec.action,
            prompt=prompt,
            mode=spec.mode,
            bot=spec.bot,
            webhook_url=spec.meta.webhook_url,
            idempotency_key=spec.meta.idempotency_key,
            state=spec.meta.state,
            extra=self._extra(
                spec.meta,
                dimensions=spec.dimensions if spec.action is Action.BLEND else None,
                link=spec.link,
                user_prompt=spec.prompt if prompt != spec.prompt else None,
            ),
        )
        for i, image in enumerate(spec.images):
            job.inputs.append(await self.ingester.keep_input(job.id, image, f"input-{i}-{_safe_name(image.filename)}"))
        return await self._admit(job, spec.meta)

    async def act(self, spec: ActSpec) -> Job:
        self._check_open()
        parent = await self.get(spec.parent_id, spec.meta.owner)
        if parent.status is not JobStatus.SUCCESS:
            raise ActionNotAvailable(
                f"Job {parent.id} is {parent.status.value}; follow-ups need a finished job.", param="job_id"
            )
        if not any(b.custom_id == spec.custom_id for b in parent.buttons):
            offered = ", ".join(b.label or b.emoji or "?" for b in parent.buttons if b.custom_id) or "none"
            raise ActionNotAvailable(f"Job {parent.id} has no such button (it offers: {offered}).", param="custom_id")
        parsed = parse_custom_id(spec.custom_id)
        if parsed is None:
            raise ActionNotAvailable("That button does not start a Midjourney job.", param="custom_id")
        if parsed.action is Action.VARY_REGION and spec.mask_png is None and not spec.defer_modal:
            raise InvalidRequest("Vary (Region) needs a mask image.", param="mask")
        prompt = spec.prompt
        if prompt and (word := self.banned.find(prompt)):
            raise PromptRejected(word)

        if existing := await self._existing(spec.meta):
            return existing
        waits_for_modal = parsed.needs_modal and spec.defer_modal and prompt is None
        # a new prompt (remix, custom zoom, vary region) goes out in English; without one the
        # job keeps what its parent's caller wrote, for the /mj `prompt`
        user_prompt = parent.extra.get("user_prompt") if prompt is None else spec.prompt
        if prompt:
            prompt = await self._for_midjourney(prompt)
        job = Job(
            id=new_job_id(),
            owner=spec.meta.owner,
            action=parsed.action,
            status=JobStatus.MODAL if waits_for_modal else JobStatus.NOT_START,
            prompt=prompt or parent.final_prompt or parent.prompt,
            modal_prompt=prompt,
            mode=spec.mode or parent.mode,
            bot=parent.bot,
            parent_id=parent.id,
            index=parsed.index,
            custom_id=spec.custom_id,
            account_id=parent.account_id,
            webhook_url=spec.meta.webhook_url,
            idempotency_key=spec.meta.idempotency_key,
            state=spec.meta.state,
            extra=self._extra(spec.meta, user_prompt=user_prompt if user_prompt != prompt else None),
        )
        if spec.mask_png is not None:
            job.inputs.append(await self.ingester.keep_input(job.id, ImageInput("mask.png", "image/png", spec.mask_png), "mask.png"))
        if waits_for_modal:
            try:
                await self.store.insert(job, **self._dedupe(spec.meta))
            except DuplicateRequest as dup:
                return dup.existing
            self.bus.publish(job)
            return job
        return await self._admit(job, spec.meta)

    async def submit_modal(self, job_id: str, owner: str, prompt: str, mask_png: bytes | None = None) -> Job:
        """Answer the modal of a MODAL job (custom zoom prompt, vary region prompt + mask)."""
        self._check_open()
        job = await self.get(job_id, owner)
        if job.status is not JobStatus.MODAL:
            raise ActionNotAvailable(f"Job {job.id} is {job.status.value}, not waiting for a modal.", param="taskId")
        if word := self.banned.find(prompt):
            raise PromptRejected(word)
        if job.action is Action.VARY_REGION and mask_png is None:
            raise InvalidRequest("Vary (Region) needs a mask.", param="maskBase64")
        sent = await self._for_midjourney(prompt)
        if job.action is Action.VARY_REGION and mask_png is not None:
            job.inputs.append(await self.ingester.keep_input(job.id, ImageInput("mask.png", "image/png", mask_png), "mask.png"))
        if sent != prompt:
            job.extra["user_prompt"] = prompt
        else:
            job.extra.pop("user_prompt", None)
        job.modal_prompt = sent
        job.prompt = sent
        job.status = JobStatus.NOT_START
        if not await self.store.update(job, expect_status=JobStatus.MODAL):
            raise ActionNotAvailable(f"Job {job.id} was already submitted.", param="taskId")
        self._place(job)
        self.bus.publish(job)
        return job

    async def cancel(self, job_id: str, owner: str | None = None) -> Job:
        job = await self.get(job_id, owner)
        if job.status.finished:
            return job
        self.scheduler.remove(job.id)
        if self.peers is not None and job.status in _RUNNING and self.scheduler.is_remote(job.account_id) and job.id not in self._tasks:
            # another replica drives its account: only it can stop the job at Midjourney
            assert job.account_id is not None
            try:
                await self.peers.ask(job.account_id, "cancel", job.id)
                await self.wait(job.id, timeout=self.cancel_wait_seconds)
            except (TimeoutError, EngineError, ServiceClosing) as exc:
                log.info("job %s: cancel asked of the holder of %s, not confirmed: %s", job.id, job.account_id, exc)
        running = self._tasks.get(job.id)
        if running is not None and job.status in _RUNNING and job.progress_message_id and job.account_id:
            # Stop it at Midjourney too (❌ on its progress message), so it spends nothing more;
            # the runner sees Midjourney end it and records the cancel itself.
            account = self.scheduler.account(job.account_id)
            asked = False
            if account is not None:
                try:
                    asked = await account.cancel_running(job.progress_message_id)
                except Exception as exc:
                    log.warning("job %s: could not cancel it at Midjourney: %s", job.id, exc)
            if asked:
                await asyncio.wait({running}, timeout=self.cancel_wait_seconds)
        task = self._tasks.pop(job.id, None)
        self._task_account.pop(job.id, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        job = await self.get(job_id)
        if not job.status.finished:
            await self._finish(job, JobStatus.CANCEL, reason="Cancelled by the caller.", category=ErrorCategory.CANCELLED)
        return await self.get(job_id)

    # --- internals: admission -----------------------------------------------------------------

    async def _for_midjourney(self, prompt: str) -> str:
        """The prompt as Midjourney will get it: in English when a translator is configured
        and the prompt needs one (TranslationFailed when it gives no usable answer: the
        original is never sent instead). The translation becomes the job's prompt, so what is
        stored, sent and matched on recovery is one text, and the banned words are checked on
        it too (the caller's own words were checked before the translator was asked)."""
        if self.translator is None or not prompt.strip():
            return prompt
        sent = await self.translator.to_english(prompt)
        if sent != prompt and (word := self.banned.find(sent)):
            raise PromptRejected(word)
        return sent

    def _extra(self, meta: RequestMeta, **more: str | None) -> dict[str, str]:
        extra = {**meta.tags, **{k: v for k, v in more.items() if v is not None}}
        if meta.fingerprint:
            extra["fingerprint"] = meta.fingerprint
        return extra

    async def _existing(self, meta: RequestMeta) -> Job | None:
        if meta.idempotency_key:
            return await self.store.find_by_idempotency(meta.owner, meta.idempotency_key)
        if meta.is_retry and meta.fingerprint:
            return await self.store.find_by_fingerprint(meta.owner, meta.fingerprint, since_ms=now_ms() - self._idem_window_ms)
        return None

    def _dedupe(self, meta: RequestMeta) -> dict[str, int | None]:
        """Arguments that make the store's insert refuse a repeat atomically (two racing retries
        must not both get through a look-up-then-insert)."""
        return {
            "idempotency_since_ms": 0 if meta.idempotency_key else None,
            "fingerprint_since_ms": now_ms() - self._idem_window_ms if meta.is_retry and meta.fingerprint else None,
        }

    async def _admit(self, job: Job, meta: RequestMeta) -> Job:
        """Place first (so a full pool refuses before anything is written), then persist: the
        runner re-reads the job from the store, so a ticket that starts early finds nothing and
        the insert's own publish is what it waits for."""
        admitted = self._admitting[job.id] = asyncio.Event()
        try:
            job.account_id = self._place(job)
            try:
                await self.store.insert(job, **self._dedupe(meta))
            except DuplicateRequest as dup:
                self.scheduler.remove(job.id)
                return dup.existing
            except BaseException:
                self.scheduler.remove(job.id)
                raise
            self.bus.publish(job)
            return job
        finally:
            # a runner that got the slot meanwhile waits for this, then reads the store
            admitted.set()
            del self._admitting[job.id]

    def _place(self, job: Job, excluded: frozenset[str] = frozenset()) -> str:
        return self.scheduler.place(self._ticket(job, excluded))

    def _ticket(self, job: Job, excluded: frozenset[str]) -> Ticket:
        job_id = job.id
        return Ticket(
            job_id=job_id,
            mode=job.mode,
            pinned_account=job.account_id if job.parent_id else None,
            run=lambda account: self._runner(job_id, account),
            orphaned=lambda err: self._orphaned(job_id, err),
            excluded=excluded,
        )

    async def _orphaned(self, job_id: str, err: EngineError) -> None:
        job = await self.store.get(job_id)
        if job is not None and not job.status.finished:
            await self._finish(job, JobStatus.FAILURE, reason=err.message, category=err.category)

    # --- internals: running -------------------------------------------------------------------

    async def _runner(self, job_id: str, account: Account) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[job_id] = task
        self._task_account[job_id] = account.id
        try:
            if (admitted := self._admitting.get(job_id)) is not None:
                await admitted.wait()
            await self._execute(job_id, account)
        finally:
            if self._tasks.get(job_id) is task:
                del self._tasks[job_id]
                self._task_account.pop(job_id, None)

    def _deadline_ms(self, job: Job) -> int:
        return job.created_at + int(self.timeouts.for_mode(job.mode) * 1000)

    async def _execute(self, job_id: str, account: Account) -> None:
        job = await self.store.get(job_id)
        if job is None or job.status is not JobStatus.NOT_START:
            return
        job.account_id = account.id
        try:
            op = await self._operation(job)
        except (FileNotFoundError, EngineError) as exc:
            await self._finish(job, JobStatus.FAILURE, reason=f"Cannot rebuild the job: {exc}", category=ErrorCategory.INTERNAL)
            return

        async def before_send(nonce: str) -> None:
            if self._closing:
                raise NotSent(_err(ErrorCategory.ACCOUNT, "The service is shutting down; the job stays queued."))
            if self.peers is not None and not self.peers.may_send(account.id):
                raise NotSent(_err(ErrorCategory.ACCOUNT, f"This replica no longer holds account {account.id}."))
            job.status = JobStatus.SUBMITTED
            job.nonce = nonce
            job.attempts += 1
            job.started_at = now_ms()
            if not await self.store.update(job, expect_status=JobStatus.NOT_START):
                # someone else (a cancel, another replica) changed it: never send
                raise NotSent(_err(ErrorCategory.CANCELLED, "The job changed before it was sent."))
            self.bus.publish(msgspec.structs.replace(job))  # a copy: the events that follow change `job`

        remaining = max(0.0, (self._deadline_ms(job) - now_ms()) / 1000)
        await self._drive(job, account, lambda emit: account.run(op, job.mode, emit, before_send=before_send), remaining)

    async def _drive(self, job: Job, account: Account, call: Any, remaining: float) -> None:
        """Run an account call for a job, apply its events, and end the job."""
        tracker = _Progress(self, job)
        try:
            async with asyncio.timeout(remaining):
                output: JobOutput = await call(tracker.emit)
        except NotSent as exc:
            await tracker.settled()
            await self._not_sent(job, account, exc)
            return
        except JobFailed as exc:
            await tracker.settled()
            status = JobStatus.CANCEL if exc.error.category is ErrorCategory.CANCELLED else JobStatus.FAILURE
            await self._finish(job, status, reason=exc.error.message, category=exc.error.category)
            return
        except TimeoutError:
            await tracker.settled()
            limit = int(self.timeouts.for_mode(job.mode))
            if job.status is JobStatus.SUBMITTED and not job.progress_message_id:
                # sent, but not one word from Midjourney: it may never have started
                reason = (
                    f"The outcome of this job is unknown: it was sent to Midjourney, but no sign of it came back within {limit} s "
                    f"({job.mode.value} mode)."
                )
                await self._finish(job, JobStatus.FAILURE, reason=reason, category=ErrorCategory.OUTCOME_UNKNOWN)
                return
            await self._finish(
                job, JobStatus.FAILURE, reason=f"The job did not finish within {limit} s ({job.mode.value} mode).", category=ErrorCategory.TIMEOUT
            )
            return
        except asyncio.CancelledError:
            await tracker.settled()
            raise
        except Exception as exc:  # a bug, not Midjourney: fail the job, keep the service up
            log.exception("job %s failed unexpectedly", job.id)
            await tracker.settled()
            await self._finish(job, JobStatus.FAILURE, reason=f"Internal error: {type(exc).__name__}", category=ErrorCategory.INTERNAL)
            return
        await tracker.settled()
        await self._succeed(job, output)

    async def _not_sent(self, job: Job, account: Account, exc: NotSent) -> None:
        """The account guarantees nothing reached Midjourney: the job is queued again (on
        another account when one can take it), or stays queued in the store when shutting down."""
        async with self._lock(job.id):
            current = await self.store.get(job.id)
            if current is None or current.status.finished:
                return
            if current.status is JobStatus.SUBMITTED and job.nonce and current.nonce == job.nonce:
                current.status = JobStatus.NOT_START
                current.started_at = None
                if not await self.store.update(current, expect_status=JobStatus.SUBMITTED):
                    return
                self.bus.publish(msgspec.structs.replace(current))
            if current.status is not JobStatus.NOT_START:
                return
        if self._closing:
            return  # the next start queues it again
        try:
            placed = self._place(current, excluded=frozenset({account.id}))
            log.info("job %s not sent on %s (%s); placed again", job.id, account.id, exc.error.message)
            if self.peers is not None and placed != current.account_id:
                # so the replica driving its account now is the one that finds it
                self._spawn(self._repin(current.id, placed), f"repin-{current.id}")
        except EngineError as err:
            await self._finish(current, JobStatus.FAILURE, reason=err.message, category=err.category)

    async def _succeed(self, job: Job, out: JobOutput) -> None:
        async with self._lock(job.id):
            job.account_id = out.account_id
            job.message_id = out.message_id
            job.message_flags = out.message_flags
            job.job_hash = out.job_hash
            job.buttons = list(out.buttons)
            job.result_texts = list(out.texts)
            if out.prompt:
                job.final_prompt = out.prompt
            job.source_image_url = out.image_url
        try:
            images = await self.ingester.ingest(job, out)
        except Exception as exc:
            log.warning("job %s: could not re-host its image: %s", job.id, exc)
            await self._finish(job, JobStatus.FAILURE, reason="Midjourney finished, but its image could not be downloaded.", category=ErrorCategory.RETRYABLE)
            return
        if images is not None:
            job.image = images.image
            job.images = images.tiles
        job.progress = 100
        await self._finish(job, JobStatus.SUCCESS)

    async def _finish(self, job: Job, status: JobStatus, *, reason: str | None = None, category: ErrorCategory | None = None) -> None:
        async with self._lock(job.id):
            current = await self.store.get(job.id)
            if current is not None and current.status.finished:
                return  # first ending wins (e.g. a cancel raced a success)
            job.status = status
            job.finished_at = now_ms()
            if status is not JobStatus.SUCCESS:
                job.fail_reason = reason
                job.error_category = category
            # one compare-and-set: of two replicas ending the same job (a lease that changed
            # hands while it ran), only the first write lands and only it is announced
            if not await self.store.update(job, expect_status=UNFINISHED_STATUSES):
                self._locks.pop(job.id, None)
                return
        self.bus.publish(msgspec.structs.replace(job))
        self._locks.pop(job.id, None)

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    async def _operation(self, job: Job) -> Operation:
        """Build what the account runs from the stored job (the same path after a restart)."""
        inputs = [await self.ingester.load_input(ref, f"image{i}.{_ext(ref.content_type)}") for i, ref in enumerate(job.inputs)]
        if job.action is Action.IMAGINE and job.parent_id is None:
            return Imagine(prompt=job.prompt, images=tuple(inputs), bot=job.bot)
        if job.action is Action.DESCRIBE:
            return Describe(image=inputs[0] if inputs else None, link=job.extra.get("link"), bot=job.bot)
        if job.action is Action.BLEND:
            dims = job.extra.get("dimensions", "square")
            return Blend(images=tuple(inputs), dimensions=dims if dims in _BLEND_AR else "square", bot=job.bot)  # type: ignore[arg-type]
        if job.action is Action.SHORTEN:
            return Shorten(prompt=job.prompt, bot=job.bot)
        parent = await self.store.get(job.parent_id or "")
        if parent is None or parent.message_id is None or job.custom_id is None:
            raise InvalidRequest("the parent job is gone")
        # the mask is the only input a follow-up keeps
        mask = inputs[-1].data if job.action is Action.VARY_REGION and inputs else None
        return PressButton(
            message_id=parent.message_id,
            custom_id=job.custom_id,
            message_flags=parent.message_flags,
            bot=job.bot,
            prompt=job.modal_prompt,
            mask_png=mask,
        )

    # --- internals: recovery and the watchdog -------------------------------------------------

    async def _recover(self) -> None:
        for job in await self.store.list_unfinished():
            if job.status is JobStatus.NOT_START:
                try:
                    job.account_id = self._place(job)
                    await self.store.update(job)
                    log.info("recovery: job %s queued again", job.id)
                except EngineError as err:
                    await self._finish(job, JobStatus.FAILURE, reason=err.message, category=err.category)
            elif job.status in _RUNNING:
                self._spawn(self._reattach(job), f"recover-{job.id}")

    async def _account_gone(self, job: Job) -> None:
        await self._finish(
            job,
            JobStatus.FAILURE,
            reason="The account that ran this job is no longer configured, so whether Midjourney finished it is unknown.",
            category=ErrorCategory.OUTCOME_UNKNOWN,
        )

    async def _reattach(self, job: Job) -> None:
        account = self.scheduler.account(job.account_id or "")
        if account is None:
            await self._account_gone(job)
            return
        # Only its own account can find it (the result is in that channel): wait for it as long
        # as the job may run, unless the account is gone for good.
        try:
            async with asyncio.timeout(max(1.0, (self._deadline_ms(job) - now_ms()) / 1000)):
                while (st := account.status()).state is not AccountState.READY:
                    if st.state in (AccountState.DISABLED, AccountState.STOPPED):
                        raise NoAccountAvailable(f"{st.state.value}" + (f": {st.reason}" if st.reason else ""))
                    await asyncio.sleep(0.05)
        except (TimeoutError, NoAccountAvailable) as exc:
            why = exc.message if isinstance(exc, NoAccountAvailable) else "not back within the job's time limit"
            await self._finish(
                job,
                JobStatus.FAILURE,
                reason=f"The job was running when the service restarted and its account ({account.id}) is {why}; "
                "whether Midjourney finished it is unknown.",
                category=ErrorCategory.OUTCOME_UNKNOWN,
            )
            return
        op = await self._operation(job)
        probe = RecoveryProbe(
            operation=op,
            submitted_at_ms=job.started_at or job.created_at,
            nonce=job.nonce,
            interaction_ids=tuple(filter(None, job.extra.get("interaction_ids", "").split(","))),
            progress_message_id=job.progress_message_id,
            prompt=job.final_prompt or job.extra.get("sent_prompt") or job.prompt,
            mode=job.mode,
        )
        log.info("recovery: re-attaching job %s on %s", job.id, account.id)
        task = asyncio.current_task()
        assert task is not None
        self._tasks[job.id] = task
        self._task_account[job.id] = account.id
        try:
            remaining = max(1.0, (self._deadline_ms(job) - now_ms()) / 1000)
            await self._drive(job, account, lambda emit: account.recover(probe, emit), remaining)
        finally:
            if self._tasks.get(job.id) is task:
                del self._tasks[job.id]
                self._task_account.pop(job.id, None)

    async def _sweep(self) -> None:
        """Fail queued jobs whose deadline passed before they got an account slot (and, with
        several replicas, take up what was handed to this one's accounts but not heard of)."""
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                for job in await self.store.list_unfinished():
                    if job.status is JobStatus.NOT_START and now_ms() > self._deadline_ms(job) and self.scheduler.remove(job.id):
                        await self._waited_too_long(job)
                    elif self.peers is not None and not self._closing:
                        await self._sweep_cluster_job(job)
            except Exception:
                log.exception("sweeper pass failed")

    async def _waited_too_long(self, job: Job) -> None:
        await self._finish(job, JobStatus.FAILURE, reason="The job waited too long for a free account.", category=ErrorCategory.TIMEOUT)

    # --- internals: several replicas ----------------------------------------------------------

    def _known_here(self, job_id: str) -> bool:
        return job_id in self._tasks or job_id in self._admitting or self.scheduler.is_queued(job_id)

    async def adopt(self, account_id: str) -> None:
        """This replica now drives `account_id` (its lease was just acquired): take up the jobs
        the store pins to it - queued ones are queued here, ones that were running are
        reconciled from the account's channel (the restart path), so none is lost or sent
        twice."""
        for job in await self.store.list_unfinished():
            if job.account_id != account_id or self._known_here(job.id):
                continue
            if job.status is JobStatus.NOT_START:
                self._take(job, account_id)
            elif job.status in _RUNNING:
                log.info("job %s: running on %s when it changed hands; reconciling", job.id, account_id)
                self._spawn(self._reattach(job), f"adopt-{job.id}")

    async def release_account(self, account_id: str) -> None:
        """This replica no longer drives `account_id`: stop following its jobs (their state stays
        in the store, and the new holder reconciles them); queued tickets were dropped by the
        scheduler and are taken up by the new holder from the store."""
        tasks = [t for job_id, t in list(self._tasks.items()) if self._task_account.get(job_id) == account_id]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def take_over(self, job_id: str, account_id: str) -> None:
        """Another replica handed a NOT_START job to `account_id`, which this one drives."""
        if self._closing or self._known_here(job_id):
            return
        job = await self.store.get(job_id)
        if job is None or job.status is not JobStatus.NOT_START:
            return
        self._take(job, job.account_id or account_id)

    def _take(self, job: Job, account_id: str) -> None:
        ticket = self._ticket(job, frozenset())
        try:
            placed = self.scheduler.enqueue_on(account_id, ticket)
        except EngineError as err:
            self._spawn(self._finish(job, JobStatus.FAILURE, reason=err.message, category=err.category), f"refuse-{job.id}")
            return
        if placed != job.account_id:
            self._spawn(self._repin(job.id, placed), f"repin-{job.id}")

    async def _repin(self, job_id: str, account_id: str) -> None:
        """Record a queued job's new account, so whoever drives that account finds it."""
        async with self._lock(job_id):
            job = await self.store.get(job_id)
            if job is not None and job.status is JobStatus.NOT_START and job.account_id != account_id:
                job.account_id = account_id
                await self.store.update(job, expect_status=JobStatus.NOT_START)

    def _dispatch_remote(self, account_id: str, ticket: Ticket) -> None:
        self._spawn(self._hand_over(account_id, ticket.job_id), f"hand-over-{ticket.job_id}")

    async def _hand_over(self, account_id: str, job_id: str) -> None:
        assert self.peers is not None
        if (admitted := self._admitting.get(job_id)) is not None:
            await admitted.wait()  # the holder reads the job from the store
        await self._repin(job_id, account_id)
        try:
            await self.peers.hand_over(account_id, job_id)
        except Exception as exc:  # the holder's sweep finds it in the store all the same
            log.warning("job %s: hand-over to the holder of %s failed (%s); it is found by its sweep", job_id, account_id, exc)

    async def _sweep_cluster_job(self, job: Job) -> None:
        """A job this replica should be running but is not: handed over while the notice was
        lost, or pinned to an account no replica is configured with any more."""
        if self._known_here(job.id):
            return
        account_id = job.account_id or ""
        configured = self.scheduler.known(account_id) is not None
        if job.status in _RUNNING and not configured:
            await self._account_gone(job)
            return
        if job.status is not JobStatus.NOT_START:
            return
        if self.scheduler.account(account_id) is not None:
            if now_ms() > self._deadline_ms(job):
                await self._waited_too_long(job)
            else:
                self._take(job, account_id)
        elif not self.scheduler.is_remote(account_id) and job.parent_id is None:
            self._take(job, account_id)  # its account is configured nowhere: placed anew

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- seeds --------------------------------------------------------------------------------

    async def seed(self, job_id: str, owner: str | None = None) -> str:
        """Midjourney's seed of a finished image job. Kept on the job once known; otherwise
        asked of the account that ran it (Discord: a ✉️ reaction and the bot's DM), which
        never spends a Midjourney job."""
        job = await self.get(job_id, owner)
        if job.seed:
            return job.seed
        if job.status is not JobStatus.SUCCESS:
            raise ActionNotAvailable(f"Job {job.id} is {job.status.value}; it has a seed once it has finished.", param="job_id")
        if job.action in (Action.DESCRIBE, Action.SHORTEN) or not job.message_id or not job.job_hash:
            raise ActionNotAvailable(f"Job {job.id} made no image, so it has no seed.", param="job_id")
        account = self.scheduler.account(job.account_id or "")
        if account is None and self.peers is not None and self.scheduler.is_remote(job.account_id):
            return await self._remote_seed(job)
        if account is None:
            raise NoAccountAvailable(f"The account that ran job {job.id} is no longer configured, so its seed cannot be asked for.")
        ref = ResultRef(message_id=job.message_id, job_hash=job.job_hash, message_flags=job.message_flags, bot=job.bot)
        try:
            seed = await account.seed(ref)
        except JobFailed as exc:
            await self._note_seed(job.id, "", f"{exc.error.category.value}:{exc.error.message}")
            raise SeedUnavailable(exc.error.message, exc.error.category) from None
        await self._note_seed(job.id, seed, None)
        return seed

    async def _note_seed(self, job_id: str, seed: str, error: str | None) -> None:
        """Keep the seed on the job, or why it could not be had (for a replica that asked)."""
        async with self._lock(job_id):
            current = await self.store.get(job_id)
            if current is not None and not current.seed:
                if seed:
                    current.seed = seed
                    current.extra.pop("seed_error", None)
                else:
                    current.extra["seed_error"] = f"{now_ms()}:{error}"
                await self.store.update(current)
        self._locks.pop(job_id, None)

    async def _remote_seed(self, job: Job) -> str:
        """The seed of a job whose account another replica drives: asked of it, read back from
        the store (where the holder keeps the seed, or the reason there is none)."""
        assert self.peers is not None and job.account_id is not None
        asked_at = now_ms()
        await self.peers.ask(job.account_id, "seed", job.id)
        deadline = asyncio.get_running_loop().time() + self.remote_seed_timeout
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            current = await self.store.get(job.id)
            if current is None:
                raise JobNotFound(job.id)
            if current.seed:
                return current.seed
            stamp, _, error = current.extra.get("seed_error", "").partition(":")
            if error and stamp.isdigit() and int(stamp) >= asked_at - 1000:
                category, _, message = error.partition(":")
                try:
                    cat = ErrorCategory(category)
                except ValueError:
                    cat = ErrorCategory.RETRYABLE
                raise SeedUnavailable(message, cat)
        raise SeedUnavailable(
            f"The replica driving account {job.account_id} did not report the seed within {self.remote_seed_timeout:.0f} s.",
            ErrorCategory.TIMEOUT,
        )


# The most often a running job's progress is written to the store: events in between (progress
# steps, previews) are published to watchers at once and written with the next write. Recovery
# never waits on this: what it reads is written at once (see _Progress._recovery_view).
PROGRESS_WRITE_EVERY = 1.0


class _Progress:
    """Applies an account's events to a job. Every change is published to the bus at once; store
    writes are serialised per job and coalesced: what recovery and cancel read (the status's
    first move to SUBMITTED / IN_PROGRESS, nonce, progress message, interaction ids, the prompt
    sent) is written at once and published once it is durable, while progress steps and
    previews are written at most every PROGRESS_WRITE_EVERY seconds, the latest state only. The
    job's final write (JobService._finish) is never delayed: it carries everything. Previews
    are fetched in the background and never published after the job has ended."""

    def __init__(self, service: JobService, job: Job) -> None:
        self.s = service
        self.job = job
        self._pending: set[asyncio.Task[None]] = set()
        self._preview_step = 0
        self._preview_wanted: str | None = None  # newest preview URL not fetched yet
        self._preview_busy = False
        self._durable = self._recovery_view()  # as the store has it (the job was just read)
        self._dirty = False  # the job has changes the store has not
        self._writing = 0  # writes in flight: each publishes the newest state when it lands
        self._last_write = float("-inf")  # loop time of the last write
        self._timer: asyncio.TimerHandle | None = None
        self._save_queued = False  # a write is spawned and has not taken its snapshot yet
        self._lost = False  # a write's compare-and-set failed: the job ended elsewhere

    def _recovery_view(self) -> tuple[Any, ...]:
        """What recovery (RecoveryProbe in _reattach) and cancel read from the stored job."""
        job = self.job
        return (
            job.status,
            job.nonce,
            job.progress_message_id,
            job.extra.get("interaction_ids"),
            job.extra.get("sent_prompt"),
            job.final_prompt,
            job.started_at is None,
        )

    def emit(self, ev: JobEvent) -> None:
        job = self.job
        if job.status.finished:
            return
        if ev.nonce and not job.nonce:
            job.nonce = ev.nonce
        if ev.message_id:
            job.progress_message_id = ev.message_id
        if ev.interaction_ids:
            known = set(filter(None, job.extra.get("interaction_ids", "").split(",")))
            job.extra["interaction_ids"] = ",".join(sorted(known | set(ev.interaction_ids)))
        if ev.kind == "sending":
            if ev.prompt:
                job.extra["sent_prompt"] = ev.prompt
            return  # persisted by the send's own write, which follows at once
        if ev.prompt:
            job.final_prompt = ev.prompt
        if ev.kind == "progress":
            job.status = JobStatus.IN_PROGRESS
            job.progress = max(job.progress, min(ev.progress, 99))
        elif ev.kind in ("waiting", "queued") and job.status is JobStatus.NOT_START:
            job.status = JobStatus.SUBMITTED
        if job.started_at is None:
            job.started_at = now_ms()
        preview = ev.preview_url if ev.preview_url and ev.preview_url != job.preview_url else None
        if preview:
            job.preview_url = preview
        self._changed()
        if preview:
            # one fetch at a time; previews that arrive meanwhile are superseded by the newest
            self._preview_wanted = preview
            if not self._preview_busy:
                self._preview_busy = True
                self._later(self._fetch_previews())

    def _changed(self) -> None:
        if self._lost or self.job.status.finished:
            return
        self._dirty = True
        if self._recovery_view() != self._durable:
            # recovery needs it: written now, published once it is durable (a write that has
            # not taken its snapshot yet carries this change too)
            self._cancel_timer()
            if not self._save_queued:
                self._save_queued = True
                self._later(self._save())
            return
        if not self._writing:
            # (a write in flight publishes the newest state, this change included, when it lands)
            self.s.bus.publish(msgspec.structs.replace(self.job))
        if self._timer is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last_write + PROGRESS_WRITE_EVERY - loop.time())
            self._timer = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._dirty and not self._save_queued:
            self._save_queued = True
            self._later(self._save())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _later(self, coro: Any) -> None:
        task = self.s._spawn(coro, f"progress-{self.job.id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _save(self) -> None:
        async with self.s._lock(self.job.id):
            self._save_queued = False
            if self.job.status.finished or self._lost or not self._dirty:
                return  # ended, or an earlier write already carried this change
            # what is written is exactly this snapshot (events go on changing the job meanwhile)
            snapshot = msgspec.structs.replace(self.job, extra=dict(self.job.extra))
            view = self._recovery_view()
            self._dirty = False
            self._writing += 1
            try:
                saved = await self.s.store.update(snapshot, expect_status=UNFINISHED_STATUSES)
            except Exception as exc:  # progress is best effort; the final write is not
                log.warning("job %s: progress not saved: %s", self.job.id, exc)
                self._dirty = True
                saved = None
            finally:
                self._writing -= 1
                self._last_write = asyncio.get_running_loop().time()
            if saved is False:  # it ended elsewhere (another replica took the account over)
                self._lost = True
                self._cancel_timer()
                return
            if saved:
                self._durable = view
            if self.job.status.finished or not saved:
                return
            # the newest state, unless it holds something recovery reads that is not stored yet
            # (its own write follows and publishes it): then what was just stored
            newest = self._recovery_view() == self._durable
            self.s.bus.publish(msgspec.structs.replace(self.job) if newest else snapshot)
            if self._dirty and self._timer is None:
                # changed while this write was under way, or the write failed: written later
                self._timer = asyncio.get_running_loop().call_later(PROGRESS_WRITE_EVERY, self._flush)

    async def _fetch_previews(self) -> None:
        try:
            while (url := self._preview_wanted) is not None and not self.job.status.finished:
                self._preview_wanted = None
                self._preview_step += 1
                try:
                    ref = await self.s.ingester.preview(self.job, url, self._preview_step)
                except Exception as exc:
                    log.debug("job %s: preview not fetched: %s", self.job.id, exc)
                    continue
                self.job.preview_image = ref
                self._changed()
        finally:
            self._preview_busy = False

    async def settled(self) -> None:
        """Wait for (or drop) background work before the job's final write, which carries
        every change a coalesced write had not written yet."""
        self._cancel_timer()
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=5)
        self._cancel_timer()  # (a write that landed meanwhile may have set one)


def _err(category: ErrorCategory, message: str) -> BackendError:
    return BackendError(category=category, message=message)


def _ext(content_type: str) -> str:
    return {"image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(content_type, "png")


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-60:]
    return keep or "image"
