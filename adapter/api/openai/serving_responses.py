"""Responses API logic: one `POST /v1/responses` is one chat turn (ChatServing decides what it
does and starts its job), answered as a Response: an `image_generation_call` item holding the
image as base64 (plus our URLs) and a `message` item with the chat answer's markdown.

`previous_response_id` stands for the assistant answer a chat conversation would hold: the
response id names its job (protocol_responses), so the follow-up ("U2", "vary strong",
"放大第二张") finds it the way chat does, with no history resent and nothing new stored. A
response is rebuilt from its job when retrieved. Errors found before a job exists are OpenAI
errors; a job that fails makes a `failed` Response (`response.failed` when streaming). A client
that goes away stops only its own watching: the job runs on and stays retrievable.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec

from adapter.api.common.sse import ServerSentEvent
from adapter.api.openai.chat_refs import conversation_job_ids, job_ref, last_user_message
from adapter.api.openai.errors import OpenAIError, from_failed_job, invalid
from adapter.api.openai.protocol_chat import ChatMessageIn, ChatRequest, FinishReason
from adapter.api.openai.protocol_images import ImageOptions
from adapter.api.openai.protocol_responses import (
    CallError,
    CallEvent,
    CallStatus,
    ContentPartEvent,
    ErrorEvent,
    ImageGenerationCall,
    ImageGenerationTool,
    IncompleteDetails,
    LifecycleEvent,
    MessageItem,
    OutputItem,
    OutputItemEvent,
    OutputText,
    PartialImageEvent,
    ResponseCreateRequest,
    ResponseError,
    ResponseObject,
    ResponseStatus,
    ResponseUsage,
    TextDeltaEvent,
    TextDoneEvent,
    call_item_id,
    message_item_id,
    parse_input,
    parse_response_id,
    response_id,
    text_response_id,
)
from adapter.api.openai.serving_chat import ChatServing, ChatTurn, estimate_tokens
from adapter.api.openai.serving_images import make_plan
from adapter.api.openai.shared_images import B64_SLOT, Encoded, SharedImages, spliced_frame, sse_frame
from adapter.domain.actions import Action
from adapter.domain.chat_grammar import MAX_LABEL_CHARS, parse_chat_command, resolve_label
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import ImageRef, Job, JobStatus
from adapter.domain.models import BASE_MODELS, ModelCatalog
from adapter.domain.sizing import SizeError, aspect_for_size
from adapter.engine.errors import EngineError, JobNotFound, ServiceClosing
from adapter.engine.service import JobService
from adapter.engine.specs import RequestMeta
from adapter.media.store import ImageStore, image_url

log = logging.getLogger(__name__)

_TEXT_ONLY = (Action.DESCRIBE, Action.SHORTEN)  # jobs that answer with text, not an image
_CONVERTIBLE = ("image/png", "image/jpeg", "image/webp")


class ResponseTurn(msgspec.Struct, kw_only=True):
    """One Response in the making: the chat turn behind it and what the request asked to echo."""

    id: str
    chat: ChatTurn
    message_id: str
    tool: ImageGenerationTool | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    user: str | None = None
    background: bool = False

    @property
    def output_format(self) -> str:
        return (self.tool.output_format if self.tool else None) or "png"


def _response_status(job: Job | None, finish: FinishReason) -> ResponseStatus:
    if job is None:
        return "incomplete" if finish == "content_filter" else "completed"
    if job.status is JobStatus.SUCCESS:
        return "completed"
    if job.status is JobStatus.FAILURE:
        return "failed"
    if job.status is JobStatus.CANCEL:
        return "cancelled"
    return "queued" if job.status in (JobStatus.NOT_START, JobStatus.SUBMITTED) else "in_progress"


def _call_status(job: Job) -> CallStatus:
    if job.status is JobStatus.SUCCESS:
        return "completed"
    if job.status.finished:
        return "failed"
    return "generating" if job.status is JobStatus.IN_PROGRESS else "in_progress"


def _response_error(job: Job) -> ResponseError:
    """A failed job as the Response's `error`: OpenAI's codes, our type and wording."""
    err = from_failed_job(job).body
    code = {
        ErrorCategory.CONTENT_POLICY: "image_content_policy_violation",
        ErrorCategory.INVALID_REQUEST: "invalid_prompt",
        ErrorCategory.QUEUE_FULL: "rate_limit_exceeded",
    }.get(job.error_category or ErrorCategory.INTERNAL, "server_error")
    return ResponseError(code=code, message=err.message, type=err.type, param=err.param)


def _model_name(job: Job) -> str:
    return next((m.id for m in BASE_MODELS if m.bot is job.bot and m.mode is job.mode), job.bot.value)


def _not_found(rid: str, param: str) -> OpenAIError:
    # the same words for an unknown id and another key's: nothing tells them apart
    return OpenAIError(404, f"No response with id '{rid}'.", param=param, code="not_found")


class EventNumbers:
    """Numbers the events of one stream, from 0."""

    def __init__(self) -> None:
        self._n: Iterator[int] = itertools.count()

    def __call__(self) -> int:
        return next(self._n)


def _sse(event: msgspec.Struct) -> ServerSentEvent:
    return ServerSentEvent(data=msgspec.json.encode(event).decode(), event=getattr(event, "type"))


class ResponsesServing:
    def __init__(self, chat: ChatServing, service: JobService, store: ImageStore, catalog: ModelCatalog) -> None:
        self.chat = chat
        self.service = service
        self.store = store
        self.catalog = catalog
        self.shared = SharedImages.for_store(store)

    # --- deciding ---------------------------------------------------------------------------------

    async def prepare(self, req: ResponseCreateRequest, meta: RequestMeta) -> ResponseTurn:
        """Decide what the turn does and start its job. Raises OpenAIError for what must be an
        HTTP error (bad input, unknown model or previous response, queue full...)."""
        parsed = parse_input(req)
        messages = list(parsed.messages)
        if req.previous_response_id:
            previous = await self._previous(req.previous_response_id, meta.owner)
            if previous is not None:
                # as if the conversation held that answer, just before this input
                at = 1 if messages and messages[0].role == "system" else 0
                messages.insert(at, ChatMessageIn(role="assistant", text=job_ref(previous)))
        about = await self._latest(messages, meta.owner)
        tool = parsed.tool
        if tool is not None and tool.size:
            messages = self._with_size(messages, tool, req.model, about)
        chat_req = ChatRequest(messages=tuple(messages), model=req.model, stream=bool(req.stream), user=req.user)
        try:
            turn = await self.chat.prepare(chat_req, meta)
        except OpenAIError as exc:
            if exc.body.param == "messages":
                exc.body.param = "input"
            raise
        job = turn.job
        return ResponseTurn(
            id=response_id(job.id) if job else text_response_id(about.id if about else None),
            chat=turn,
            message_id=message_item_id(job.id if job else None),
            tool=tool,
            instructions=req.instructions,
            previous_response_id=req.previous_response_id,
            user=req.user,
            background=bool(req.background),
        )

    async def _previous(self, rid: str, owner: str) -> str | None:
        """The job a previous response is about (None: it was about none), checked to be the
        caller's."""
        ok, job_id, _ = parse_response_id(rid)
        if not ok:
            raise _not_found(rid, "previous_response_id")
        if job_id is None:
            return None
        try:
            await self.service.get(job_id, owner)
        except JobNotFound:
            raise _not_found(rid, "previous_response_id") from None
        return job_id

    async def _latest(self, messages: list[ChatMessageIn], owner: str) -> Job | None:
        """The caller's job the conversation is about (the newest one referred to)."""
        for job_id in conversation_job_ids(messages, limit=5):
            try:
                return await self.service.get(job_id, owner)
            except JobNotFound:
                continue
        return None

    def _with_size(self, messages: list[ChatMessageIn], tool: ImageGenerationTool, model: str | None, about: Job | None) -> list[ChatMessageIn]:
        """The tool's `size` as --ar on a new prompt, the way the Images API maps it (a prompt
        with its own --ar keeps it); commands and button labels stay as typed."""
        try:
            aspect_for_size(tool.size)
        except SizeError as exc:
            raise invalid(f"tools: {exc}", "tools") from None
        last = last_user_message(messages)
        cmd = parse_chat_command(last.text, image_count=len(last.image_urls))
        if cmd.kind != "imagine":
            return messages
        if about is not None and len(last.text) <= MAX_LABEL_CHARS and resolve_label(last.text, about.buttons) is not None:
            return messages  # a button's own label ("Animate (High motion)"): pressed, not imagined
        plan = make_plan(self.catalog, ImageOptions(model=model, size=tool.size), cmd.prompt)
        flags = plan.prompt[len(cmd.prompt.strip()) :]
        if not flags:
            return messages
        i = len(messages) - 1 - messages[::-1].index(last)
        return [*messages[:i], msgspec.structs.replace(last, text=last.text.rstrip() + flags), *messages[i + 1 :]]

    # --- building -------------------------------------------------------------------------------

    async def _encoded(self, ref: ImageRef, turn: ResponseTurn) -> Encoded | None:
        """An image of ours in the requested format (None: not an image we convert, e.g. a
        video, or gone from the store)."""
        if ref.content_type not in _CONVERTIBLE:
            return None
        compression = turn.tool.output_compression if turn.tool else None
        # converted once per format for every request on the job (shared with the Images API)
        return await self.shared.encoded(ref, turn.output_format, compression)

    async def _call_item(self, turn: ResponseTurn, job: Job, public_base: str, spliced: list[bytes] | None = None) -> ImageGenerationCall:
        """With `spliced`, the item's `result` is `B64_SLOT` and its base64 is appended there
        (for `spliced_frame`: a stream sends the shared bytes instead of encoding them)."""
        tool = turn.tool
        status = _call_status(job)
        image = job.image if status == "completed" else None
        data = await self._encoded(image, turn) if image is not None else None
        if data is not None and spliced is not None:
            spliced.append(data.b64)
        error = None
        if status == "failed":
            err = from_failed_job(job).body
            error = CallError(message=err.message, type=err.type, code=err.code)
        return ImageGenerationCall(
            id=call_item_id(job.id),
            status=status,
            result=None if data is None else data.b64_text if spliced is None else B64_SLOT,
            action="generate" if job.action in (Action.IMAGINE, Action.BLEND) else "edit",
            background=(tool.background if tool else None) or "auto",
            output_format=turn.output_format,
            quality=(tool.quality if tool else None) or "auto",
            size=f"{image.width}x{image.height}" if image is not None and image.width else None,
            revised_prompt=(job.final_prompt or job.prompt) or None,
            error=error,
            job_id=job.id,
            url=image_url(public_base, image.key) if image is not None else None,
            image_urls=[image_url(public_base, r.key) for r in job.images] if image is not None else [],
            progress=100 if status == "completed" else job.progress,
        )

    async def _build(
        self, turn: ResponseTurn, job: Job | None, text: str | None, finish: FinishReason, public_base: str, spliced: list[bytes] | None = None
    ) -> ResponseObject:
        """The Response as it stands: `job` is the turn's job now (None: a text-only turn);
        `text` the answer's markdown once there is one. `spliced`: see `_call_item`."""
        status = _response_status(job, finish)
        output: list[OutputItem] = []
        if job is not None and job.action not in _TEXT_ONLY:
            output.append(await self._call_item(turn, job, public_base, spliced))
        if text is not None:
            output.append(MessageItem(id=turn.message_id, status="completed", content=[OutputText(text=text)]))
        usage = None
        if text is not None:
            prompt, completion = estimate_tokens(turn.chat.user_text), estimate_tokens(text)
            usage = ResponseUsage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)
        finished = job is None or job.status.finished
        completed_at = None
        if status == "completed":
            completed_at = (job.finished_at // 1000 if job and job.finished_at else turn.chat.created)
        return ResponseObject(
            id=turn.id,
            created_at=turn.chat.job.created_at // 1000 if turn.chat.job else turn.chat.created,
            model=turn.chat.model,
            status=status,
            output=output,
            error=_response_error(job) if job is not None and status in ("failed", "cancelled") else None,
            incomplete_details=IncompleteDetails(reason="content_filter") if status == "incomplete" else None,
            instructions=turn.instructions,
            previous_response_id=turn.previous_response_id,
            tools=[turn.tool] if turn.tool else [],
            usage=usage if finished else None,
            user=turn.user,
            background=turn.background,
            completed_at=completed_at,
            job_id=job.id if job else None,
        )

    # --- answering --------------------------------------------------------------------------------

    async def respond(self, turn: ResponseTurn, owner: str, public_base: str, spliced: list[bytes] | None = None) -> ResponseObject:
        """The finished Response (waits for the job, as chat does). `spliced`: see `_call_item`."""
        answer = await self.chat.respond(turn.chat, owner, public_base)
        choice = answer.choices[0]
        job = await self.service.get(turn.chat.job.id, owner) if turn.chat.job else None
        return await self._build(turn, job, choice.message.content, choice.finish_reason, public_base, spliced)

    async def current(self, turn: ResponseTurn, owner: str, public_base: str) -> ResponseObject:
        """The Response as it stands now, without waiting (background mode, retrieval)."""
        if turn.chat.job is None:
            return await self.respond(turn, owner, public_base)
        job = await self.service.get(turn.chat.job.id, owner)
        if job.status.finished:
            return await self.respond(turn, owner, public_base)
        return await self._build(turn, job, None, "stop", public_base)

    async def retrieve(self, rid: str, owner: str, public_base: str) -> ResponseObject:
        """A response rebuilt from its job (only the caller's own)."""
        ok, job_id, own = parse_response_id(rid)
        if ok and not own:
            raise OpenAIError(404, f"Response '{rid}' ran no Midjourney job; answers without a job are not stored.", param="response_id", code="not_found")
        if job_id is None:
            raise _not_found(rid, "response_id")
        try:
            job = await self.service.get(job_id, owner)
        except JobNotFound:
            raise _not_found(rid, "response_id") from None
        chat = ChatTurn(id=f"chatcmpl-{job.id}", created=job.created_at // 1000, model=_model_name(job), user_text=job.prompt, job=job)
        turn = ResponseTurn(id=rid, chat=chat, message_id=message_item_id(job.id))
        return await self.current(turn, owner, public_base)

    # --- streaming --------------------------------------------------------------------------------

    async def stream(self, turn: ResponseTurn, owner: str, public_base: str) -> AsyncIterator[ServerSentEvent | bytes]:
        """response.created, then the image_generation_call item (generating, a partial image
        per preview up to `partial_images`, done), then the message item, then
        response.completed / failed / incomplete. Watching that breaks off ends with an
        `error` event; the job carries on and the response can be retrieved later."""
        seq = EventNumbers()
        job = turn.chat.job
        shell = await self._build(turn, None, None, "stop", public_base)
        shell = msgspec.structs.replace(shell, status="in_progress", usage=None, completed_at=None, job_id=job.id if job else None)
        yield _sse(LifecycleEvent(type="response.created", sequence_number=seq(), response=shell))
        yield _sse(LifecycleEvent(type="response.in_progress", sequence_number=seq(), response=shell))
        image_index: int | None = None
        if job is not None and job.action not in _TEXT_ONLY:
            image_index = 0
            item = await self._call_item(turn, msgspec.structs.replace(job, status=JobStatus.SUBMITTED), public_base)
            item_id = item.id
            yield _sse(OutputItemEvent(type="response.output_item.added", sequence_number=seq(), output_index=0, item=item))
            yield _sse(CallEvent(type="response.image_generation_call.in_progress", sequence_number=seq(), output_index=0, item_id=item_id))
        try:
            if job is not None and image_index is not None:
                async for event in self._progress(turn, job, owner, seq):
                    yield event
            # the result image goes out as the shared base64 bytes, spliced into this stream's
            # events (output_item.done and response.completed), not encoded again per stream
            images: list[bytes] = []
            final = await self.respond(turn, owner, public_base, images)
        except ServiceClosing:
            yield _sse(
                ErrorEvent(
                    sequence_number=seq(),
                    code="service_shutting_down",
                    message=(
                        f"The service is restarting; {job_ref(job.id) if job else 'the job'} keeps running. "
                        f"Retrieve {turn.id} (GET /v1/responses/{turn.id}) once it is back."
                    ),
                )
            )
            return
        except Exception as exc:  # the stream has started: say what broke instead of cutting it
            detail = exc.message if isinstance(exc, EngineError) else str(exc) if isinstance(exc, OpenAIError) else type(exc).__name__
            log.warning("responses stream for %s broke off: %s", turn.id, detail)
            yield _sse(
                ErrorEvent(
                    sequence_number=seq(),
                    code="stream_interrupted",
                    message=f"Lost track of the job ({detail}). It may still finish: retrieve {turn.id} later.",
                )
            )
            return
        message_index = 0
        for item in final.output:
            if isinstance(item, ImageGenerationCall):
                if item.status == "completed":
                    yield _sse(CallEvent(type="response.image_generation_call.completed", sequence_number=seq(), output_index=message_index, item_id=item.id))
                done = OutputItemEvent(type="response.output_item.done", sequence_number=seq(), output_index=message_index, item=item)
                yield spliced_frame(done.type, done, images if item.result == B64_SLOT else ())
            else:
                for event in self._message_events(item, message_index, seq):
                    yield event
            message_index += 1
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(final.status, "response.failed")
        yield spliced_frame(kind, LifecycleEvent(type=kind, sequence_number=seq(), response=final), images)

    async def _progress(self, turn: ResponseTurn, job: Job, owner: str, seq: EventNumbers) -> AsyncIterator[ServerSentEvent | bytes]:
        """`generating` once the job runs, and a partial image per new preview (at most the
        tool's `partial_images`; absent: every one), until the job ends."""
        item_id = call_item_id(job.id)
        cap = turn.tool.partial_images if turn.tool else None
        generating = False
        sent = 0
        seen: set[str] = set()
        async for snapshot in self.service.watch(job.id, owner):
            if snapshot.status.finished:
                self.shared.job_ended(job.id)  # its previews go after a grace period
                break
            if snapshot.status is JobStatus.IN_PROGRESS and not generating:
                generating = True
                yield _sse(CallEvent(type="response.image_generation_call.generating", sequence_number=seq(), output_index=0, item_id=item_id))
            preview = snapshot.preview_image
            if preview is None or preview.key in seen:
                continue
            seen.add(preview.key)
            if cap is not None and sent >= cap:
                continue
            data = await self._encoded(preview, turn)
            if data is None:
                continue
            partial = PartialImageEvent(
                sequence_number=seq(),
                output_index=0,
                item_id=item_id,
                partial_image_b64="",
                partial_image_index=sent,
                size=f"{preview.width}x{preview.height}" if preview.width else None,
                quality=(turn.tool.quality if turn.tool else None) or "auto",
                background=(turn.tool.background if turn.tool else None) or "auto",
                output_format=turn.output_format,
                progress=snapshot.progress,
            )
            # the shared base64 spliced in as it is: per stream only the rest is encoded
            yield sse_frame(partial.type, partial, "partial_image_b64", data.b64)
            sent += 1

    def _message_events(self, item: MessageItem, index: int, seq: EventNumbers) -> Iterator[ServerSentEvent]:
        text = "".join(part.text for part in item.content)
        opened = msgspec.structs.replace(item, status="in_progress", content=[])
        yield _sse(OutputItemEvent(type="response.output_item.added", sequence_number=seq(), output_index=index, item=opened))
        at: dict[str, Any] = {"item_id": item.id, "output_index": index, "content_index": 0}
        yield _sse(ContentPartEvent(type="response.content_part.added", sequence_number=seq(), part=OutputText(text=""), **at))
        if text:
            yield _sse(TextDeltaEvent(sequence_number=seq(), delta=text, **at))
        yield _sse(TextDoneEvent(sequence_number=seq(), text=text, **at))
        yield _sse(ContentPartEvent(type="response.content_part.done", sequence_number=seq(), part=OutputText(text=text), **at))
        yield _sse(OutputItemEvent(type="response.output_item.done", sequence_number=seq(), output_index=index, item=item))
