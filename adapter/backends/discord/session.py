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
    Unauthorized,
)
from adapter.backends.discord.gateway import GatewayClient, GatewayState
from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.messages import MjMessage, classify
from adapter.backends.discord.rest import DiscordRest, UploadedAttachment
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


class DiscordAccountOptions(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    token: str
    guild_id: str
    channel_id: str
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
    invalid_session_delay: tuple[float, float] = (1.0, 5.0)  # Discord asks for a 1-5 s pause


def _fail(category: ErrorCategory, message: str, title: str | None = None) -> JobFailed:
    return JobFailed(BackendError(category=category, message=message, title=title))


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
        self._channel = Channel(guild_id=options.guild_id, channel_id=options.channel_id)
        self._commands = CommandCache(self._rest, options.guild_id)
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

    async def close(self) -> None:
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
            async with asyncio.timeout(self.options.modal_timeout_seconds):
                await p.acknowledged
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
        stale = False
        async with self._paced():
            nonce = self._snowflakes.next()
            p.nonces.add(nonce)
            if before_send is not None:
                await before_send(nonce)
            payload = build(nonce)
            try:
                await self._post(payload)
            except InvalidFormBody:
                stale = True
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
        except InvalidFormBody:
            raise
        except DiscordError as exc:
            raise _fail(ErrorCategory.RETRYABLE, f"Discord answered {exc.status}: {exc.message}") from None
        finally:
            self.interactions_sent += 1

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
            today = dt.datetime.now(dt.timezone.utc).date()
            if self._day != today:
                self._day, self._day_count = today, 0
            if self.options.daily_cap is not None and self._day_count >= self.options.daily_cap:
                self._set_state(AccountState.COOLING_DOWN, "daily interaction cap reached")
                self._cool_until_midnight()
                raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message="daily interaction cap reached"))
            gap = self.options.min_gap_seconds + self._rng.uniform(0, self.options.gap_jitter_seconds)
            wait = self._last_interaction + gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._check_ready()  # it may have paused while we waited
            self._day_count += 1
            try:
                yield
            finally:
                self._last_interaction = time.monotonic()
        finally:
            self._pace_lock.release()

    def _check_ready(self) -> None:
        if self._state is not AccountState.READY:
            reason = f": {self._reason}" if self._reason else ""
            raise NotSent(BackendError(category=ErrorCategory.ACCOUNT, message=f"account {self.id} is {self._state.value}{reason}"))

    def _cool_until_midnight(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
        asyncio.get_running_loop().call_later((midnight - now).total_seconds() + 1, self._end_cooldown)

    def _end_cooldown(self) -> None:
        if self._state is AccountState.COOLING_DOWN:
            self._set_state(AccountState.READY, None)

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
            if self._state in (AccountState.CONNECTING, AccountState.RECONNECTING):
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
                    if iid := _s(data.get("id")):
                        p.interaction_ids.add(iid)
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
        if _s(data.get("channel_id")) != self.options.channel_id:
            return
        m = classify(data, bot_ids=self._bot_ids)
        if m.kind == "other":
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
        if m.kind == "queued":
            p.emit(JobEvent(kind="queued", message_id=m.message_id or None))
            return
        if m.kind in ("waiting", "progress"):
            if m.message_id:
                p.message_ids.add(m.message_id)
                if p.delete_timer:  # it is still alive after all
                    p.delete_timer.cancel()
                    p.delete_timer = None
            p.emit(
                JobEvent(
                    kind="waiting" if m.kind == "waiting" else "progress",
                    progress=m.progress,
                    preview_url=m.image_url if m.kind == "progress" else None,
                    prompt=m.prompt,
                    message_id=m.message_id or None,
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
            if not p.done:
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

    # --- recovery -----------------------------------------------------------------------------

    async def recover(self, probe: RecoveryProbe, emit: EventSink) -> JobOutput:
        """Find a job sent before a restart in the channel history, without sending anything."""
        op = probe.operation
        kind: OpKind = _kind_of(op)
        prompt = probe.prompt if kind == "imagine" else None
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
        # register first so that live events from now on are not missed while history loads
        self._registry.add(p)
        try:
            history = await self._history(probe.submitted_at_ms)
            # oldest first, so progress is applied before the final message
            for raw in reversed(history):
                m = classify(raw, bot_ids=self._bot_ids)
                if m.kind == "other" or p.done:
                    continue
                if self._registry.is_claimed(m.message_id):
                    continue
                if self._registry.match(m) is p:
                    self._apply(p, m)
            if not p.done and not p.message_ids:
                raise _fail(ErrorCategory.RETRYABLE, "The job was lost while the service restarted: Midjourney has no trace of it.")
            if not p.done and p.message_ids and not any(str(r.get("id")) in p.message_ids for r in history):
                # its progress message is gone and no result arrived
                raise _fail(ErrorCategory.CONTENT_POLICY, "Midjourney removed the job while the service was restarting.")
            return await p.future
        finally:
            self._registry.remove(p)

    async def _history(self, since_ms: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(self.options.history_pages):
            page = await self._rest.get_messages(self.options.channel_id, limit=50, before=before)
            if not page:
                break
            out.extend(page)
            before = str(page[-1].get("id"))
            if snowflake_time_ms(before) < since_ms - 60_000:
                break
        return out

    # --- state --------------------------------------------------------------------------------


def _s(value: object) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


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
