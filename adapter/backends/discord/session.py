"""One Discord user account driving the Midjourney bot: the `Account` the engine talks to.

It owns a gateway connection and a REST client, paces its interactions (a minimum jittered gap,
an optional daily cap), runs operations (imagine, buttons with their modals and the vary-region
iframe, describe, blend, shorten, info, mode switches), follows each to its end through the
correlation registry, and watches the account's health: a captcha, a pending moderation message
or an expired subscription pause or disable it with a reason instead of retrying.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
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
    Info,
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
from adapter.backends.discord.commands import (
    Channel,
    CommandCache,
    attachment_option,
    button_press,
    modal_fields,
    modal_submit,
    slash_command,
    string_option,
)
from adapter.backends.discord.correlate import OpKind, Pending, Registry
from adapter.backends.discord.errors import (
    CaptchaRequired,
    DiscordError,
    Forbidden,
    GatewayFatal,
    InvalidFormBody,
    OutcomeUnknown,
    RateLimitExhausted,
    Unauthorized,
)
from adapter.backends.discord.gateway import GatewayClient, GatewayState
from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.messages import EPHEMERAL, MjMessage, classify
from adapter.backends.discord.rest import DiscordRest, UploadedAttachment
from adapter.backends.discord.seeds import CANCEL, ENVELOPE, SeedWaiters, parse_seed_reply
from adapter.domain.actions import BOT_APPLICATION_IDS, Bot, Mode
from adapter.domain.buttons import (
    CUSTOM_ZOOM_FIELD,
    IFRAME_PREFIX,
    modal_prompt_field,
    parse_custom_id,
)
from adapter.domain.errors import ErrorCategory
from adapter.domain.ids import SnowflakeGenerator, snowflake_time_ms
from adapter.domain.prompt import MODE_FLAGS, parse_prompt

log = logging.getLogger(__name__)

_BLEND_DIMENSIONS = {"portrait": "--ar 2:3", "square": "--ar 1:1", "landscape": "--ar 3:2"}
_ACCOUNT_PAUSE_TITLES = ("action needed", "action required", "pending mod message")
_ACCOUNT_DISABLE_TITLES = ("blocked", "plan cancelled", "subscription required", "subscription paused", "tos not accepted")
_UNKNOWN_MESSAGE = 10008  # Discord's code for a deleted / unknown message
_STOPPED = re.compile(r"\((?:stopped|cancell?ed)\)", re.IGNORECASE)


class DiscordAccountOptions(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    token: str
    channel_id: str
    guild_id: str | None = None  # None: channel_id is the account's DM channel with the bot
    # the DM channel with the Midjourney bot, where it sends seeds; found through Discord when
    # not given (POST /users/@me/channels)
    dm_channel_id: str | None = None
    modes: tuple[Mode, ...] = (Mode.FAST, Mode.RELAX)
    concurrency: int = 3
    queue_size: int = 10
    min_gap_seconds: float = 1.5
    gap_jitter_seconds: float = 1.0
    daily_cap: int | None = None
    identity: BrowserIdentity = msgspec.field(default_factory=BrowserIdentity)
    rest_base: str = "https://discord.com/api/v9"
    inpaint_submit_url: str = "https://936929561302675456.discordsays.com/inpaint/api/submit-job"
    compress: bool = True
    # how long a deleted progress message may wait for its final message before the job is
    # declared moderated (the final CREATE normally arrives before the DELETE)
    delete_grace_seconds: float = 3.0
    modal_timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 30.0
    history_pages: int = 4  # recovery looks this many pages of 50 back
    # An interaction whose POST got a 5xx or no answer may or may not have been taken. Discord
    # announces every interaction it creates (INTERACTION_CREATE) at once, and the bot must
    # answer within 3 s; with the gateway continuously connected, this long a silence proves
    # it was not taken, so it can be sent again without a duplicate.
    ack_grace_seconds: float = 10.0
    invalid_session_delay: tuple[float, float] = (1.0, 5.0)  # Discord asks for a 1-5 s pause
    seed_timeout_seconds: float = 60.0  # how long the bot's seed DM may take after the ✉️


def _fail(category: ErrorCategory, message: str, title: str | None = None) -> JobFailed:
    return JobFailed(BackendError(category=category, message=message, title=title))


def _cancelled() -> JobFailed:
    return _fail(ErrorCategory.CANCELLED, "Cancelled in Midjourney (❌ on its progress message).")


class DiscordAccount(AccountHealthMixin):
    kind = "discord"

    def __init__(
        self,
        options: DiscordAccountOptions,
        *,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        gateway_factory: Callable[..., GatewayClient] = GatewayClient,
    ) -> None:
        self.options = options
        self._rng = rng or random.Random()
        self._rest = DiscordRest(base_url=options.rest_base, token=options.token, identity=options.identity, client=client)
        self._gateway = gateway_factory(
            token=options.token,
            identity=options.identity,
            url_provider=self._rest.get_gateway_url,
            on_dispatch=self._on_dispatch,
            on_state=self._on_gateway_state,
            compress=options.compress,
            rng=self._rng,
            invalid_session_delay=options.invalid_session_delay,
        )
        self._channel = Channel(guild_id=options.guild_id or None, channel_id=options.channel_id)
        self._commands = CommandCache(self._rest, options.guild_id or None, options.channel_id)
        # seeds: the DM channel per bot, the callers waiting for a DM, one lookup per job hash
        self._dm_channels: dict[Bot, str] = {}
        if options.dm_channel_id:
            self._dm_channels[Bot.MIDJOURNEY] = options.dm_channel_id
        elif not options.guild_id:
            self._dm_channels[Bot.MIDJOURNEY] = options.channel_id
        self._seed_waiters = SeedWaiters()
        self._seed_lookups: dict[str, asyncio.Task[str]] = {}
        self._registry = Registry()
        self._snowflakes = SnowflakeGenerator(worker=self._rng.randrange(32))
        self._running = 0
        self._waiting = 0
        self._pace_lock = asyncio.Lock()
        self._last_interaction = 0.0
        self._day: dt.date | None = None
        self._day_count = 0
        self._mj_mode: dict[Bot, Mode] = {}
        self._user_id: str | None = None
        self._bot_ids = set(BOT_APPLICATION_IDS.values())
        self._modes = tuple(options.modes)
        self.interactions_sent = 0
        # Gateway continuity: a new session (not a resume) means events may have been missed.
        self._session_seen: str | None = None
        self._epoch = 0  # bumped on every loss of continuity
        self._reconciling: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._replay_wanted = 0  # history reads asked for / done: every caller gets a read
        self._replay_done = 0  # that started after it registered its job
        self._idle_check: asyncio.Task[bool | None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.reconciles = 0
        self._draining = False
        # several replicas: the lease fence, asked right before each interaction goes out, and
        # where each interaction is recorded so pacing and the daily cap hold across the cluster
        self.send_gate: Callable[[], bool] | None = None
        self.on_paced: Callable[[str, int, float], None] | None = None  # (UTC day, count, epoch s)

    # --- Account protocol ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.options.id

    def status(self) -> AccountStatus:
        return AccountStatus(
            id=self.id,
            kind=self.kind,
            state=self._state,
            reason=self._reason,
            modes=self._modes,
            running=self._running,
            waiting=self._waiting,
            concurrency=self.options.concurrency,
            queue_size=self.options.queue_size,
            until_ms=self._until_ms,
        )

    def _connected(self) -> bool:
        return self._gateway.state is GatewayState.READY

    async def start(self) -> None:
        self._set_state(AccountState.CONNECTING, None)
        try:
            await self._gateway.start(timeout=self.options.connect_timeout_seconds)
        except GatewayFatal as exc:
            self._set_state(AccountState.DISABLED, exc.reason)
            return
        except Unauthorized:
            self._set_state(AccountState.DISABLED, "Discord refused the token (401): sign in again and update it")
            return
        except (TimeoutError, OSError, DiscordError) as exc:
            # not fatal: the gateway keeps trying in the background
            self._set_state(AccountState.RECONNECTING, f"cannot reach Discord yet ({type(exc).__name__})")
            return
        self._user_id = self._gateway.user_id
        if self._state in (AccountState.CONNECTING, AccountState.RECONNECTING):
            self._set_state(AccountState.READY, None)

    async def drain(self, timeout: float) -> None:
        self._draining = True
        try:
            async with asyncio.timeout(timeout):
                async with self._pace_lock:  # the interaction being sent, if any, has gone out
                    pass
        except TimeoutError:
            log.warning("account %s: an interaction was still being sent after %.0f s of shutdown", self.id, timeout)

    async def close(self) -> None:
        for task in [*self._background]:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for p in list(self._registry):
            if not p.done:
                p.future.set_exception(NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="The account was closed.")))
        await self._gateway.close()
        await self._rest.aclose()
        self._set_state(AccountState.STOPPED, None)

    async def run(self, op: Operation, mode: Mode, emit: EventSink, *, before_send: BeforeSend | None = None) -> JobOutput:
        if self._state is not AccountState.READY:
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message=f"account {self.id} is {self._state.value}"))
        self._running += 1
        try:
            if isinstance(op, Imagine):
                return await self._imagine(op, mode, emit, before_send)
            if isinstance(op, PressButton):
                return await self._press(op, mode, emit, before_send)
            if isinstance(op, Describe):
                return await self._describe(op, emit, before_send)
            if isinstance(op, Blend):
                return await self._blend(op, mode, emit, before_send)
            if isinstance(op, Shorten):
                return await self._shorten(op, emit, before_send)
            if isinstance(op, Info):
                return await self._info(op, emit, before_send)
            raise _fail(ErrorCategory.INVALID_REQUEST, f"unsupported operation {type(op).__name__}")
        finally:
            self._running -= 1

    async def switch_mode(self, mode: Mode, bot: Bot = Bot.MIDJOURNEY) -> None:
        """Send /fast, /relax or /turbo and wait for Discord to acknowledge it."""
        app = BOT_APPLICATION_IDS[bot]
        cmd = await self._command(app, mode.value)
        p = Pending(kind="mode", emit=lambda ev: None)
        await self._send(p, lambda nonce: slash_command(channel=self._channel, session_id=self._session(), nonce=nonce, command=cmd), None)
        try:
            # INTERACTION_SUCCESS or the bot's answer ("Done!"), whichever Discord sends
            async with asyncio.timeout(self.options.modal_timeout_seconds):
                await p.acknowledged
        except TimeoutError:
            # the job itself was not sent: another account (or a later try) may run it
            raise NotSent(
                BackendError(category=ErrorCategory.RETRYABLE, message=f"Midjourney did not confirm the switch to {mode.value} mode.")
            ) from None
        finally:
            self._registry.remove(p)
        self._mj_mode[bot] = mode

    # --- operations ---------------------------------------------------------------------------

    async def _imagine(self, op: Imagine, mode: Mode, emit: EventSink, before_send: BeforeSend | None) -> JobOutput:
        urls = [await self._image_url(img) for img in op.images]
        prompt = op.prompt.strip()
        if urls:
            prompt = " ".join([*urls, prompt]).strip()
        flags = parse_prompt(prompt).flags
        if not any(f in flags for f in MODE_FLAGS):
            prompt = f"{prompt} --{mode.value}"
        cmd = await self._command(BOT_APPLICATION_IDS[op.bot], "imagine")
        p = Pending(kind="imagine", emit=emit, prompt=prompt)
        emit(JobEvent(kind="sending", prompt=prompt))  # kept with the job: recovery matches on it
        return await self._until_done(
            p,
            lambda nonce: slash_command(
                channel=self._channel, session_id=self._session(), nonce=nonce, command=cmd, options=[string_option("prompt", prompt)]
            ),
            before_send,
        )

    async def _press(self, op: PressButton, mode: Mode, emit: EventSink, before_send: BeforeSend | None) -> JobOutput:
        parsed = parse_custom_id(op.custom_id)
        if self._mj_mode.get(op.bot) is not mode:
            await self.switch_mode(mode, op.bot)
        app = BOT_APPLICATION_IDS[op.bot]
        p = Pending(
            kind="button", emit=emit, source_message_id=op.message_id, button=parsed, application_id=app, modal_prompt=op.prompt
        )
        build = lambda nonce: button_press(  # noqa: E731
            channel=self._channel,
            session_id=self._session(),
            nonce=nonce,
            application_id=app,
            message_id=op.message_id,
            message_flags=op.message_flags,
            custom_id=op.custom_id,
        )
        self._registry.add(p)
        try:
            await self._send(p, build, before_send)
            if parsed is not None and parsed.needs_modal:
                await self._answer_modal(p, op, app)
            return await self._result(p)
        finally:
            self._registry.remove(p)

    async def _answer_modal(self, p: Pending, op: PressButton, app: str) -> None:
        """Custom zoom opens a modal; vary region opens the editor iframe. Remix modals are
        answered as they arrive (see _on_modal)."""
        try:
            async with asyncio.timeout(self.options.modal_timeout_seconds):
                modal = await asyncio.shield(p.modal)
        except TimeoutError:
            raise _fail(ErrorCategory.RETRYABLE, "Midjourney did not open the expected dialog.") from None
        custom_id = str(modal.get("custom_id", ""))
        if custom_id.startswith(IFRAME_PREFIX):
            if op.mask_png is None:
                raise _fail(ErrorCategory.INVALID_REQUEST, "Vary (Region) needs a mask.")
            async with self._paced():
                await self._rest.submit_inpaint(
                    self.options.inpaint_submit_url,
                    custom_id=custom_id[len(IFRAME_PREFIX) :],
                    mask_png_b64=base64.b64encode(op.mask_png).decode(),
                    prompt=op.prompt or "",
                )
            return
        # a text modal that _on_modal did not answer itself (it answers remix modals directly)
        await self._submit_modal(p, modal, op.prompt, app)

    async def _submit_modal(self, p: Pending, modal: dict[str, Any], prompt: str | None, app: str) -> None:
        custom_id = str(modal.get("custom_id", ""))
        fields = modal_fields(modal.get("components"))
        field = modal_prompt_field(custom_id) or next(iter(fields), None)
        if field is None:
            raise _fail(ErrorCategory.RETRYABLE, "Midjourney opened a dialog this adapter does not understand.")
        value = prompt if prompt else fields.get(field, "")
        if field == CUSTOM_ZOOM_FIELD and "zoom" not in parse_prompt(value).flags:
            default_zoom = parse_prompt(fields.get(field, "")).flags.get("zoom", "2")
            value = f"{value} --zoom {default_zoom}"
        values = {field: value}
        await self._send(
            p,
            lambda nonce: modal_submit(
                channel=self._channel,
                session_id=self._session(),
                nonce=nonce,
                application_id=app,
                modal_interaction_id=str(modal.get("id", "")),
                modal_custom_id=custom_id,
                values=values,
            ),
            None,
        )
        p.prompt_key = None  # the modal may have changed the prompt

    async def _describe(self, op: Describe, emit: EventSink, before_send: BeforeSend | None) -> JobOutput:
        cmd = await self._command(BOT_APPLICATION_IDS[op.bot], "describe")
        uploaded: list[UploadedAttachment] = []
        if op.image is not None:
            uploaded.append(await self._upload(op.image))
            options = [attachment_option("image", 0)]
        elif op.link:
            options = [string_option("link", op.link)]
        else:
            raise _fail(ErrorCategory.INVALID_REQUEST, "describe needs an image or a link")
        p = Pending(kind="describe", emit=emit)
        return await self._until_done(
            p,
            lambda nonce: slash_command(
                channel=self._channel, session_id=self._session(), nonce=nonce, command=cmd, options=options, attachments=uploaded
            ),
            before_send,
        )

    async def _blend(self, op: Blend, mode: Mode, emit: EventSink, before_send: BeforeSend | None) -> JobOutput:
        if self._mj_mode.get(op.bot) is not mode:
            await self.switch_mode(mode, op.bot)
        cmd = await self._command(BOT_APPLICATION_IDS[op.bot], "blend")
        uploaded = [await self._upload(img) for img in op.images]
        options = [attachment_option(f"image{i + 1}", i) for i in range(len(uploaded))]
        options.append(string_option("dimensions", _BLEND_DIMENSIONS[op.dimensions]))
        p = Pending(kind="blend", emit=emit)
        return await self._until_done(
            p,
            lambda nonce: slash_command(
                channel=self._channel, session_id=self._session(), nonce=nonce, command=cmd, options=options, attachments=uploaded
            ),
            before_send,
        )

    async def _shorten(self, op: Shorten, emit: EventSink, before_send: BeforeSend | None) -> JobOutput:
        cmd = await self._command(BOT_APPLICATION_IDS[op.bot], "shorten")
        p = Pending(kind="shorten", emit=emit)
        return await self._until_done(
            p,
            lambda nonce: slash_command(
                channel=self._channel, session_id=self._session(), nonce=nonce, command=cmd, options=[string_option("prompt", op.prompt)]
            ),
            before_send,
        )

    async def _info(self, op: Info, emit: EventSink, before_send: BeforeSend | None) -> JobOutput:
        cmd = await self._command(BOT_APPLICATION_IDS[op.bot], "info")
        p = Pending(kind="info", emit=emit)
        return await self._until_done(
            p, lambda nonce: slash_command(channel=self._channel, session_id=self._session(), nonce=nonce, command=cmd), before_send
        )

    # --- sending ------------------------------------------------------------------------------

    async def _until_done(self, p: Pending, build: Callable[[str], dict[str, Any]], before_send: BeforeSend | None) -> JobOutput:
        self._registry.add(p)
        try:
            await self._send(p, build, before_send)
            return await self._result(p)
        finally:
            self._registry.remove(p)

    async def _result(self, p: Pending) -> JobOutput:
        return await p.future

    async def _send(self, p: Pending, build: Callable[[str], dict[str, Any]], before_send: BeforeSend | None) -> None:
        """Pace, persist (before_send), then POST the interaction; a stale command version is
        refreshed and retried once."""
        if p not in list(self._registry):
            self._registry.add(p)
        stale = uncertain = False
        async with self._paced():
            nonce = self._snowflakes.next()
            p.nonces.add(nonce)
            if before_send is not None:
                await before_send(nonce)
            payload = build(nonce)
            epoch = self._epoch
            p.sent_at_ms = int(time.time() * 1000)
            try:
                await self._post(payload)
            except InvalidFormBody:
                stale = True
            except OutcomeUnknown as exc:
                log.warning("account %s: interaction %s answered %s; looking for evidence", self.id, nonce, exc.status or "nothing")
                uncertain = True
        if uncertain:
            await self._confirm_taken(p, epoch)
        if stale:
            if payload.get("type") != 2:
                raise _fail(ErrorCategory.INVALID_REQUEST, "Discord rejected the interaction (invalid form body).")
            await self._commands.refresh()
            fresh = await self._command(payload["application_id"], payload["data"]["name"])
            for holder in (payload["data"], payload["data"]["application_command"]):
                holder["version"], holder["id"] = fresh.version, fresh.id
            async with self._paced():
                try:
                    await self._post(payload)
                except InvalidFormBody:
                    raise _fail(ErrorCategory.INVALID_REQUEST, "Discord rejected the interaction (invalid form body).") from None
        p.emit(JobEvent(kind="submitted", nonce=nonce))

    async def _post(self, payload: dict[str, Any]) -> None:
        try:
            await self._rest.post_interaction(payload)
        except CaptchaRequired:
            self.pause("Discord asked for a captcha: a human must sign in to this account in a browser and solve it")
            raise _fail(ErrorCategory.ACCOUNT, "The Discord account needs a captcha solved; the job was not run.") from None
        except Unauthorized:
            self._set_state(AccountState.DISABLED, "Discord refused the token (401): sign in again and update it")
            raise _fail(ErrorCategory.ACCOUNT, "The Discord account's token was refused.") from None
        except Forbidden:
            raise _fail(ErrorCategory.ACCOUNT, "Discord refused the interaction (403): check the account's access to the channel.") from None
        except (InvalidFormBody, OutcomeUnknown):
            raise
        except RateLimitExhausted as exc:
            # nothing was sent: the limiter refused to wait that long
            raise NotSent(BackendError(category=ErrorCategory.QUEUE_FULL, message=f"Discord rate limits this account for {exc.retry_after:.0f} s")) from None
        except DiscordError as exc:
            raise _fail(ErrorCategory.RETRYABLE, f"Discord answered {exc.status}: {exc.message}") from None
        finally:
            self.interactions_sent += 1

    async def _confirm_taken(self, p: Pending, epoch: int) -> None:
        """After an ambiguous POST: go on if Discord shows the interaction exists; raise NotSent
        if an unbroken gateway stayed silent past the grace (it was not taken); otherwise (the
        session was lost meanwhile) keep following the job: reconciliation decides."""
        def settled() -> bool:  # Discord showed the interaction exists, or continuity broke
            return p.done or p.seen_message or bool(p.interaction_ids) or p.acknowledged.done() or p.modal.done() or self._epoch != epoch

        deadline = time.monotonic() + self.options.ack_grace_seconds
        while time.monotonic() < deadline:
            if settled():
                return
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        # A dropped socket that resumes gets the missed events replayed before RESUMED: wait
        # for it (the job's own timeout bounds this), then judge.
        while self._gateway.state is not GatewayState.READY and self._epoch == epoch and not p.done:
            await asyncio.sleep(0.05)
        if settled():
            return
        raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message="Discord did not take the interaction (no trace of it after an error answer)"))

    @contextlib.asynccontextmanager
    async def _paced(self) -> AsyncIterator[None]:
        """One interaction at a time, each at least the jittered gap after the previous one
        *finished* (so Discord never sees two closer together, however slow a request was),
        within the daily cap."""
        self._waiting += 1
        try:
            await self._pace_lock.acquire()
        finally:
            self._waiting -= 1
        try:
            self._check_ready()
            self._roll_day()
            if self._cap_reached():
                self._cool_until_midnight()
                self._check_ready()
            gap = self.options.min_gap_seconds + self._rng.uniform(0, self.options.gap_jitter_seconds)
            wait = self._last_interaction + gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._check_ready()  # it may have paused (or shutdown begun) while we waited
            self._day_count += 1
            try:
                yield
            finally:
                self._last_interaction = time.monotonic()
                if self.on_paced is not None and self._day is not None:
                    self.on_paced(self._day.isoformat(), self._day_count, time.time())
                if self._cap_reached():
                    # say so now, so the scheduler sends the next jobs elsewhere or refuses them
                    self._cool_until_midnight()
        finally:
            self._pace_lock.release()

    def restore_pacing(self, day: str, count: int, last_epoch_s: float) -> None:
        """Carry on from where the account's previous holder (another replica) left off: the
        interactions counted today and the time of the last one."""
        try:
            self._day = dt.date.fromisoformat(day)
        except ValueError:
            return
        self._day_count = max(0, count)
        self._last_interaction = time.monotonic() - max(0.0, time.time() - last_epoch_s)
        self._roll_day()

    def _roll_day(self) -> None:
        today = dt.datetime.now(dt.timezone.utc).date()
        if self._day != today:
            self._day, self._day_count = today, 0

    def _cap_reached(self) -> bool:
        return self.options.daily_cap is not None and self._day_count >= self.options.daily_cap

    def _check_ready(self) -> None:
        """Raise NotSent unless an interaction may go out now."""
        if self._draining:
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="the service is shutting down"))
        if self.send_gate is not None and not self.send_gate():
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message=f"this replica no longer holds account {self.id}"))
        if self._state is not AccountState.READY:
            reason = f": {self._reason}" if self._reason else ""
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message=f"account {self.id} is {self._state.value}{reason}"))

    def _cool_until_midnight(self) -> None:
        if self._state is AccountState.COOLING_DOWN:
            return
        now = dt.datetime.now(dt.timezone.utc)
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        reason = f"daily interaction cap ({self.options.daily_cap}) reached; it resets at 00:00 UTC"
        self._set_state(AccountState.COOLING_DOWN, reason, until_ms=int(midnight.timestamp() * 1000))
        asyncio.get_running_loop().call_later((midnight - now).total_seconds() + 1, self._end_cooldown)

    def _end_cooldown(self) -> None:
        if self._state is AccountState.COOLING_DOWN:
            self._roll_day()
            self._back_to_work()

    async def _command(self, application_id: str, name: str) -> Any:
        try:
            return await self._commands.get(application_id, name)
        except LookupError as exc:
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message=str(exc))) from None
        except Unauthorized:
            self._set_state(AccountState.DISABLED, "Discord refused the token (401): sign in again and update it")
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="The Discord account's token was refused.")) from None
        except DiscordError as exc:
            raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message=f"cannot read the command list ({exc.status})")) from None

    def _session(self) -> str:
        sid = self._gateway.session_id
        if not sid:
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="the gateway has no session"))
        return sid

    async def _upload(self, image: ImageInput) -> UploadedAttachment:
        try:
            return await self._rest.upload(self.options.channel_id, image.filename, image.data, image.content_type)
        except DiscordError as exc:
            raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message=f"image upload failed ({exc.status})")) from None

    async def _image_url(self, image: ImageInput) -> str:
        """Image prompts must be URLs: post the image to the channel and use its CDN link."""
        uploaded = await self._upload(image)
        try:
            msg = await self._rest.post_message(self.options.channel_id, "", [uploaded])
        except DiscordError as exc:
            raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message=f"image post failed ({exc.status})")) from None
        attachments = msg.get("attachments") or []
        if not attachments or not attachments[0].get("url"):
            raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message="Discord returned no URL for the uploaded image"))
        return str(attachments[0]["url"])

    # --- events from the gateway --------------------------------------------------------------

    def _on_gateway_state(self, state: GatewayState, reason: str | None) -> None:
        if state is GatewayState.FATAL:
            self._set_state(AccountState.DISABLED, reason or "the gateway refused this account")
            for p in list(self._registry):
                if not p.done:
                    p.future.set_exception(_fail(ErrorCategory.ACCOUNT, f"The Discord account was disabled: {reason or 'gateway refused it'}."))
        elif state is GatewayState.READY:
            self._user_id = self._gateway.user_id
            sid = self._gateway.session_id
            lost = self._session_seen is not None and sid != self._session_seen
            self._session_seen = sid
            if lost:
                # A new session, not a resume: whatever Discord sent meanwhile is gone. Nothing
                # new is sent on this account until its running jobs are reconciled.
                self._epoch += 1
                if any(not p.done and p.kind != "mode" for p in self._registry):
                    if self._state in (AccountState.CONNECTING, AccountState.RECONNECTING, AccountState.READY):
                        self._set_state(AccountState.RECONNECTING, "new gateway session; reconciling running jobs")
                    self._reconciling = self._spawn(self._reconcile(), f"reconcile-{self.id}")
                    return
            if self._state in (AccountState.CONNECTING, AccountState.RECONNECTING) and self._reconciling is None:
                self._set_state(AccountState.READY, None)
        elif state in (GatewayState.RECONNECTING, GatewayState.RESUMING, GatewayState.CONNECTING):
            if self._state is AccountState.READY:
                self._set_state(AccountState.RECONNECTING, "gateway connection lost; resuming")

    async def _on_dispatch(self, event: str, data: dict[str, Any]) -> None:
        try:
            if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
                self._on_message(data)
            elif event == "MESSAGE_DELETE":
                self._on_delete(data)
            elif event in ("INTERACTION_CREATE", "INTERACTION_SUCCESS"):
                if p := self._registry.by_nonce(_s(data.get("nonce"))):
                    if (iid := _s(data.get("id"))) and iid not in p.interaction_ids:
                        p.interaction_ids.add(iid)
                        # persisted at once: the final message names only this id
                        p.emit(JobEvent(kind="submitted", interaction_ids=tuple(sorted(p.interaction_ids))))
                    if event == "INTERACTION_SUCCESS" and not p.acknowledged.done():
                        p.acknowledged.set_result(None)
            elif event == "INTERACTION_FAILURE":
                if (p := self._registry.by_nonce(_s(data.get("nonce")))) and not p.done:
                    p.future.set_exception(_fail(ErrorCategory.RETRYABLE, f"Midjourney rejected the interaction (reason {data.get('reason_code')})."))
            elif event in ("INTERACTION_MODAL_CREATE", "INTERACTION_IFRAME_MODAL_CREATE"):
                self._on_modal(event, data)
        except Exception:
            log.exception("account %s: could not handle %s", self.id, event)

    def _on_modal(self, event: str, data: dict[str, Any]) -> None:
        p = self._registry.by_nonce(_s(data.get("nonce")))
        title = str(data.get("title") or "")
        iframe_path = str(data.get("iframe_path") or "")
        if event == "INTERACTION_IFRAME_MODAL_CREATE" and (
            iframe_path.startswith("/captcha") or title.lower().startswith(("action required", "action needed"))
        ):
            self.pause("Midjourney asked for a human check (captcha): open Discord in a browser and complete it")
            if p and not p.done:
                p.future.set_exception(_fail(ErrorCategory.ACCOUNT, "Midjourney asked this account for a captcha; the job was not run."))
            return
        if p is None:
            return
        if iid := _s(data.get("id")):
            p.interaction_ids.add(iid)
        expected = p.button is not None and p.button.needs_modal
        if expected:
            if not p.modal.done():
                p.modal.set_result(data)
            return
        # Remix is on for this account: a variation, reroll or pan opened its remix modal.
        # Answer it with the caller's prompt, or the one Midjourney prefilled (= no change).
        task = asyncio.create_task(self._answer_unexpected_modal(p, data))
        p.future.add_done_callback(lambda _f: task.cancel() if not task.done() else None)

    async def _answer_unexpected_modal(self, p: Pending, data: dict[str, Any]) -> None:
        try:
            await self._submit_modal(p, data, p.modal_prompt, p.application_id or BOT_APPLICATION_IDS[Bot.MIDJOURNEY])
        except JobFailed as exc:
            if not p.done:
                p.future.set_exception(exc)
        except NotSent as exc:
            if not p.done:
                p.future.set_exception(JobFailed(exc.error))

    def _on_message(self, data: dict[str, Any]) -> None:
        if self._on_seed_dm(data):
            return
        if _s(data.get("channel_id")) != self.options.channel_id:
            return
        m = classify(data, bot_ids=self._bot_ids)
        if m.kind == "other":
            self._on_other(m)
            return
        if self._on_cancelled_update(m):
            return
        if m.kind == "error" and m.error is not None and m.error.category is ErrorCategory.ACCOUNT:
            self._account_problem(m)
        p = self._registry.match(m)
        if p is None:
            if m.kind == "error":
                # Error embeds normally reply to the interaction; an orphan goes to the single
                # job that has not heard anything yet, if there is exactly one.
                silent = [q for q in self._registry if not q.seen_message and not q.done and q.kind != "mode"]
                if len(silent) == 1:
                    p = silent[0]
            if p is None:
                return
        self._apply(p, m)

    def _apply(self, p: Pending, m: MjMessage) -> None:
        if p.done:
            return
        p.seen_message = True
        if m.interaction_id:
            p.interaction_ids.add(m.interaction_id)
        if m.job_hash and m.kind in ("waiting", "progress"):
            p.job_hash = m.job_hash
        if m.kind == "error" and m.error is not None:
            p.future.set_exception(_fail(m.error.category, _error_text(m), m.error.title))
            return
        # Ephemeral messages ("Job queued", settings) never reach channel history: they must
        # not become the job's anchor for recovery.
        lasting = bool(m.message_id) and not (m.flags & EPHEMERAL)
        if m.kind == "queued":
            p.emit(JobEvent(kind="queued", message_id=m.message_id if lasting else None))
            return
        if m.kind in ("waiting", "progress"):
            if m.message_id:
                p.message_ids.add(m.message_id)
                if lasting:
                    p.anchors.add(m.message_id)
                if p.delete_timer:  # it is still alive after all
                    p.delete_timer.cancel()
                    p.delete_timer = None
            p.emit(
                JobEvent(
                    kind="waiting" if m.kind == "waiting" else "progress",
                    progress=m.progress,
                    preview_url=m.image_url if m.kind == "progress" else None,
                    prompt=m.prompt,
                    message_id=m.message_id if lasting else None,
                    mode=m.mode,
                    interaction_ids=tuple(sorted(p.interaction_ids)),
                )
            )
            return
        if m.kind in ("describe", "shorten", "info"):
            texts = m.prompts if m.kind != "info" else tuple(f"{k}: {v}" for k, v in m.info.items())
            if not texts:
                if m.message_id:
                    p.message_ids.add(m.message_id)
                p.emit(JobEvent(kind="waiting", message_id=m.message_id or None))
                return
            self._complete(p, m, texts=texts)
            return
        if m.kind == "done":
            if self._registry.is_claimed(m.message_id):
                return
            self._complete(p, m)

    def _complete(self, p: Pending, m: MjMessage, texts: tuple[str, ...] = ()) -> None:
        if m.message_id:
            self._registry.claim(m.message_id)
        p.future.set_result(
            JobOutput(
                account_id=self.id,
                message_id=m.message_id or None,
                message_flags=m.flags,
                job_hash=m.job_hash,
                image_url=m.image_url if m.kind not in ("shorten", "info") else None,
                prompt=m.prompt or "",
                buttons=m.buttons,
                texts=texts,
                mode=m.mode,
            )
        )

    def _on_delete(self, data: dict[str, Any]) -> None:
        mid = _s(data.get("id"))
        if not mid or _s(data.get("channel_id")) not in (None, self.options.channel_id):
            return
        p = self._registry.by_message(mid)
        if p is None or p.done:
            return
        loop = asyncio.get_running_loop()

        def moderated() -> None:
            if p.done:
                return
            if p.cancelling:
                p.future.set_exception(_cancelled())
                return
            p.future.set_exception(
                _fail(ErrorCategory.CONTENT_POLICY, "Midjourney removed the job before it finished (moderation).")
            )

        p.delete_timer = loop.call_later(self.options.delete_grace_seconds, moderated)

    def _account_problem(self, m: MjMessage) -> None:
        title = (m.error.title if m.error else "").lower()
        if title.startswith("credits exhausted"):
            # fast hours are gone; relax still works
            self._modes = tuple(md for md in self._modes if md is not Mode.FAST and md is not Mode.TURBO) or (Mode.RELAX,)
            self._emit_state()
        elif title.startswith(_ACCOUNT_DISABLE_TITLES):
            self._set_state(AccountState.DISABLED, f"Midjourney: {m.error.title if m.error else title}")
        elif title.startswith(_ACCOUNT_PAUSE_TITLES):
            self.pause(f"Midjourney: {m.error.title if m.error else title} (a human must act in Discord)")

    # --- answers that are not job messages ----------------------------------------------------

    def _on_other(self, m: MjMessage) -> None:
        """A bot message with no job shape, tied to one of our interactions by a strong key
        (nonce, interaction id): it acknowledges a mode switch ("Done!") when
        INTERACTION_SUCCESS did not, and it is the whole answer of a pass-through button
        (e.g. the like button's "You have successfully rated this job")."""
        if m.bot is None:
            return
        p = self._registry.by_nonce(m.nonce)
        if p is None and m.interaction_id:
            p = next((q for q in self._registry if m.interaction_id in q.interaction_ids), None)
        if p is None or p.done:
            return
        if p.kind == "mode":
            if not p.acknowledged.done():
                p.acknowledged.set_result(None)
            return
        if p.kind == "button" and p.button is not None and not p.button.known and m.content.strip():
            self._complete(p, m, texts=(m.content.strip(),))

    def _on_cancelled_update(self, m: MjMessage) -> bool:
        """After ❌, Midjourney may leave the progress message marked stopped instead of
        deleting it: that ends the job as cancelled too."""
        if m.kind not in ("progress", "waiting") or not m.message_id:
            return False
        p = self._registry.by_message(m.message_id)
        if p is None or p.done or not p.cancelling or not _STOPPED.search(m.content):
            return False
        p.future.set_exception(_cancelled())
        return True

    # --- seeds and cancels (reactions) --------------------------------------------------------

    async def seed(self, result: ResultRef) -> str:
        """React ✉️ to a finished job's message and read the seed from the bot's DM. Callers
        asking for the same job at once share one reaction."""
        job_hash = (result.job_hash or "").lower()
        if not job_hash:
            raise _fail(ErrorCategory.INVALID_REQUEST, "This result has no Midjourney job id, so its seed cannot be asked for.")
        task = self._seed_lookups.get(job_hash)
        if task is None or task.done():
            task = self._seed_lookups[job_hash] = self._spawn(self._lookup_seed(result, job_hash), f"seed-{job_hash[:8]}")
            task.add_done_callback(lambda t: self._seed_lookups.pop(job_hash, None) if self._seed_lookups.get(job_hash) is t else None)
        return await asyncio.shield(task)

    async def _lookup_seed(self, result: ResultRef, job_hash: str) -> str:
        waiter = self._seed_waiters.wait_for(job_hash)
        try:
            dm = await self._dm_channel(result.bot)
            # The bot answers a reaction once: a seed asked for before is already in the DM.
            if dm and (found := await self._seed_in_history(dm, job_hash)):
                return found
            half = self.options.seed_timeout_seconds / 2
            await self._react(result.message_id, ENVELOPE)
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), half)
            except TimeoutError:
                pass
            # Our ✉️ may have been there already (an earlier try): adding it again is no new
            # reaction for the bot, so take it back and react once more.
            try:
                await self._react(result.message_id, ENVELOPE, remove=True)
            except JobFailed as exc:  # best effort: adding it again is what matters
                log.info("account %s: could not take back the ✉️ (%s)", self.id, exc.error.message)
            await self._react(result.message_id, ENVELOPE)
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), half)
            except TimeoutError:
                pass
            if dm and (found := await self._seed_in_history(dm, job_hash)):
                return found
            raise _fail(ErrorCategory.TIMEOUT, f"Midjourney did not send the seed within {self.options.seed_timeout_seconds:g} s.")
        finally:
            self._seed_waiters.discard(job_hash, waiter)

    def _on_seed_dm(self, data: dict[str, Any]) -> bool:
        """A seed DM (in any channel: it is matched by the job it names). True if it was one,
        so that it is never read as a job message (in a DM-channel account it lands in the
        job channel)."""
        reply = parse_seed_reply(data, bot_ids=self._bot_ids)
        if reply is None:
            return False
        if not self._seed_waiters.deliver(reply):
            log.debug("account %s: seed DM for %s with nobody waiting", self.id, reply.job_hash)
        return True

    async def _dm_channel(self, bot: Bot) -> str | None:
        """The DM channel with a bot: configured, or opened (Discord returns the existing one).
        None if Discord refuses; seeds still arrive over the gateway, only the DM history
        cannot be read then."""
        if (known := self._dm_channels.get(bot)) is not None:
            return known
        try:
            channel_id = await self._rest.open_dm(BOT_APPLICATION_IDS[bot])
        except DiscordError as exc:
            log.warning("account %s: cannot open the DM channel with %s (%s)", self.id, bot.value, exc.status)
            return None
        self._dm_channels[bot] = channel_id
        return channel_id

    async def _seed_in_history(self, channel_id: str, job_hash: str) -> str | None:
        try:
            messages = await self._rest.get_messages(channel_id, limit=50)
        except DiscordError as exc:
            log.info("account %s: cannot read the DM channel (%s)", self.id, exc.status)
            return None
        for raw in messages:
            reply = parse_seed_reply(raw, bot_ids=self._bot_ids)
            if reply is not None and reply.job_hash == job_hash:
                return reply.seed
        return None

    async def _react(self, message_id: str, emoji: str, *, remove: bool = False) -> None:
        """Add (or take back) the user's reaction on a message of the account's channel,
        paced like an interaction."""
        try:
            async with self._paced():
                if remove:
                    await self._rest.remove_reaction(self.options.channel_id, message_id, emoji)
                else:
                    await self._rest.add_reaction(self.options.channel_id, message_id, emoji)
        except Unauthorized:
            self._set_state(AccountState.DISABLED, "Discord refused the token (401): sign in again and update it")
            raise _fail(ErrorCategory.ACCOUNT, "The Discord account's token was refused.") from None
        except CaptchaRequired:
            self.pause("Discord asked for a captcha: a human must sign in to this account in a browser and solve it")
            raise _fail(ErrorCategory.ACCOUNT, "The Discord account needs a captcha solved.") from None
        except DiscordError as exc:
            if exc.code == _UNKNOWN_MESSAGE or exc.status == 404:
                raise _fail(ErrorCategory.INVALID_REQUEST, "The message is no longer in Discord.") from None
            if exc.status == 403:
                raise _fail(ErrorCategory.ACCOUNT, "Discord refused the reaction (403): check the account's access to the channel.") from None
            raise _fail(ErrorCategory.RETRYABLE, f"Discord answered {exc.status}: {exc.message}") from None

    async def cancel_running(self, progress_message_id: str) -> bool:
        """React ❌ on a running job's progress message: Midjourney stops the job and deletes
        (or marks stopped) that message, and the job fails with category CANCELLED. Never
        reacts on a result: ❌ on a finished image deletes it."""
        if not progress_message_id or self._registry.is_claimed(progress_message_id):
            return False
        p = self._registry.by_message(progress_message_id)
        if p is not None and p.done:
            return False
        if p is not None:
            p.cancelling = True
        try:
            await self._react(progress_message_id, CANCEL)
        except JobFailed as exc:
            if p is not None:
                p.cancelling = False
            if exc.error.category is ErrorCategory.INVALID_REQUEST:
                return False  # the progress message is gone: nothing left to stop
            raise
        return True

    # --- recovery -----------------------------------------------------------------------------

    async def recover(self, probe: RecoveryProbe, emit: EventSink) -> JobOutput:
        """Find a job sent before a restart, without sending anything: from the channel history
        first, then from live events (it may still sit in Midjourney's queue). Never invents an
        outcome: a job whose message vanished with no result fails as unknown, not moderated."""
        op = probe.operation
        kind: OpKind = _kind_of(op)
        prompt = probe.prompt if kind in ("imagine", "blend") else None
        button = parse_custom_id(op.custom_id) if isinstance(op, PressButton) else None
        p = Pending(
            kind=kind,
            emit=emit,
            prompt=prompt,
            source_message_id=op.message_id if isinstance(op, PressButton) else None,
            button=button,
        )
        if probe.nonce:
            p.nonces.add(probe.nonce)
        p.interaction_ids.update(probe.interaction_ids)
        if probe.progress_message_id:
            p.message_ids.add(probe.progress_message_id)
            p.anchors.add(probe.progress_message_id)
        p.sent_at_ms = probe.submitted_at_ms
        p.seen_message = bool(probe.progress_message_id)
        # register first so that live events from now on are not missed while history loads
        self._registry.add(p)
        try:
            await self._replay_history()
            if not p.done and not p.seen_message:  # no message of it at all (an anchor is one)
                await self._settle_traceless(p, op.bot)
            return await p.future
        finally:
            self._registry.remove(p)

    async def _settle_traceless(self, p: Pending, bot: Bot) -> None:
        """A recovered job with no trace at all either never left (the process died between
        marking it submitted and its POST) or waits, unseen, in Midjourney's queue ("Job
        queued" is ephemeral). /info tells them apart: when Midjourney has nothing queued or
        running for this account, and the history read after that answer still has no trace of
        the job, it never reached Midjourney, and NotSent lets the engine queue it again.
        Otherwise keep watching, and ask again later."""
        delay = max(self.options.ack_grace_seconds, 1.0)
        while not p.done:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await asyncio.shield(p.future)
            if p.done or p.seen_message:
                return
            if await self._midjourney_idle(bot):
                await self._replay_history()
                if not p.done and not p.seen_message:
                    raise NotSent(
                        BackendError(
                            category=ErrorCategory.RETRYABLE,
                            message="Midjourney has no trace of the job (nothing queued, running or finished): it was never sent",
                        )
                    )
            delay = min(delay * 2, 30.0)

    async def _midjourney_idle(self, bot: Bot) -> bool:
        """Whether /info says nothing is queued or running for this account (shared by every
        recovered job asking at the same time). False when it cannot tell."""
        if self._idle_check is None or self._idle_check.done():
            self._idle_check = self._spawn(self._ask_info(bot), f"info-{self.id}")
        return bool(await asyncio.shield(self._idle_check))

    async def _ask_info(self, bot: Bot) -> bool | None:
        try:
            async with asyncio.timeout(max(self.options.modal_timeout_seconds, 10.0)):
                out = await self._info(Info(bot=bot), lambda ev: None, None)
        except (JobFailed, DiscordError, TimeoutError) as exc:
            log.info("account %s: /info did not answer (%s); recovery asks again later", self.id, exc)
            return None
        return _idle_from_info(out.texts)

    async def _reconcile(self) -> None:
        """After a loss of gateway continuity: bring every running job up to date from the
        channel history, then take new work again."""
        try:
            await self._replay_history()
            self.reconciles += 1
            log.info("account %s: reconciled after a new gateway session", self.id)
        finally:
            if self._reconciling is asyncio.current_task():  # not superseded by a newer loss
                self._reconciling = None
                if self._state is AccountState.RECONNECTING and self._gateway.state is GatewayState.READY:
                    self._set_state(AccountState.READY, None)

    async def _replay_history(self) -> None:
        """Apply the channel history to every running job. Concurrent callers (many jobs
        recovered at once) share reads, but each caller's job is in a read that started after
        it was registered."""
        self._replay_wanted += 1
        mine = self._replay_wanted
        while self._replay_done < mine:
            if self._replay is None or self._replay.done():
                self._replay = self._spawn(self._replay_rounds(), f"history-{self.id}")
            await asyncio.shield(self._replay)

    async def _replay_rounds(self) -> None:
        while self._replay_done < self._replay_wanted:
            await asyncio.sleep(0.05)  # let the other jobs recovered in the same moment register
            round_ = self._replay_wanted
            await self._read_and_apply_history()
            self._replay_done = round_

    async def _read_and_apply_history(self) -> None:
        live = [p for p in self._registry if not p.done and p.kind != "mode"]
        if not live:
            return
        # judged on what was known before the read: an anchor that a live event brings while
        # the history loads is newer than the history
        anchors = {id(p): set(p.anchors) for p in live}
        now_ms = int(time.time() * 1000)
        since_ms = min(p.sent_at_ms or now_ms for p in live)
        history: list[dict[str, Any]] | None = None
        for attempt in range(5):
            try:
                history, covered_from = await self._history(since_ms)
                break
            except DiscordError as exc:
                log.warning("account %s: cannot read the channel history (%s); retrying", self.id, exc.status)
                await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        if history is None:
            # live events still reach the jobs; their timeouts bound the wait
            log.error("account %s: channel history unreadable; running jobs wait for live events only", self.id)
            return
        present = {str(r.get("id")) for r in history}
        # oldest first, so progress is applied before the final message
        for raw in reversed(history):
            if _s(raw.get("channel_id")) not in (None, self.options.channel_id):
                continue
            m = classify(raw, bot_ids=self._bot_ids)
            if m.kind == "other" or self._registry.is_claimed(m.message_id):
                continue
            q = self._registry.match(m)
            if q is not None and q in live:
                self._apply(q, m)
        for q in live:
            known = {a for a in anchors[id(q)] if snowflake_time_ms(a) >= covered_from}
            if not q.done and known and not (known & present) and not (q.anchors - anchors[id(q)]):
                # Its message is gone and no result of it is in the history. Midjourney deletes
                # a job's message when it finishes (the result is a new message) and when it
                # removes the job; we cannot tell which from here, so we do not guess.
                q.future.set_exception(
                    _fail(
                        ErrorCategory.OUTCOME_UNKNOWN,
                        "The outcome of this job is unknown: its Midjourney message disappeared while the service "
                        "could not watch, and no result of it is in the channel history.",
                    )
                )

    async def _history(self, since_ms: int) -> tuple[list[dict[str, Any]], int]:
        """The channel's messages back to `since_ms` (a minute more), newest first, and the time
        from which the list is complete (0 when it reached the channel's beginning)."""
        out: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(self.options.history_pages):
            page = await self._rest.get_messages(self.options.channel_id, limit=50, before=before)
            if not page:
                return out, 0
            out.extend(page)
            before = str(page[-1].get("id"))
            if len(page) < 50:
                return out, 0
            if snowflake_time_ms(before) < since_ms - 60_000:
                break
        return out, snowflake_time_ms(before) if before else 0

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- state --------------------------------------------------------------------------------


def _s(value: object) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _idle_from_info(lines: tuple[str, ...]) -> bool | None:
    """From /info's lines: True when no job is queued or running, None if it does not say."""
    queued: list[int] = []
    running: str | None = None
    for line in lines:
        key, _, value = line.partition(":")
        key, value = key.strip().strip("*").strip().lower(), value.strip().strip("*").strip()
        if key.startswith("queued jobs"):
            digits = "".join(c for c in value if c.isdigit())
            queued.append(int(digits) if digits else 0)
        elif key.startswith("running jobs"):
            running = value
    if not queued or running is None:
        return None
    return sum(queued) == 0 and running.lower() in ("", "none", "0", "no jobs")


def _kind_of(op: Operation) -> OpKind:
    if isinstance(op, Imagine):
        return "imagine"
    if isinstance(op, PressButton):
        return "button"
    if isinstance(op, Describe):
        return "describe"
    if isinstance(op, Blend):
        return "blend"
    if isinstance(op, Shorten):
        return "shorten"
    return "info"


def _error_text(m: MjMessage) -> str:
    if m.error is None:
        return "Midjourney reported an error."
    desc = m.error.description.strip()
    return f"{m.error.title}: {desc}" if desc else m.error.title
