"""AnswerMemo and FastLane on their own: what makes requests identical, what is kept, when a
kept answer stops holding, and that the lane hands everything else to the app untouched.
(test_fast_lane_e2e.py drives the same through a real server.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from adapter.api.common.fast_lane import _SCOPE_KEY, MAX_ANSWER_BYTES, AnswerMemo, FastLane, JobMark, identity
from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus

pytestmark = pytest.mark.timeout(10)


class FakeService:
    """The store's view of finished jobs: id -> stored form, (owner, key) -> stored form."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes] = {}
        self.keys: dict[tuple[str, str], bytes] = {}
        self.closing = False

    def finished_mark(self, job: Job) -> bytes | None:
        return msgspec.json.encode(job) if job.status.finished else None

    def still_holds(self, job_id: str, mark: bytes) -> bool:
        return not self.closing and self.rows.get(job_id) == mark

    def still_holds_key(self, owner: str, key: str, mark: bytes) -> bool:
        return not self.closing and self.keys.get((owner, key)) == mark


def job(job_id: str = "j1", status: JobStatus = JobStatus.SUCCESS, prompt: str = "a cat") -> Job:
    return Job(id=job_id, owner="alice", action=Action.IMAGINE, prompt=prompt, status=status)


def scope(path: str = "/mj/task/j1/fetch", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "root_path": "",
        "path": path,
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "http_version": "1.1",
        "headers": headers if headers is not None else [(b"host", b"127.0.0.1:8000"), (b"mj-api-secret", b"k1"), (b"user-agent", b"curl/8")],
    }


def seen(s: dict[str, Any]) -> dict[str, Any]:
    """The scope as a handler sees it after the lane looked the request up."""
    s[_SCOPE_KEY] = True
    return s


def kept_for(memo: AnswerMemo, svc: FakeService, j: Job, s: dict[str, Any], answer: bytes = b'{"id":"j1"}') -> list[JobMark]:
    mark = svc.finished_mark(j)
    assert mark is not None
    svc.rows[j.id] = mark
    marks = [JobMark(j.id, mark)]
    memo.keep(seen(s), b"", answer, marks)
    return marks


def test_identity_ignores_what_nothing_reads_and_keeps_everything_else() -> None:
    base = scope()
    same = scope(headers=[(b"host", b"127.0.0.1:8000"), (b"mj-api-secret", b"k1"), (b"user-agent", b"python-httpx/0.28"), (b"x-stainless-os", b"Linux")])
    assert identity(base, b"") == identity(same, b"")
    different = [
        scope(headers=[(b"host", b"127.0.0.1:8000"), (b"mj-api-secret", b"k2")]),
        scope(headers=[(b"host", b"localhost:8000"), (b"mj-api-secret", b"k1")]),
        scope(headers=[(b"host", b"127.0.0.1:8000"), (b"mj-api-secret", b"k1"), (b"origin", b"http://localhost")]),
        scope(headers=[(b"host", b"127.0.0.1:8000"), (b"mj-api-secret", b"k1"), (b"x-stainless-retry-count", b"1")]),
        scope(headers=[(b"host", b"127.0.0.1:8000"), (b"mj-api-secret", b"k1"), (b"accept", b"application/x-ndjson")]),
        scope(path="/mj-fast/mj/task/j1/fetch"),
        {**scope(), "query_string": b"a=1"},
        {**scope(), "scheme": "https"},
    ]
    for other in different:
        assert identity(other, b"") != identity(base, b""), other
    assert identity(base, b"{}") != identity(base, b"")


def test_a_kept_answer_is_given_to_an_identical_request_while_its_job_holds() -> None:
    svc = FakeService()
    memo = AnswerMemo(svc)  # type: ignore[arg-type]
    j = job()
    kept_for(memo, svc, j, scope())
    assert memo.lookup(identity(scope(), b"")) == b'{"id":"j1"}'
    assert memo.hits == 1
    # the job was written since (here: its seed arrived): the answer is dropped
    svc.rows[j.id] = msgspec.json.encode(msgspec.structs.replace(j, seed="123"))
    assert memo.lookup(identity(scope(), b"")) is None
    assert len(memo) == 0 and memo.size == 0


def test_nothing_is_kept_that_the_lane_did_not_see_or_that_does_not_hold_now() -> None:
    svc = FakeService()
    memo = AnswerMemo(svc)  # type: ignore[arg-type]
    j = job()
    mark = svc.finished_mark(j)
    assert mark is not None
    memo.keep(scope(), b"", b"{}", [JobMark(j.id, mark)])  # not through the lane (in-process tests)
    assert len(memo) == 0
    memo.keep(seen(scope()), b"", b"{}", [JobMark(j.id, mark)])  # the store no longer vouches for it
    assert len(memo) == 0
    svc.rows[j.id] = mark
    memo.keep(seen(scope()), b"", b"{}", [])  # made from nothing that can be checked
    memo.keep(seen(scope()), b"", b"x" * (MAX_ANSWER_BYTES + 1), [JobMark(j.id, mark)])
    with_origin = scope(headers=[(b"host", b"127.0.0.1:8000"), (b"origin", b"http://localhost:3000")])
    memo.keep(seen(with_origin), b"", b"{}", [JobMark(j.id, mark)])  # its answer carried CORS headers
    assert len(memo) == 0
    assert memo.marks([job(status=JobStatus.IN_PROGRESS)]) is None
    svc.closing = True
    memo.keep(seen(scope()), b"", b"{}", [JobMark(j.id, mark)])
    assert len(memo) == 0


