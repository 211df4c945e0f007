"""An upstream midjourney-proxy-compatible provider as an `Account`: jobs are submitted to its
/mj API and followed by polling its fetch endpoint with backoff.

The upstream task id is what identifies the work there: it is reported as the progress
message id of the first event (so the engine stores it before anything else can be lost and a
restart can find the task again) and returned as the result's message id (so a follow-up's
PressButton carries it back as the parent task id, with the provider's own customId).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import urllib.parse
from typing import Any

import msgspec

from adapter.backends.base import (
    AccountState,
    AccountStatus,
    BackendError,
    BeforeSend,
    Blend,
    Describe,
    EventSink,
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
from adapter.backends.health import AccountHealthMixin
from adapter.backends.mjproxy.client import ProxyClient, Submitted, UpstreamError
from adapter.backends.mjproxy.mapping import (
    BOT_TYPES,
    DIMENSIONS,
    STATUS_EVENTS,
    failure_category,
    parse_progress,
    split_texts,
    submit_outcome,
)
from adapter.config import ProviderAccountConfig
from adapter.domain.actions import Mode
from adapter.domain.buttons import Button
from adapter.domain.errors import ErrorCategory
from adapter.domain.prompt import MODE_FLAGS, parse_prompt

log = logging.getLogger(__name__)


class ProviderAccountOptions(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    base_url: str
    secret: str = ""
    modes: tuple[Mode, ...] = (Mode.FAST, Mode.RELAX)
    concurrency: int = 5
    queue_size: int = 20
    poll_initial_seconds: float = 0.5
    poll_interval_seconds: float = 3.0  # the longest gap between two polls
    mode_prefix: bool = True
    request_timeout_seconds: float = 30.0
    cooldown_seconds: float = 30.0  # after the provider says its queue is full
    lost_after_misses: int = 5  # fetches answering "no such task" before the job is lost
    reconnect_max_seconds: float = 30.0

    def __repr__(self) -> str:  # the secret stays out of logs
        return f"ProviderAccountOptions(id={self.id!r}, base_url={self.base_url!r})"


def _fail(category: ErrorCategory, message: str) -> JobFailed:
    return JobFailed(BackendError(category=category, message=message))


def _data_url(image: ImageInput) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class ProviderAccount(AccountHealthMixin):
    kind = "mjproxy"

    def __init__(self, options: ProviderAccountOptions, *, client: ProxyClient | None = None) -> None:
        self.options = options
        self._client = client or ProxyClient(
            options.base_url, options.secret, timeout=options.request_timeout_seconds, mode_prefix=options.mode_prefix
        )
        self._running = 0
        self._sending = 0  # submits on their way upstream
        self._draining = False
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    @classmethod
    def from_config(cls, cfg: ProviderAccountConfig) -> ProviderAccount:
        return cls(
            ProviderAccountOptions(
                id=cfg.id,
                base_url=cfg.base_url,
                secret=cfg.secret.reveal(),
                modes=cfg.modes,
                concurrency=cfg.concurrency,
                queue_size=cfg.queue_size,
                poll_initial_seconds=cfg.poll_initial_seconds,
                poll_interval_seconds=cfg.poll_interval_seconds,
                mode_prefix=cfg.mode_prefix,
                request_timeout_seconds=cfg.request_timeout_seconds,
            )
        )

    # --- Account protocol ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.options.id

    @property
    def base_url(self) -> str:
        return self._client.base

    def status(self) -> AccountStatus:
        return AccountStatus(
            id=self.id,
            kind=self.kind,
            state=self._state,
            reason=self._reason,
            modes=self.options.modes,
            running=self._running,
            waiting=0,
            concurrency=self.options.concurrency,
            queue_size=self.options.queue_size,
            until_ms=self._until_ms,
        )

    async def start(self) -> None:
        self._closed = False
        self._set_state(AccountState.CONNECTING, None)
        if not await self._probe():
            self._spawn(self._reconnect())

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._background)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()
        self._set_state(AccountState.STOPPED, None)

    async def run(self, op: Operation, mode: Mode, emit: EventSink, *, before_send: BeforeSend | None = None) -> JobOutput:
        if self._state is not AccountState.READY:
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message=f"provider {self.id} is {self._state.value}"))
        self._running += 1
        try:
            endpoint, body = self._request(op, mode)
            nonce = secrets.token_hex(8)
            if self._draining:
                raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="the service is shutting down"))
            self._sending += 1
            try:
                if before_send is not None:
                    await before_send(nonce)
                task_id = await self._send(endpoint, body, mode, op, emit, nonce)
            finally:
                self._sending -= 1
            return await self._follow(task_id, op, mode, emit)
        finally:
            self._running -= 1

    async def drain(self, timeout: float) -> None:
        self._draining = True
        deadline = asyncio.get_running_loop().time() + timeout
        while self._sending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)

    async def recover(self, probe: RecoveryProbe, emit: EventSink) -> JobOutput:
        """Find the upstream task by the id recorded with the job's first event; never submits."""
        task_id = probe.progress_message_id
        if not task_id:
            raise _fail(ErrorCategory.RETRYABLE, "The job was lost while the service restarted: the provider's task id was never recorded.")
        return await self._follow(task_id, probe.operation, None, emit)

    # --- submitting ---------------------------------------------------------------------------

    def _request(self, op: Operation, mode: Mode) -> tuple[str, dict[str, Any]]:
        """(endpoint, body) of the submit call that starts an operation upstream."""
        if isinstance(op, Imagine):
            prompt = op.prompt
            if not self.options.mode_prefix and not any(f in parse_prompt(prompt).flags for f in MODE_FLAGS):
                prompt = f"{prompt} --{mode.value}"
            return "imagine", {"prompt": prompt, "base64Array": [_data_url(i) for i in op.images], "botType": BOT_TYPES[op.bot]}
        if isinstance(op, PressButton):
            return "action", {"taskId": op.message_id, "customId": op.custom_id}
        if isinstance(op, Describe):
            if op.image is not None:
                return "describe", {"base64": _data_url(op.image), "botType": BOT_TYPES[op.bot]}
            if op.link:
                return "describe", {"link": op.link, "botType": BOT_TYPES[op.bot]}
            raise _fail(ErrorCategory.INVALID_REQUEST, "describe needs an image")
        if isinstance(op, Blend):
            return "blend", {"base64Array": [_data_url(i) for i in op.images], "dimensions": DIMENSIONS[op.dimensions], "botType": BOT_TYPES[op.bot]}
        if isinstance(op, Shorten):
            return "shorten", {"prompt": op.prompt, "botType": BOT_TYPES[op.bot]}
        raise _fail(ErrorCategory.INVALID_REQUEST, f"a midjourney-proxy provider cannot run {type(op).__name__}")

    async def _call(self, endpoint: str, body: dict[str, Any], mode: Mode | None) -> Submitted:
        try:
            return await self._client.submit(endpoint, body, mode)
        except UpstreamError as exc:
            raise self._upstream_failure(exc) from None

    async def _send(self, endpoint: str, body: dict[str, Any], mode: Mode, op: Operation, emit: EventSink, nonce: str) -> str:
        res = await self._call(endpoint, body, mode)
        outcome = self._outcome(res)
        task_id = res.result or ""
        emit(JobEvent(kind="submitted", nonce=nonce, message_id=task_id))
        if outcome == "modal":
            res = await self._answer_modal(task_id, op, mode)
            outcome = self._outcome(res)
            task_id = res.result or task_id
            emit(JobEvent(kind="submitted", message_id=task_id))
        if outcome == "queued":
            emit(JobEvent(kind="queued", message_id=task_id))
        return task_id

    def _outcome(self, res: Submitted) -> str:
        outcome = submit_outcome(res.code)
        if isinstance(outcome, ErrorCategory):
            if outcome is ErrorCategory.QUEUE_FULL:
                self._cool_down("the provider's queue is full")
            detail = res.description or f"code {res.code}"
            word = _str(res.properties.get("bannedWord"))
            if outcome is ErrorCategory.CONTENT_POLICY:
                detail = f"banned prompt{f' ({word})' if word else ''}: {detail}"
            raise _fail(outcome, f"The provider refused the job: {detail}")
        if not res.result:
            raise _fail(ErrorCategory.RETRYABLE, "The provider accepted the job but returned no task id.")
        return outcome

    async def _answer_modal(self, task_id: str, op: Operation, mode: Mode | None) -> Submitted:
        """Code 21 / a MODAL task: submit the prompt (and mask) the button needs. Without a prompt
        of ours (the provider has remix on), the task's own prompt goes back unchanged."""
        prompt = op.prompt if isinstance(op, PressButton) else None
        if prompt is None:
            task = await self._fetch(task_id)
            prompt = (task and (_str(task.get("promptEn")) or _str(task.get("prompt")))) or ""
        body: dict[str, Any] = {"taskId": task_id, "prompt": prompt}
        if isinstance(op, PressButton) and op.mask_png is not None:
            body["maskBase64"] = "data:image/png;base64," + base64.b64encode(op.mask_png).decode()
        return await self._call("modal", body, mode)

    # --- following ----------------------------------------------------------------------------

    async def _fetch(self, task_id: str) -> dict[str, Any] | None:
        try:
            return await self._client.fetch(task_id)
        except UpstreamError as exc:
            if exc.kind == "auth":
                raise self._upstream_failure(exc) from None
            raise

    async def _follow(self, task_id: str, op: Operation, mode: Mode | None, emit: EventSink) -> JobOutput:
        opts = self.options
        delay = opts.poll_initial_seconds
        last: tuple[Any, ...] | None = None
        misses = 0
        modal_answered = False
        while True:
            await asyncio.sleep(delay)
            try:
                task = await self._fetch(task_id)
            except UpstreamError as exc:
                # the provider is down or flaky: keep following (the engine's timeout bounds it)
                log.info("provider %s: fetch of %s failed: %s", self.id, task_id, exc.message)
                delay = min(max(delay, opts.poll_initial_seconds) * 2, opts.poll_interval_seconds)
                continue
            if task is None:
                misses += 1
                if misses >= opts.lost_after_misses:
                    raise _fail(ErrorCategory.RETRYABLE, "The provider no longer knows this task.")
                delay = min(delay * 2, opts.poll_interval_seconds)
                continue
            misses = 0
            status = str(task.get("status") or "")
            if status == "SUCCESS":
                return self._output(task_id, task, op, mode)
            if status == "FAILURE":
                reason = _str(task.get("failReason")) or "The provider's job failed."
                props = task.get("properties") if isinstance(task.get("properties"), dict) else {}
                raise _fail(failure_category(reason, props.get("errorCategory")), reason)
            if status == "CANCEL":
                raise _fail(ErrorCategory.CANCELLED, _str(task.get("failReason")) or "The provider cancelled the job.")
            kind = STATUS_EVENTS.get(status, "waiting")
            if kind == "modal" and not modal_answered and isinstance(op, PressButton):
                modal_answered = True
                res = await self._answer_modal(task_id, op, mode)
                self._outcome(res)
                continue
            progress = parse_progress(task.get("progress"))
            preview = self._absolute(_str(task.get("imageUrl")))
            now = (status, progress, preview)
            if now != last:
                last = now
                if kind == "progress":
                    emit(JobEvent(kind="progress", progress=progress, preview_url=preview, message_id=task_id))
                else:
                    emit(JobEvent(kind="waiting", message_id=task_id))
                delay = opts.poll_initial_seconds
            else:
                delay = min(delay * 1.5, opts.poll_interval_seconds)

    def _output(self, task_id: str, task: dict[str, Any], op: Operation, mode: Mode | None) -> JobOutput:
        props: dict[str, Any] = task.get("properties") if isinstance(task.get("properties"), dict) else {}  # type: ignore[assignment]
        buttons = []
        for b in task.get("buttons") or []:
            if isinstance(b, dict) and _str(b.get("customId")):
                style = b.get("style")
                buttons.append(
                    Button(
                        custom_id=b["customId"],
                        label=str(b.get("label") or ""),
                        emoji=_str(b.get("emoji")),
                        style=style if isinstance(style, int) else 2,
                    )
                )
        texts: tuple[str, ...] = ()
        prompt = _str(props.get("finalPrompt")) or _str(task.get("promptEn")) or _str(task.get("prompt")) or ""
        if isinstance(op, (Describe, Shorten)):
            texts = split_texts(_str(task.get("prompt")) or _str(props.get("finalPrompt")))
            prompt = ""
        flags = props.get("flags")
        return JobOutput(
            account_id=self.id,
            message_id=task_id,
            message_flags=flags if isinstance(flags, int) else 0,
            job_hash=_str(props.get("messageHash")),
            image_url=self._absolute(_str(task.get("imageUrl"))),
            prompt=prompt,
            buttons=tuple(buttons),
            texts=texts,
            mode=mode,
        )

    def _absolute(self, url: str | None) -> str | None:
        if url is None:
            return None
        return urllib.parse.urljoin(self._client.base + "/", url)

    # --- health -------------------------------------------------------------------------------

    async def seed(self, result: ResultRef) -> str:
        """The upstream task's seed, through the provider's own image-seed (Plus)."""
        try:
            status, body = await self._client.task_call("GET", result.message_id, "image-seed")
        except UpstreamError as exc:
            raise self._upstream_failure(exc) from None
        data = body if isinstance(body, dict) else {}
        value = data.get("result")
        if data.get("code") == 1 and isinstance(value, (str, int)) and str(value).strip().isdigit():
            return str(value).strip()
        reason = str(data.get("description") or f"HTTP {status}")
        category = ErrorCategory.INVALID_REQUEST if status in (400, 404) or data.get("code") in (3, 4) else ErrorCategory.RETRYABLE
        raise _fail(category, f"The provider did not give the seed: {reason}")

    async def cancel_running(self, progress_message_id: str) -> bool:
        """Cancel the upstream task (its id is this account's progress message id)."""
        if not progress_message_id:
            return False
        try:
            _status, body = await self._client.task_call("POST", progress_message_id, "cancel")
        except UpstreamError as exc:
            raise self._upstream_failure(exc) from None
        return isinstance(body, dict) and body.get("code") == 1

    def _upstream_failure(self, exc: UpstreamError) -> JobFailed:
        if exc.kind == "auth":
            self._set_state(AccountState.DISABLED, f"provider {exc.message}: check the account's secret")
            return _fail(ErrorCategory.ACCOUNT, f"The provider refused this adapter's secret ({exc.message}).")
        return _fail(ErrorCategory.RETRYABLE, f"The provider could not take the job: {exc.message}.")

    async def _probe(self) -> bool:
        try:
            await self._client.probe()
        except UpstreamError as exc:
            if exc.kind == "auth":
                self._set_state(AccountState.DISABLED, f"provider {exc.message}: check the account's secret")
                return True  # nothing more to try until the configuration changes
            self._set_state(AccountState.RECONNECTING, f"provider not reachable yet: {exc.message}")
            return False
        self._set_state(AccountState.READY, None)
        return True

    async def _reconnect(self) -> None:
        delay = 0.5
        while not self._closed:
            await asyncio.sleep(delay)
            if await self._probe():
                return
            delay = min(delay * 2, self.options.reconnect_max_seconds)

    def _cool_down(self, reason: str) -> None:
        if self._state is not AccountState.READY:
            return
        until = int((time.time() + self.options.cooldown_seconds) * 1000)
        self._set_state(AccountState.COOLING_DOWN, reason, until_ms=until)

        async def back() -> None:
            await asyncio.sleep(self.options.cooldown_seconds)
            if self._state is AccountState.COOLING_DOWN:
                self._set_state(AccountState.READY, None)

        self._spawn(back())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name=f"provider-{self.id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
