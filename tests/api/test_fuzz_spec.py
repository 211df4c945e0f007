"""Property-based fuzzing of the OpenAPI document against a real `mj-adapter serve` process.

The server runs as its own process (demo mode: the built-in simulator at 400x). The document is
`mj-adapter openapi`'s (`spec_json()`, what openapi/openapi.json holds); the first test checks
that the server serves exactly that one at /docs/openapi.json. Every operation in it is fuzzed
with a customer key (`Authorization: Bearer KEY_A`, plus `mj-api-secret: KEY_A` on /mj):

- zero 5xx (`not_a_server_error`), every status code documented (`status_code_conformance`), the
  Content-Type documented for that status (`content_type_conformance`) and, for JSON, the body
  valid against the documented schema (`response_schema_conformance`);
- the account controls (`/v1/accounts`, `.../pause`, `.../resume`) answer 403 to a customer key
  whatever else the request holds, and afterwards every account is still ready (read with an
  admin key of this module's own, which the fuzzer never sends).

Outside Hypothesis: a body nested 10,000 levels deep on every POST is refused in the door's own
format (never a 5xx), and one known-good request per operation (chat and image generations,
JSON and streamed; responses JSON, streamed, in the background, followed up and retrieved;
image edits and variations as uploads; /mj submit, fetch, list, seed,
buttons, cancel; job views; image files; health, readiness, metrics, accounts) gets the status, Content-Type and body the document promises:
random inputs rarely reach the success paths.

schemathesis 4 (pinned `schemathesis>=4,<5` in the `test` extra; its API is not 3.x's). Used:
- `schemathesis.Config.from_dict({...})`: schemathesis.toml's keys (`phases`, `generation`,
  `request-timeout`, `seed`), passed to `schemathesis.openapi.from_dict(document, config=...)`;
- `SCHEMA.parametrize()`: one pytest item per operation (`test_fuzz[POST /mj/submit/imagine]`),
  with the module's `server` fixture as an extra argument. (`schemathesis.pytest.from_fixture`,
  which would load the document from the running server, breaks on pytest 9.2: it writes
  `request.node._nodeid`, which pytest no longer has. Hence the document from `spec_json()`
  and the base URL per call);
- `case.call(base_url=, headers=, timeout=)` -> `schemathesis.Response`, then
  `case.validate_response(response, checks=[...], headers=)`, which raises a `FailureGroup`
  whose message lists the failures with a curl line that reproduces each;
- checks from `schemathesis.checks` (`not_a_server_error`) and
  `schemathesis.specs.openapi.checks` (the three conformance checks);
- `SCHEMA[path][method].Case(body=, path_parameters=)`: a fixed case, for the known-good
  requests, validated by the same checks (`validate_response` also takes an httpx response).

Bounded and deterministic: Hypothesis runs derandomized, without an example database and without
shrinking (a failure reproduces from its curl line; shrinking could replay job-creating requests
for a long time). Each operation gets schemathesis' coverage phase (boundary values, missing and
mistyped fields; deterministic) plus FUZZ_EXAMPLES drawn cases, valid and invalid. Every request
has REQUEST_TIMEOUT. Job-creating requests create simulated jobs (a fraction of a second each at
400x); the demo accounts' bounded queues answer any overflow (429 / code 23, both documented).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, KEY_B, ServerProcess  # noqa: E402

from adapter.openapi_spec import spec_json

# an operator key of this module's own: KEY_A and KEY_B stay customer keys (not admins)
ADMIN_KEY = "sk-test-fuzz-admin-7777777777"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

# drawn cases per operation in the fuzzing phase (the coverage phase adds its own, bounded, set)
FUZZ_EXAMPLES = 50
REQUEST_TIMEOUT = 15.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# An event stream (`stream: true` on chat and image generations) must be documented like any
# answer (status, Content-Type text/event-stream), but its body is not held to a JSON schema:
# it is a sequence of `data:` frames, each checked here to be JSON or `[DONE]`. Streams are not
# forced off: at 400x one ends in well under a second, and schemathesis stops reading a stream
# once the request timeout has passed.
SSE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]
ACCOUNT_CONTROLS = ("/v1/accounts", "/v1/accounts/{account_id}/pause", "/v1/accounts/{account_id}/resume")

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "request-timeout": REQUEST_TIMEOUT,
        "generation": {"mode": "all", "deterministic": True, "database": "none", "max-examples": FUZZ_EXAMPLES},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)


def headers_for(path: str, key: str = KEY_A) -> dict[str, str]:
    """Every request carries the customer key as a bearer token; /mj ones also as mj-api-secret."""
    headers = {"Authorization": f"Bearer {key}"}
    if path.startswith("/mj"):
        headers["mj-api-secret"] = key
    return headers


def content_type(response: Any) -> str:
    value = response.headers.get("content-type", "")  # schemathesis: a list; httpx: a string
    return str(value[0] if isinstance(value, list) and value else value or "")


def snippet(response: Any) -> str:
    ctype = content_type(response)
    if ctype.startswith(("application/json", "text/")):
        return bytes(response.content[:300]).decode("utf-8", "replace")
    return f"<{len(response.content)} bytes of {ctype or 'no content type'}>"


def is_event_stream(response: Any) -> bool:
    return content_type(response).startswith("text/event-stream")


def check_frames(text: str) -> None:
    frames = [line[len("data:") :].strip() for line in text.splitlines() if line.startswith("data:")]
    assert frames, f"an event stream without data frames: {text[:300]!r}"
    for frame in frames:
        if frame != "[DONE]":
            json.loads(frame)


def validate(case: Any, response: Any, headers: dict[str, str]) -> None:
    if is_event_stream(response):
        case.validate_response(response, checks=SSE_CHECKS, headers=headers)
        check_frames(response.text)
    else:
        case.validate_response(response, checks=CHECKS, headers=headers)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("fuzz"), env={"MJ_ADAPTER_ADMIN_KEYS": ADMIN_KEY}).start()
    yield s
    s.stop()


def accounts_as_admin(server: ServerProcess) -> list[dict[str, Any]]:
    r = httpx.get(server.v1 + "/accounts", headers=ADMIN, timeout=REQUEST_TIMEOUT)
    assert r.status_code == 200, r.text
    accounts: list[dict[str, Any]] = r.json()
    assert accounts, "the demo server has no accounts"
    return accounts


def assert_all_accounts_ready(server: ServerProcess) -> None:
    states = {a["id"]: (a["state"], a["reason"]) for a in accounts_as_admin(server)}
    assert all(state == "ready" for state, _ in states.values()), f"an account left its ready state: {states}"
    ready = httpx.get(server.base + "/readyz", headers=ADMIN, timeout=REQUEST_TIMEOUT)
    assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
    assert all(a["state"] == "ready" for a in ready.json()["accounts"]), ready.text


# --- the fuzz ---------------------------------------------------------------------------------

# the document as `mj-adapter openapi` prints it (and openapi/openapi.json holds it); the first
# test checks that the server serves exactly this one
DOCUMENT: dict[str, Any] = json.loads(spec_json())
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_served_document_is_the_one_fuzzed(server: ServerProcess) -> None:
    r = httpx.get(server.base + "/docs/openapi.json", timeout=REQUEST_TIMEOUT)
    assert r.status_code == 200
    assert r.json() == DOCUMENT


@SCHEMA.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking (see above), no database to reuse
    suppress_health_check=list(HealthCheck),
)
def test_fuzz(case: Any, server: ServerProcess) -> None:
    headers = headers_for(case.path)
    response = case.call(base_url=server.base, headers=headers, timeout=REQUEST_TIMEOUT)
    validate(case, response, headers)
    if case.path in ACCOUNT_CONTROLS and case.method.upper() == case.operation.method.upper():
        # the documented method with a customer key: refused before anything else is looked at
        assert response.status_code == 403, (
            f"{case.method} {case.formatted_path} with a customer key answered {response.status_code}: {snippet(response)}\n"
            f"{case.as_curl_command(headers=headers, base_url=server.base)}"
        )


# --- beyond Hypothesis ------------------------------------------------------------------------


def test_customer_keys_cannot_control_accounts(server: ServerProcess) -> None:
    """Runs after the fuzz (module order, same server): pausing with every customer key and a
    range of bodies is refused, and every account is still ready - also after all the fuzzer's
    calls to the account controls."""
    ids = [a["id"] for a in accounts_as_admin(server)]
    bodies: list[bytes] = [b"", b"{}", b'{"reason": "fuzz"}', b"null", b"[" * 10000 + b"]" * 10000]
    for key in (KEY_A, KEY_B):
        h = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
        for account_id in ids:
            for body in bodies:
                r = httpx.post(f"{server.v1}/accounts/{account_id}/pause", content=body, headers=h, timeout=REQUEST_TIMEOUT)
                assert r.status_code == 403 and r.json()["error"]["code"] == "admin_key_required", r.text
            r = httpx.post(f"{server.v1}/accounts/{account_id}/resume", headers=h, timeout=REQUEST_TIMEOUT)
            assert r.status_code == 403, r.text
        r = httpx.get(server.v1 + "/accounts", headers=h, timeout=REQUEST_TIMEOUT)
        assert r.status_code == 403, r.text
    assert_all_accounts_ready(server)


class Failures:
    """Collects every failure of a sequence of checks, so one run reports them all."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @contextlib.contextmanager
    def collect(self, where: str) -> Iterator[None]:
        try:
            yield
        except (AssertionError, FailureGroup) as exc:
            self.seen.append(f"--- {where}\n{exc}")

    def check(self) -> None:
        assert not self.seen, f"{len(self.seen)} failure(s):\n\n" + "\n\n".join(self.seen)


