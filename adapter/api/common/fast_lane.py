"""Answering a repeated read of a finished job without going through the framework.

The hottest requests a busy server gets are repeats: midjourney-proxy clients poll
`/mj/task/{id}/fetch` every second or two long after the task ended, UIs poll
`GET /v1/jobs/{id}`, SDK retries replay `images.generate` with the same Idempotency-Key, and
relays and chat UIs ask for `/v1/models` again and again.
For a finished job the answer to such a request is fixed, yet every repeat paid for Litestar's
whole path (routing, guards, signature parsing, response building), the store look-up and the
view rendering: about twice what the bare framework costs per request.

`AnswerMemo` keeps what a route handler answered, keyed by everything the request carries that
could change the answer, and `FastLane`, an ASGI app in front of Litestar, gives it again to an
identical request. Nothing is decided here: the memo holds only answers the handlers rendered
themselves, and gives one again only while the store knows, without I/O, that every job it was
made from is unchanged (`JobService.still_holds`: the stored form compared byte for byte, so a
job written since, a cache entry that lapsed, a store that keeps no such copy, or a service
shutting down all mean "ask the handler"). Anything unusual goes to Litestar untouched.

What makes two requests identical (`identity`): method, scheme, root path, path, query string,
the server address, the HTTP version, every header except a few that nothing here reads (see
`_IGNORED`), and the body. Credentials are in the headers, so one key never gets another key's
answer; Host, Origin and Sec-Fetch-Site are too, so the keyless browser guard would judge a repeat
as it judged the original. Requests with an `Origin` are never kept: their answers carry CORS
headers this lane does not write.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapter.domain.jobs import Job
from adapter.engine.service import JobService

log = logging.getLogger("adapter.api")

# Headers that no handler, guard or middleware of ours reads (grep the api package for
# `headers.get` before adding one): clients vary them between otherwise identical requests.
_IGNORED = frozenset({b"user-agent", b"accept-encoding", b"connection", b"keep-alive", b"content-length", b"traceparent", b"tracestate"})
_SDK_INFO = b"x-stainless-"  # the OpenAI SDKs' platform headers; only the retry count is read
_SDK_RETRY = b"x-stainless-retry-count"

# set in the scope of a request the lane looked up: only such a request's answer may be kept (the
# lane will look its repeats up); its identity is worked out again then, so that nothing of it is
# held for the request's lifetime (a stream may be open for minutes)
_SCOPE_KEY = "mj_adapter.fast_lane"
_JSON = b"application/json"
_STAMP_HEAD = b'{"created":'

MAX_ANSWER_BYTES = 64 * 1024  # bigger answers (base64 images) are not worth holding
MAX_BODY_BYTES = 64 * 1024  # bigger request bodies go to Litestar unread


class JobMark(msgspec.Struct, frozen=True):
    """A job an answer was made from, as it was: by id, or as the job an idempotent retry with
    (owner, key) finds."""

    job_id: str
    mark: bytes
    owner: str | None = None
    key: str | None = None


class _Kept:
    __slots__ = ("body", "tail", "marks", "expires", "size")

    def __init__(self, body: bytes, tail: bytes | None, marks: tuple[JobMark, ...], expires: float, size: int) -> None:
        self.body = body  # the answer (JSON); with `tail`, the part before the time stamp
        self.tail = tail
        self.marks = marks
        self.expires = expires
        self.size = size


Identity = tuple[Any, ...]


def identity(scope: Scope, body: bytes) -> Identity:
    headers = tuple(
        h for h in scope["headers"] if h[0] not in _IGNORED and (not h[0].startswith(_SDK_INFO) or h[0] == _SDK_RETRY)
    )
    return (
        scope["method"],
        scope.get("scheme"),
        scope.get("root_path", ""),
        scope["path"],
        scope.get("query_string", b""),
        scope.get("server"),
        scope.get("http_version"),
        headers,
        body,
    )


def _identity_size(ident: Identity) -> int:
    headers, body = ident[7], ident[8]
    return sum(len(name) + len(value) for name, value in headers) + len(body) + 512  # + the tuple's own objects


class AnswerMemo:
    """Answers to repeatable requests, bounded in entries, bytes and age (see the module doc)."""

    def __init__(self, service: JobService, *, max_bytes: int = 16 * 1024 * 1024, max_age_seconds: float = 30.0) -> None:
        self.service = service
        self.max_bytes = max_bytes
        self.max_age = max_age_seconds
        self.size = 0
        self.hits = 0
        self._kept: OrderedDict[Identity, _Kept] = OrderedDict()

    # --- the handler's side ---------------------------------------------------------------------

    def json(self, request: Request[Any, Any, Any], value: Any, made_from: Sequence[JobMark], *, fixed: bool = False) -> Response[Any]:
        """`value` as a JSON answer, kept for identical requests when `made_from` marks every job
        it was made from (see `marks`) or it is `fixed`; otherwise an empty `made_from` keeps
        nothing. For requests without a body (GET)."""
        answer = msgspec.json.encode(value)
        self.keep(request.scope, b"", answer, made_from, fixed=fixed)
        return Response(content=answer, media_type="application/json")

    def marks(self, jobs: Sequence[Job]) -> list[JobMark] | None:
        """Marks of finished jobs by id; None when any is not finished (nothing to keep)."""
        out: list[JobMark] = []
        for job in jobs:
            mark = self.service.finished_mark(job)
            if mark is None:
                return None
            out.append(JobMark(job.id, mark))
        return out

    def keep(
        self, scope: Scope, request_body: bytes, body: bytes, made_from: Sequence[JobMark], *, stamped: bool = False, fixed: bool = False
    ) -> None:
        """Keep `body` (200, application/json) as the answer to requests identical to this one
        (`request_body`: the request's own, as read).
        Only for a request the lane saw, without an Origin, with an answer that is not too big,
        made from jobs the store still holds exactly as marked (checked now, so an answer made
        from a row that was rewritten meanwhile is never kept). `stamped`: the answer starts with
        OpenAI's `"created"` time, which a repeat gets afresh, as the handler would give it.
        `fixed`: made from no job, only from what stays as it is while the process runs (the
        configuration), so it holds until it ages out."""
        if not scope.get(_SCOPE_KEY) or not (made_from or fixed) or len(body) > MAX_ANSWER_BYTES or not self._holds(made_from):
            return
        if any(name == b"origin" for name, _ in scope["headers"]):
            return
        ident = identity(scope, request_body)
        tail = None
        if stamped:
            if not body.startswith(_STAMP_HEAD):
                return
            end = body.find(b",", len(_STAMP_HEAD))
            if end < 0 or not body[len(_STAMP_HEAD) : end].isdigit():
                return
            body, tail = _STAMP_HEAD, body[end:]
        size = len(body) + len(tail or b"") + _identity_size(ident) + sum(len(m.mark) for m in made_from)
        self._drop(ident)
        self._kept[ident] = _Kept(body, tail, tuple(made_from), time.monotonic() + self.max_age, size)
        self.size += size
        while self.size > self.max_bytes and self._kept:
            self._drop(next(iter(self._kept)))

    # --- the lane's side ------------------------------------------------------------------------

    def lookup(self, ident: Identity) -> bytes | None:
        """The answer (JSON) to a request identical to a kept one, while its jobs hold."""
        kept = self._kept.get(ident)
        if kept is None:
            return None
        if time.monotonic() >= kept.expires or not self._holds(kept.marks):
            self._drop(ident)
            return None
        self._kept.move_to_end(ident)
        self.hits += 1
        if kept.tail is None:
            return kept.body
        return b"%s%d%s" % (kept.body, int(time.time()), kept.tail)

    def _holds(self, marks: Sequence[JobMark]) -> bool:
        service = self.service
        for m in marks:
            if m.key is not None and m.owner is not None:
                if not service.still_holds_key(m.owner, m.key, m.mark):
                    return False
            elif not service.still_holds(m.job_id, m.mark):
                return False
        return True

    def _drop(self, ident: Identity) -> None:
        kept = self._kept.pop(ident, None)
        if kept is not None:
            self.size -= kept.size

    def __len__(self) -> int:
        return len(self._kept)


class FastLane:
    """The ASGI app uvicorn serves: Litestar behind a look-up in the app's `AnswerMemo`
    (`app.state.ctx.answers`, there once the lifespan has started). GET requests, and POSTs with a
    small JSON body (read here, then handed on whole), are looked up; a hit is answered at once,
    everything else goes to Litestar, marked in its scope as looked up, which is what lets a
    handler keep its answer (`AnswerMemo.keep`)."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the Litestar app's state: ctx appears there at startup
        self._memo: AnswerMemo | None = None

    def _find_memo(self) -> AnswerMemo | None:
        if self._memo is None:
            ctx = getattr(self.state, "ctx", None)
            self._memo = getattr(ctx, "answers", None)
        return self._memo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (memo := self._find_memo()) is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET":
            body = b""
        elif method == "POST" and _small_json(scope):
            read = await _read_body(receive)
            if read is None:
                return  # the client left
            body = read
            receive = _Replaying(body, receive)
        else:
            await self.app(scope, receive, send)
            return
        try:
            answer = memo.lookup(identity(scope, body))
        except Exception:  # a fault here must never cost the request: Litestar answers it
            log.exception("fast lane: look-up failed; answering through the framework")
        else:
            if answer is not None:
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", _JSON), (b"content-length", b"%d" % len(answer))]})
                await send({"type": "http.response.body", "body": answer})
                return
            # looked up (so its identity can be worked out): its handler may keep its answer
            scope[_SCOPE_KEY] = True  # type: ignore[literal-required]
        await self.app(scope, receive, send)


def _small_json(scope: Scope) -> bool:
    """A JSON body of a stated length up to MAX_BODY_BYTES (not chunked)."""
    length = None
    json = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"content-type":
            json = value.split(b";", 1)[0].strip().lower() == _JSON
        elif name == b"transfer-encoding":
            return False
    return json and length is not None and length <= MAX_BODY_BYTES


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # http.disconnect
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


class _Replaying:
    """`receive` for Litestar: the body read here, whole, then the client's own messages (so
    a disconnect is still seen)."""

    __slots__ = ("body", "receive")

    def __init__(self, body: bytes | None, receive: Receive) -> None:
        self.body = body
        self.receive = receive

    async def __call__(self) -> Message:
        if self.body is not None:
            body, self.body = self.body, None  # not held while a stream stays open
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.receive()