def test_a_fixed_answer_holds_until_it_ages_out() -> None:
    svc = FakeService()
    memo = AnswerMemo(svc)  # type: ignore[arg-type]
    s = scope("/v1/models", headers=[(b"authorization", b"Bearer k1")])
    memo.keep(seen(s), b"", b'{"data":[]}', [])
    assert len(memo) == 0  # made from nothing, and not said to be fixed
    memo.keep(seen(s), b"", b'{"data":[]}', [], fixed=True)
    assert memo.lookup(identity(s, b"")) == b'{"data":[]}'
    aged = AnswerMemo(svc, max_age_seconds=0.0)  # type: ignore[arg-type]
    aged.keep(seen(s), b"", b'{"data":[]}', [], fixed=True)
    assert aged.lookup(identity(s, b"")) is None


def test_a_retry_answer_holds_while_its_key_finds_the_same_job() -> None:
    svc = FakeService()
    memo = AnswerMemo(svc)  # type: ignore[arg-type]
    j = job()
    mark = svc.finished_mark(j)
    assert mark is not None
    svc.keys[("alice", "k#0")] = mark
    s = scope("/v1/images/generations", "POST", [(b"authorization", b"Bearer k1"), (b"idempotency-key", b"k")])
    memo.keep(seen(s), b'{"prompt":"a cat"}', b'{"created":1700000000,"data":[]}', [JobMark(j.id, mark, owner="alice", key="k#0")], stamped=True)
    before = int(time.time())
    found = memo.lookup(identity(s, b'{"prompt":"a cat"}'))
    assert found is not None
    answer = msgspec.json.decode(found)
    assert answer["data"] == [] and before <= answer["created"] <= int(time.time())
    assert memo.lookup(identity(s, b'{"prompt":"a dog"}')) is None  # another body
    del svc.keys[("alice", "k#0")]  # the key now finds another job, or none
    assert memo.lookup(identity(s, b'{"prompt":"a cat"}')) is None


def test_the_memo_is_bounded_in_bytes_and_age() -> None:
    svc = FakeService()
    memo = AnswerMemo(svc, max_bytes=20_000, max_age_seconds=30)  # type: ignore[arg-type]
    for i in range(20):
        j = job(f"j{i}")
        kept_for(memo, svc, j, scope(f"/mj/task/j{i}/fetch"), b"x" * 3000)
    assert memo.size <= 20_000 and 0 < len(memo) < 20
    assert memo.lookup(identity(scope("/mj/task/j19/fetch"), b"")) is not None  # the newest stay
    assert memo.lookup(identity(scope("/mj/task/j0/fetch"), b"")) is None
    aged = AnswerMemo(svc, max_age_seconds=0.0)  # type: ignore[arg-type]
    kept_for(aged, svc, job("j1"), scope())
    assert aged.lookup(identity(scope(), b"")) is None


class Recorder:
    """The app behind the lane: records what reached it and answers 200."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        messages: list[dict[str, Any]] = []
        if scope["type"] == "http" and scope["method"] == "POST":
            while True:
                m = await receive()
                messages.append(m)
                if not m.get("more_body"):
                    break
        self.calls.append((scope, messages))
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


class State:
    def __init__(self, memo: AnswerMemo) -> None:
        self.ctx = type("Ctx", (), {"answers": memo})()


async def drive(lane: FastLane, s: dict[str, Any], body_parts: list[bytes] | None = None) -> list[dict[str, Any]]:
    parts = body_parts or [b""]
    incoming = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    await lane(s, receive, send)
    return sent


def test_the_lane_answers_hits_itself_and_hands_everything_else_on() -> None:
    async def main() -> None:
        svc = FakeService()
        memo = AnswerMemo(svc)  # type: ignore[arg-type]
        app = Recorder()
        lane = FastLane(app, State(memo))  # type: ignore[arg-type]

        # a miss reaches the app, with its identity for the handler
        sent = await drive(lane, scope())
        assert sent[-1]["body"] == b"app" and _SCOPE_KEY in app.calls[-1][0]
        kept_for(memo, svc, job(), scope())
        sent = await drive(lane, scope())
        assert len(app.calls) == 1
        assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"id":"j1"}'
        assert sent[0]["headers"] == [(b"content-type", b"application/json"), (b"content-length", b"11")]

        # a small JSON body is read here and handed on whole, in one message
        post = scope("/mj/submit/imagine", "POST", [(b"content-type", b"application/json"), (b"content-length", b"16")])
        await drive(lane, post, [b'{"prompt":', b'"a cat"}'])
        assert [m["body"] for m in app.calls[-1][1]] == [b'{"prompt":"a cat"}']
        assert app.calls[-1][0][_SCOPE_KEY] is True

        # chunked, not JSON, or too big: untouched (the app reads the client's own messages)
        for headers in (
            [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
            [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"5")],
            [(b"content-type", b"application/json"), (b"content-length", b"99999999")],
        ):
            await drive(lane, scope("/v1/images/edits", "POST", headers), [b"ab", b"cde"])
            assert [m["body"] for m in app.calls[-1][1]] == [b"ab", b"cde"] and _SCOPE_KEY not in app.calls[-1][0]

        # other methods and the lifespan pass through
        await drive(lane, scope(method="DELETE"))
        assert app.calls[-1][0]["method"] == "DELETE"
        await lane({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        assert app.calls[-1][0]["type"] == "lifespan"

    asyncio.run(main())


def test_before_startup_the_lane_is_transparent() -> None:
    async def main() -> None:
        app = Recorder()
        lane = FastLane(app, object())  # type: ignore[arg-type]
        sent = await drive(lane, scope())
        assert sent[-1]["body"] == b"app" and _SCOPE_KEY not in app.calls[-1][0]

    asyncio.run(main())
