"""Chat UIs' background requests against a real server process (demo mode), sent with the
official `openai` SDK the way Open WebUI, LobeChat and NextChat send them: they are answered at
once, in the format they ask for, and no Midjourney job is created; an image turn right after
still runs one."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from housekeeping_templates import Case, cases  # noqa: E402
from server_process import KEY_A, ServerProcess  # noqa: E402

JOB_REF = re.compile(r"job `(j_[0-9a-z]{20})`")
PROMPT = "a lighthouse at dawn, oil painting --ar 3:2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("housekeeping")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


def task_ids(server: ServerProcess) -> set[str]:
    r = httpx.get(server.base + "/mj/task/list", headers={"mj-api-secret": KEY_A}, timeout=10)
    assert r.status_code == 200, r.text
    return {t["id"] for t in r.json()}


def complete(client: openai.OpenAI, messages: list[dict[str, Any]], *, stream: bool) -> tuple[str, str | None]:
    """The answer's text and finish reason, streamed or not."""
    if not stream:
        result = client.chat.completions.create(model="midjourney", messages=messages)  # type: ignore[arg-type]
        return result.choices[0].message.content or "", result.choices[0].finish_reason
    chunks = list(client.chat.completions.create(model="midjourney", messages=messages, stream=True))  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks[-1].choices[0].finish_reason


@pytest.fixture(scope="module")
def conversation(server: ServerProcess, client: openai.OpenAI) -> list[dict[str, Any]]:
    """A real first turn: the prompt and the adapter's streamed answer, as a UI keeps them."""
    text, finish = complete(client, [{"role": "user", "content": PROMPT}], stream=True)
    assert finish == "stop" and JOB_REF.search(text) and "**Next:**" in text, text
    return [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": text}]


def well_formed(case: Case, text: str) -> None:
    if case.json_keys:
        value = json.loads(text)
        assert isinstance(value, dict) and tuple(value) == case.json_keys, text
        if "title" in value:
            assert value["title"] == "Lighthouse at dawn"
        if "follow_ups" in value:
            assert value["follow_ups"][:4] == ["U1", "U2", "U3", "U4"]
        if "prompt" in value:
            assert value["prompt"] == PROMPT
    elif case.kind not in ("queries",):  # Open WebUI 0.3's "no search" is an empty answer
        assert text.strip() and not text.lstrip().startswith("{"), text


def test_ui_background_requests_spend_no_job(server: ServerProcess, client: openai.OpenAI, conversation: list[dict[str, Any]]) -> None:
    before = task_ids(server)
    table = cases(conversation, PROMPT)
    assert len(table) >= 70
    for case in table:
        # as the UI sends it, and the other way round (a fork or a setting may flip streaming)
        for stream in (case.stream, not case.stream):
            text, finish = complete(client, case.messages, stream=stream)
            assert finish == "stop", case.id
            assert not JOB_REF.search(text), (case.id, text)
            well_formed(case, text)
    assert task_ids(server) == before, "a housekeeping request created a Midjourney job"
    log = server.log_path.read_text(errors="replace")
    assert "chat housekeeping: title request answered without a job" in log
    assert "chat housekeeping: follow_ups request answered without a job" in log


def test_an_image_turn_right_after_still_runs_a_job(server: ServerProcess, client: openai.OpenAI, conversation: list[dict[str, Any]]) -> None:
    before = task_ids(server)
    # Open WebUI's three chores after an answer, then the user's next prompt in the same chat
    for case in cases(conversation, PROMPT)[:8]:
        complete(client, case.messages, stream=case.stream)
    text, finish = complete(client, [*conversation, {"role": "user", "content": "a red fox in the snow, woodcut"}], stream=True)
    assert finish == "stop" and "✅ done" in text
    new = task_ids(server) - before
    job = JOB_REF.search(text)
    assert job and new == {job.group(1)}
    # and a follow-up on it works too
    text, _ = complete(client, [*conversation, {"role": "user", "content": "a red fox in the snow, woodcut"}, {"role": "assistant", "content": text}, {"role": "user", "content": "U2"}], stream=False)
    assert "Upscale (U2)" in text