DEEP_BODIES = {
    "array": b"[" * 10000 + b"]" * 10000,
    "object": b'{"a":' * 10000 + b"1" + b"}" * 10000,
}


def test_deeply_nested_bodies_are_refused(server: ServerProcess) -> None:
    """A body nested 10,000 levels deep on every POST: refused in the door's format, never a 5xx.
    The OpenAI routes answer 4xx with OpenAI's error object; /mj answers as midjourney-proxy does (HTTP 200 and a
    refusal code, or a documented 4xx), never code 1 (submitted)."""
    failures = Failures()
    posts = [path for path, methods in DOCUMENT["paths"].items() if "post" in methods]
    assert len(posts) >= 15, posts
    for path in posts:
        operation = SCHEMA[path]["POST"]
        params = {p.name: "fuzz-0" for p in operation.path_parameters}
        for name, body in DEEP_BODIES.items():
            case = operation.Case(path_parameters=params)
            headers = {**headers_for(path), "content-type": "application/json"}
            response = httpx.post(server.base + case.formatted_path, content=body, headers=headers, timeout=REQUEST_TIMEOUT)
            where = f"{name} body on POST {path}: {response.status_code} {snippet(response)}"
            with failures.collect(where):
                assert response.status_code < 500, where
                if path.startswith("/mj"):
                    if response.status_code == 200:
                        assert response.json()["code"] not in (1, 21, 22), where
                    else:
                        assert 400 <= response.status_code < 500, where
                elif path.startswith(("/v1/api/trigger/", "/midjourney/")):
                    # doors with their own error objects (yokonsan's {code, message}, the action
                    # API's {success: false, error}); the spec check below holds them to it
                    assert 400 <= response.status_code < 500, where
                else:
                    assert 400 <= response.status_code < 500, where
                    assert "error" in response.json(), where
                case.validate_response(response, checks=CHECKS, headers=headers)
    failures.check()


