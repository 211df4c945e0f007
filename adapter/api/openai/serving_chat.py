"""Chat Completions logic: the last user message -> one Midjourney job (or a plain answer) ->
a streamed or whole assistant message in markdown.

A chat UI's own background requests (a title for the chat, tags, follow-up suggestions: see
`housekeeping`) are answered at once from the conversation and spend no job. What a message
asks for comes from the domain chat grammar. Follow-ups ("U2", "强烈变化") are resolved from
the conversation alone: the newest assistant message that refers to one of the caller's jobs
(chat_refs). Anything that cannot be done as asked (no earlier image, a
button the result does not have, vary region without a mask) is answered as an ordinary
assistant message, because chat UIs show those and hide HTTP errors behind a generic banner.
Errors found before a job exists are OpenAI errors; once a stream has started, a problem ends
it with an explanation. A client that goes away stops only its own watching: the Midjourney job
runs to its end and stays available for follow-ups.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import msgspec

from adapter.api.common.sse import ServerSentEvent
from adapter.api.openai import chat_render as render
from adapter.api.openai import housekeeping
from adapter.api.openai.chat_refs import conversation_job_ids, job_ref, last_user_message
from adapter.api.openai.errors import OpenAIError, from_engine, invalid, unknown_model
from adapter.api.openai.image_inputs import MAX_INPUT_IMAGES, ImageInputs
from adapter.api.openai.protocol_chat import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    ChatUsage,
    ChunkChoice,
    ChunkDelta,
    FinishReason,
)
from adapter.domain.actions import Action, Mode
from adapter.domain.chat_grammar import (
    HELP_TEXT,
    MAX_LABEL_CHARS,
    ChatCommand,
    describe_available,
    parse_chat_command,
    resolve_button,
    resolve_label,
)
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import Job, JobStatus, is_grid_job
from adapter.domain.models import ModelCatalog, ModelSpec
from adapter.domain.prompt import MODE_FLAGS, parse_prompt, strip_flags
from adapter.engine.errors import ActionNotAvailable, EngineError, JobNotFound, PromptRejected, ServiceClosing
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.media.store import image_url

MAX_PROMPT_CHARS = 6000
PREVIEW_MIN_PROGRESS = 30  # earlier previews are mostly noise

log = logging.getLogger(__name__)


class ChatTurn(msgspec.Struct, kw_only=True):
    """One answer in the making: either a job to follow or a ready text."""

    id: str
    created: int
    model: str
    user_text: str
    job: Job | None = None
    answer: str = ""
    finish: FinishReason = "stop"


def _label(cmd: ChatCommand) -> str:
    """How a follow-up reads in a sentence ("U2", "Vary (Strong)", "Zoom Out 1.5x")."""
    a = cmd.action
    if a is Action.UPSCALE:
        return f"U{cmd.index}"
    if a is Action.VARIATION:
        return f"V{cmd.index}"
    if a is Action.ZOOM:
        return f"Zoom Out {cmd.zoom:g}x" if cmd.zoom else "Zoom Out"
    if a is Action.CUSTOM_ZOOM:
        return f"Custom Zoom {cmd.zoom:g}" if cmd.zoom else "Custom Zoom"
    if a is Action.PAN:
        return f"Pan {cmd.pan.value}" if cmd.pan else "Pan"
    names = {
        Action.REROLL: "🔄 (reroll)",
        Action.VARY_SUBTLE: "Vary (Subtle)",
        Action.VARY_STRONG: "Vary (Strong)",
        Action.UPSCALE_SUBTLE: "Upscale (Subtle)",
        Action.UPSCALE_CREATIVE: "Upscale (Creative)",
    }
    if a is None:
        return "that"
    return names.get(a, a.value.replace("_", " ").title())


def estimate_tokens(text: str) -> int:
    """Midjourney has no tokens; a rough count (4 characters each) keeps usage-summing clients
    meaningful without pretending to be exact."""
    return math.ceil(len(text) / 4)


class ChatServing:
    def __init__(self, service: JobService, inputs: ImageInputs, catalog: ModelCatalog, *, preview_images: bool = True) -> None:
        self.service = service
        self.inputs = inputs
        self.catalog = catalog
        self.preview_images = preview_images

    # --- deciding ---------------------------------------------------------------------------------

    async def prepare(self, req: ChatRequest, meta: RequestMeta) -> ChatTurn:
        """Decide what the turn does and start its job. Raises OpenAIError for what must be an
        HTTP error (bad request, unknown model, queue full...)."""
        spec = self.catalog.resolve(req.model)
        if spec is None:
            raise unknown_model(req.model, self.catalog.names())
        turn_id, created, model = f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), req.model or spec.id
        if (chore := housekeeping.recognise(req)) is not None:
            # the UI's own title / tags / follow-ups request: answered from the conversation, no job
            log.info("chat housekeeping: %s request answered without a job (signals: %s)", chore.kind.value, ", ".join(chore.signals))
            return ChatTurn(id=turn_id, created=created, model=model, user_text=chore.instruction, answer=housekeeping.answer(chore))
        last = last_user_message(req.messages)
        turn = ChatTurn(id=turn_id, created=created, model=model, user_text=last.text)
        cmd = parse_chat_command(last.text, image_count=len(last.image_urls))
        if cmd.kind in ("help", "vary_region_unsupported"):
            turn.answer = cmd.prompt
        elif cmd.kind == "cancel":
            turn.answer = await self._cancel(req, meta.owner)
        elif cmd.kind == "follow_up":
            await self._follow_up(turn, cmd, req, meta)
        elif cmd.kind == "imagine" and not last.image_urls and await self._press_by_label(turn, last.text, req, meta):
            pass  # the message named a button of the latest result ("Animate (High motion)")
        else:
            await self._new_job(turn, cmd, last.image_urls, spec, meta)
        return turn

    async def _press_by_label(self, turn: ChatTurn, text: str, req: ChatRequest, meta: RequestMeta) -> bool:
        """Buttons the chat grammar has no words for (v7 Animate, draft Enhance, new ones) are
        offered under Midjourney's own labels; a message that is exactly one of them presses
        it on the latest result."""
        if len(text) > MAX_LABEL_CHARS:
            return False
        job = await self._latest(req, meta.owner, with_image=True)
        if job is None or job.status is not JobStatus.SUCCESS:
            return False
        button = resolve_label(text, job.buttons)
        if button is None or button.custom_id is None:
            return False
        act = ActSpec(meta=meta, parent_id=job.id, custom_id=button.custom_id)
        await self._start(turn, lambda: self.service.act(act))
        return True

    async def _new_job(self, turn: ChatTurn, cmd: ChatCommand, urls: Sequence[str], spec: ModelSpec, meta: RequestMeta) -> None:
        if len(cmd.prompt) > MAX_PROMPT_CHARS:
            raise invalid(f"The prompt is too long (at most {MAX_PROMPT_CHARS} characters).", "messages")
        if len(urls) > MAX_INPUT_IMAGES:
            raise invalid(f"At most {MAX_INPUT_IMAGES} images can be attached to one message.", "messages")
        loaded = [await self.inputs.from_url(u, param="messages", label=f"Image {i}") for i, u in enumerate(urls, start=1)]
        images = tuple(img.as_input(i) for i, img in enumerate(loaded, start=1))
        flags = parse_prompt(cmd.prompt).flags
        mode = next((Mode(f) for f in MODE_FLAGS if f in flags), spec.mode)
        if cmd.kind == "describe":
            submit = SubmitSpec(meta=meta, action=Action.DESCRIBE, mode=mode, bot=spec.bot, images=images[:1])
        elif cmd.kind == "blend":
            submit = SubmitSpec(meta=meta, action=Action.BLEND, mode=mode, bot=spec.bot, images=images, dimensions=cmd.dimensions or "square")
        elif cmd.kind == "shorten":
            submit = SubmitSpec(meta=meta, action=Action.SHORTEN, prompt=cmd.prompt, mode=mode, bot=spec.bot)
        else:
            submit = SubmitSpec(meta=meta, action=Action.IMAGINE, prompt=cmd.prompt, mode=mode, bot=spec.bot, images=images)
        await self._start(turn, lambda: self.service.submit(submit))

    async def _start(self, turn: ChatTurn, start: Callable[[], Awaitable[Job]]) -> None:
        try:
            turn.job = await start()
        except PromptRejected as exc:
            turn.answer = f"🚫 {exc.message} Rephrase the prompt and send it again."
            turn.finish = "content_filter"
        except ActionNotAvailable as exc:
            turn.answer = f"{exc.message}\n\nType `help` to see what you can do."
        except EngineError as exc:
            raise from_engine(exc) from None

    async def _latest(self, req: ChatRequest, owner: str, *, with_image: bool) -> Job | None:
        """The job the newest assistant message is about. With `with_image`: the newest one that
        is still running or has a result image (describe texts and failures are skipped)."""
        for job_id in conversation_job_ids(req.messages):
            try:
                job = await self.service.get(job_id, owner)
            except JobNotFound:
                continue  # not ours (another key's, or gone): as if never mentioned
            if not with_image or not job.status.finished or (job.status is JobStatus.SUCCESS and job.image is not None):
                return job
        return None

    async def _cancel(self, req: ChatRequest, owner: str) -> str:
        job = await self._latest(req, owner, with_image=False)
        if job is None:
            return "There is no Midjourney job in this conversation to cancel."
        if job.status.finished:
            return f"Nothing is running: the latest job ({job_ref(job.id)}) has already ended ({job.status.value.lower()})."
        try:
            job = await self.service.cancel(job.id, owner)
        except EngineError as exc:
            return f"Could not cancel {job_ref(job.id)}: {exc.message}"
        if job.status is JobStatus.CANCEL:
            return f"⏹ Cancelled {job_ref(job.id)}."
        return f"{job_ref(job.id)} ended ({job.status.value.lower()}) before it could be cancelled."

    async def _follow_up(self, turn: ChatTurn, cmd: ChatCommand, req: ChatRequest, meta: RequestMeta) -> None:
        wanted = _label(cmd)
        job = await self._latest(req, meta.owner, with_image=True)
        if job is None:
            turn.answer = (
                f"There is no Midjourney image in this conversation yet, so there is nothing to apply **{wanted}** to. "
                f"Start with a prompt, for example `a lighthouse at dawn, oil painting`.\n\n{HELP_TEXT}"
            )
            return
        if not job.status.finished:
            turn.answer = (
                f"The latest job ({job_ref(job.id)}) is still running ({job.progress}%). "
                f"Ask for **{wanted}** again once it has finished."
            )
            return
        button = resolve_button(cmd, job.buttons)
        if button is None or button.custom_id is None:
            turn.answer = self._not_offered(job, cmd, wanted)
            return
        prompt = cmd.prompt or None
        if cmd.action is Action.CUSTOM_ZOOM and cmd.zoom:
            base = strip_flags(cmd.prompt or job.final_prompt or job.prompt, "zoom", *MODE_FLAGS)
            prompt = f"{base} --zoom {cmd.zoom:g}"
        act = ActSpec(meta=meta, parent_id=job.id, custom_id=button.custom_id, prompt=prompt)
        await self._start(turn, lambda: self.service.act(act))

    def _not_offered(self, job: Job, cmd: ChatCommand, wanted: str) -> str:
        grid = is_grid_job(job)
        what = "a 2x2 grid" if grid else "a single image"
        labels = describe_available(job.buttons)
        offered = render.inline_labels(labels) if labels else "nothing"
        hint = ""
        solo_only = cmd.action not in (Action.UPSCALE, Action.VARIATION, Action.REROLL)
        if grid and solo_only:
            hint = " Upscale one of its images first (`U1`-`U4`, 放大第N张), then ask again on the upscaled image."
        elif not grid and cmd.action in (Action.UPSCALE, Action.VARIATION):
            hint = " U1-U4 and V1-V4 pick an image out of a grid; this result is already one image."
        return f"The latest result ({job_ref(job.id)}) is {what} and has no **{wanted}**.{hint}\n\nIt offers: {offered}."

    # --- answering --------------------------------------------------------------------------------

    def _result(self, job: Job, public_base: str) -> tuple[str, FinishReason]:
        """The final markdown of a finished job (after its header) and the finish reason."""
        if job.status is JobStatus.SUCCESS:
            if job.action is Action.DESCRIBE:
                return (render.numbered(job.result_texts) + "Send one of these prompts to imagine it.\n"), "stop"
            if job.action is Action.SHORTEN:
                return (render.numbered(job.result_texts) + "Send one of these prompts to imagine it.\n"), "stop"
            grid = is_grid_job(job)
            main = image_url(public_base, job.image.key) if job.image else None
            tiles = [image_url(public_base, r.key) for r in job.images] if grid else []
            text = render.result_block(job, main, tiles)
            text += render.follow_ups_line(describe_available(job.buttons), grid=grid)
            return text, "stop"
        reason = job.fail_reason or "Midjourney did not say why."
        if job.error_category is ErrorCategory.CONTENT_POLICY:
            # Midjourney's own wording already asks to rephrase
            return f"🚫 Midjourney refused this: {reason}\n", "content_filter"
        if job.status is JobStatus.CANCEL:
            return "⏹ This job was cancelled.\n", "stop"
        if job.error_category is ErrorCategory.TIMEOUT:
            return f"⌛ {reason}\n", "stop"
        return f"❌ The job failed: {reason}\n", "stop"

    def _usage(self, turn: ChatTurn, content: str) -> ChatUsage:
        prompt, completion = estimate_tokens(turn.user_text), estimate_tokens(content)
        return ChatUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    async def respond(self, turn: ChatTurn, owner: str, public_base: str) -> ChatCompletion:
        content, finish = turn.answer, turn.finish
        if turn.job is not None:
            final = await self.service.wait(turn.job.id, owner)
            body, finish = self._result(final, public_base)
            content = render.header(final) + body
        return ChatCompletion(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            choices=[ChatChoice(index=0, message=AssistantMessage(content=content), finish_reason=finish)],
            usage=self._usage(turn, content),
            job_id=turn.job.id if turn.job else None,
        )

    def _chunk(self, turn: ChatTurn, delta: ChunkDelta, finish: FinishReason | None = None, *, usage_field: bool = False) -> ServerSentEvent:
        chunk = ChatCompletionChunk(
            id=turn.id,
            created=turn.created,
            model=turn.model,
            choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)],
            usage=None if usage_field else msgspec.UNSET,
        )
        return ServerSentEvent(data=msgspec.json.encode(chunk).decode())

    async def stream(self, turn: ChatTurn, owner: str, public_base: str, *, include_usage: bool) -> AsyncIterator[ServerSentEvent]:
        sent: list[str] = []

        def text(content: str) -> ServerSentEvent:
            sent.append(content)
            return self._chunk(turn, ChunkDelta(content=content), usage_field=include_usage)

        yield self._chunk(turn, ChunkDelta(role="assistant", content=""), usage_field=include_usage)
        finish: FinishReason = turn.finish
        if turn.job is None:
            yield text(turn.answer)
        else:
            async for piece, reason in self._job_deltas(turn.job, owner, public_base):
                if piece:
                    yield text(piece)
                if reason is not None:
                    finish = reason
        yield self._chunk(turn, ChunkDelta(), finish, usage_field=include_usage)
        if include_usage:
            content = "".join(sent)
            usage_chunk = ChatCompletionChunk(id=turn.id, created=turn.created, model=turn.model, choices=[], usage=self._usage(turn, content))
            yield ServerSentEvent(data=msgspec.json.encode(usage_chunk).decode())
        yield ServerSentEvent(data="[DONE]")

    async def _job_deltas(self, job: Job, owner: str, public_base: str) -> AsyncIterator[tuple[str, FinishReason | None]]:
        """(markdown delta, finish reason once known) while following a job. Watching is all
        this does: if the client leaves, the job carries on."""
        yield render.header(job), None
        line = render.ProgressLine()
        shown_preview = not self.preview_images
        last = job
        try:
            async for snapshot in self.service.watch(job.id, owner):
                last = snapshot
                if snapshot.status.finished:
                    break
                if delta := line.update(snapshot):
                    yield delta, None
                preview = snapshot.preview_image
                if not shown_preview and preview is not None and snapshot.progress >= PREVIEW_MIN_PROGRESS:
                    shown_preview = True
                    yield line.break_for_block(render.preview_block(image_url(public_base, preview.key), snapshot.progress)), None
        except ServiceClosing:
            yield line.finish(False), None
            yield (
                f"⏸️ The service is shutting down for a restart; {job_ref(job.id)} keeps running at Midjourney and is "
                "picked up again when the service is back. Once it has finished, follow-ups such as `U1` or `V2` in "
                "this chat act on it.\n"
            ), "stop"
            return
        except Exception as exc:  # the stream has started: explain instead of breaking it
            detail = exc.message if isinstance(exc, EngineError) else str(exc) if isinstance(exc, OpenAIError) else type(exc).__name__
            yield line.finish(False), None
            yield (
                f"⚠️ Lost track of {job_ref(job.id)} ({detail}). It may still finish: send `help` for commands, "
                "or follow up on it later.\n"
            ), "stop"
            return
        body, finish = self._result(last, public_base)
        yield line.finish(last.status is JobStatus.SUCCESS), None
        yield body, finish