class Client:
    """Fixed cases through schemathesis, validated with the fuzz's checks."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.failures = Failures()

    def __call__(self, method: str, path: str, *, expect: int = 200, key: str = KEY_A, extra_headers: dict[str, str] | None = None, **case_kwargs: Any) -> Any:
        case = SCHEMA[path][method].Case(**case_kwargs)
        headers = {**headers_for(path, key), **(extra_headers or {})}
        response = case.call(base_url=self.server.base, headers=headers, timeout=REQUEST_TIMEOUT)
        where = f"{method} {case.formatted_path}: {response.status_code} {snippet(response)}"
        with self.failures.collect(where):
            assert response.status_code == expect, f"expected {expect}"
        with self.failures.collect(where):
            validate(case, response, headers)
        return response

    def multipart(self, path: str, *, files: dict[str, Any], data: dict[str, str]) -> httpx.Response:
        """A form upload (images/edits, images/variations), sent with httpx and validated alike."""
        case = SCHEMA[path]["POST"].Case()
        headers = headers_for(path)
        response = httpx.post(self.server.base + path, files=files, data=data, headers=headers, timeout=REQUEST_TIMEOUT)
        response.request.read()  # a multipart body is a stream: schemathesis reads the request too
        where = f"POST {path} (multipart): {response.status_code} {snippet(response)}"
        with self.failures.collect(where):
            assert response.status_code == 200, "expected 200"
        with self.failures.collect(where):
            validate(case, response, headers)
        return response


def wait_for_task(client: Client, task_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task: dict[str, Any] = client("GET", "/mj/task/{task_id}/fetch", path_parameters={"task_id": task_id}).json()
        if task["status"] in ("SUCCESS", "FAILURE", "CANCEL") or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def test_known_good_requests_conform(server: ServerProcess) -> None:
    """The success paths, one request each, against the document: status, Content-Type, body."""
    call = Client(server)

    call("GET", "/healthz")
    call("GET", "/readyz")
    call("GET", "/readyz", key=ADMIN_KEY)
    call("GET", "/metrics", key=ADMIN_KEY)
    call("GET", "/v1/accounts", key=ADMIN_KEY)
    models = call("GET", "/v1/models").json()["data"]
    call("GET", "/v1/models/{model_id}", path_parameters={"model_id": models[0]["id"]})

    # OpenAI images: JSON with a URL, then a stream
    images = call("POST", "/v1/images/generations", body={"prompt": "a red fox in the snow", "response_format": "url"}).json()
    job_id = images["data"][0]["job_id"]
    call("POST", "/v1/images/generations", body={"prompt": "a blue heron", "stream": True})
    image_url = httpx.URL(images["data"][0]["url"])
    png = call("GET", "/images/{key}", path_parameters={"key": image_url.path.removeprefix("/images/")}).content
    upload = {"image": ("fox.png", png, "image/png")}
    call.multipart("/v1/images/variations", files=upload, data={"response_format": "url"})
    call.multipart("/v1/images/edits", files=upload, data={"prompt": "the same fox in winter", "response_format": "url"})
    call.multipart("/v1/images/edits", files=upload, data={"prompt": "the same fox at night", "stream": "true"})

    # jobs: the view, the seed, a button
    job = call("GET", "/v1/jobs/{job_id}", path_parameters={"job_id": job_id}).json()
    call("GET", "/v1/jobs/{job_id}/seed", path_parameters={"job_id": job_id})
    custom_ids = [a["custom_id"] for a in job["actions"]]
    assert custom_ids, job
    call("POST", "/v1/jobs/{job_id}/actions", path_parameters={"job_id": job_id}, body={"custom_id": custom_ids[0]})

    # chat: JSON, then a stream
    chat = {"model": models[0]["id"], "messages": [{"role": "user", "content": "a lighthouse at dusk"}]}
    call("POST", "/v1/chat/completions", body=chat)
    call("POST", "/v1/chat/completions", body={**chat, "stream": True})

    # responses: JSON (then a follow-up on it, and the response retrieved), a stream, background
    tool = {"type": "image_generation", "size": "1536x1024", "output_format": "webp"}
    created = call("POST", "/v1/responses", body={"model": models[0]["id"], "input": "a lighthouse at dusk", "tools": [tool]}).json()
    follow = {"model": models[0]["id"], "input": [{"role": "user", "content": [{"type": "input_text", "text": "U1"}]}], "previous_response_id": created["id"]}
    call("POST", "/v1/responses", body=follow)
    call("GET", "/v1/responses/{response_id}", path_parameters={"response_id": created["id"]})
    call("POST", "/v1/responses", body={"input": "a heron", "stream": True})
    call("POST", "/v1/responses", body={"input": "a heron at night", "background": True})
    call("POST", "/v1/responses", body={"input": "help"})

    # /mj: submit, fetch until done, list, seed, buttons, cancel of an ended task
    submitted = call("POST", "/mj/submit/imagine", body={"prompt": "a paper boat"}).json()
    assert submitted["code"] in (1, 22), submitted
    task_id = submitted["result"]
    task = wait_for_task(call, task_id)
    assert task["status"] == "SUCCESS", task
    listed = call("POST", "/mj/task/list-by-condition", body={"ids": [task_id, "no-such-task"]}).json()
    assert [t["id"] for t in listed] == [task_id]
    call("GET", "/mj/task/list")
    call("GET", "/mj/task/{task_id}/image-seed", path_parameters={"task_id": task_id})
    upscale = call("POST", "/mj/submit/change", body={"taskId": task_id, "action": "UPSCALE", "index": 1}).json()
    assert upscale["code"] in (1, 22), upscale
    custom_id = task["buttons"][0]["customId"]
    pressed = call("POST", "/mj/submit/action", body={"taskId": task_id, "customId": custom_id}).json()
    assert pressed["code"] in (1, 21, 22), pressed
    simple = call("POST", "/mj/submit/simple-change", body={"content": f"{task_id} V1"}).json()
    assert simple["code"] in (1, 22), simple
    ended = call("POST", "/mj/task/{task_id}/cancel", path_parameters={"task_id": task_id}).json()
    assert ended["code"] != 1, ended
    shorten = call("POST", "/mj/submit/shorten", body={"prompt": "a very long prompt about a paper boat on a pond"}).json()
    assert shorten["code"] in (1, 22), shorten

    # the refusals the document names: unknown ids, no key
    call("GET", "/mj/task/{task_id}/fetch", expect=404, path_parameters={"task_id": "no-such-task"})
    call("GET", "/v1/jobs/{job_id}", expect=404, path_parameters={"job_id": "no-such-job"})
    call("GET", "/v1/responses/{response_id}", expect=404, path_parameters={"response_id": "resp_no-such-response"})
    call("GET", "/v1/models", expect=401, key="sk-not-a-key")
    call("GET", "/mj/task/list", expect=401, key="sk-not-a-key")
    call.failures.check()
