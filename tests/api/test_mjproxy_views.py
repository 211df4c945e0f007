"""A Job as a midjourney-proxy Task: field by field, for each state a job can be in."""

from __future__ import annotations

import msgspec
import pytest

from adapter.api.mjproxy.views import ACTION_NAMES, progress_text, task_json, task_view
from adapter.domain.actions import Action, Bot, Mode
from adapter.domain.buttons import Button
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import ImageRef, Job, JobStatus

BASE = "http://mj.test"
PREVIEW = ImageRef(key="j_a/aaaaaaaaaaaaaaaaaaaaaaaaaa-preview-1.webp", content_type="image/webp")
RESULT = ImageRef(key="j_a/bbbbbbbbbbbbbbbbbbbbbbbbbb-result.png")
INPUT = ImageRef(key="j_a/cccccccccccccccccccccccccc-input-0.png")


def job(**over: object) -> Job:
    base: dict[str, object] = {"id": "j_a", "owner": "k", "action": Action.IMAGINE, "prompt": "a cat", "created_at": 1_700_000_000_000}
    base.update(over)
    return Job(**base)  # type: ignore[arg-type]


def test_every_action_has_a_protocol_name() -> None:
    assert set(ACTION_NAMES) == set(Action)
    # the open-source names, plus Plus's VIDEO (animate) and ACTION (any other button)
    assert set(ACTION_NAMES.values()) <= {"IMAGINE", "UPSCALE", "VARIATION", "REROLL", "ZOOM", "PAN", "DESCRIBE", "BLEND", "SHORTEN", "VIDEO", "ACTION"}


@pytest.mark.parametrize(
    ("status", "progress", "text"),
    [(JobStatus.NOT_START, 0, "0%"), (JobStatus.IN_PROGRESS, 45, "45%"), (JobStatus.IN_PROGRESS, 130, "100%"), (JobStatus.SUCCESS, 99, "100%"), (JobStatus.FAILURE, 31, "31%")],
)
def test_progress_is_a_percent_string(status: JobStatus, progress: int, text: str) -> None:
    assert progress_text(job(status=status, progress=progress)) == text


def test_a_waiting_job() -> None:
    t = task_view(job(state="s1", webhook_url="https://hook.example/x"), BASE)
    assert (t.status, t.progress, t.image_url, t.fail_reason, t.start_time, t.finish_time) == ("NOT_START", "0%", None, None, None, None)
    assert t.description == "/imagine a cat" and t.state == "s1" and t.submit_time == 1_700_000_000_000
    assert t.properties["notifyHook"] == "https://hook.example/x" and "messageId" not in t.properties


def test_a_running_job_shows_its_preview_and_a_finished_one_its_result() -> None:
    running = task_view(job(status=JobStatus.IN_PROGRESS, progress=62, preview_image=PREVIEW, started_at=1_700_000_001_000), BASE)
    assert running.image_url == f"{BASE}/images/{PREVIEW.key}" and running.progress == "62%"
    done = task_view(
        job(status=JobStatus.SUCCESS, progress=100, preview_image=PREVIEW, image=RESULT, images=[RESULT], finished_at=1_700_000_009_000,
            message_id="m1", job_hash="h1", account_id="acct", final_prompt="a cat --fast", message_flags=64,
            buttons=[Button(custom_id="MJ::JOB::upsample::1::h", label="U1"), Button(label="Web", style=5, url="https://x")]),
        BASE,
    )  # fmt: skip
    assert done.image_url == f"{BASE}/images/{RESULT.key}" and done.progress == "100%" and done.finish_time == 1_700_000_009_000
    assert [(b.custom_id, b.label, b.type, b.style) for b in done.buttons] == [("MJ::JOB::upsample::1::h", "U1", 2, 2)]  # no link buttons
    assert done.properties == {
        "finalPrompt": "a cat --fast", "jobAction": "IMAGINE", "mode": "fast", "messageId": "m1", "messageHash": "h1",
        "discordInstanceId": "acct", "flags": 64,
    }  # fmt: skip


def test_a_failed_job() -> None:
    t = task_view(job(status=JobStatus.FAILURE, preview_image=PREVIEW, fail_reason="Banned prompt", error_category=ErrorCategory.CONTENT_POLICY), BASE)
    assert t.image_url is None and t.fail_reason == "Banned prompt" and t.properties["errorCategory"] == "content_policy"


def test_follow_ups_modal_and_text_results() -> None:
    modal = task_view(job(action=Action.CUSTOM_ZOOM, status=JobStatus.MODAL, parent_id="j_p", index=1, bot=Bot.NIJI, mode=Mode.RELAX), BASE)
    assert (modal.action, modal.status, modal.description, modal.bot_type) == ("ZOOM", "MODAL", "Waiting for window confirm", "NIJI_JOURNEY")
    assert modal.properties["parentId"] == "j_p" and modal.properties["jobAction"] == "CUSTOM_ZOOM" and modal.properties["mode"] == "relax"
    described = task_view(job(action=Action.DESCRIBE, prompt="", status=JobStatus.SUCCESS, inputs=[INPUT], result_texts=["a fox", "a dog"]), BASE)
    assert described.prompt == "1\ufe0f\u20e3 a fox\n\n2\ufe0f\u20e3 a dog" == described.prompt_en == described.properties["finalPrompt"]
    assert described.image_url == f"{BASE}/images/{INPUT.key}"
    shortened = task_view(job(action=Action.SHORTEN, prompt="a long prompt", status=JobStatus.SUCCESS, result_texts=["short"]), BASE)
    assert shortened.prompt == "1\ufe0f\u20e3 short" and shortened.description == "/shorten a long prompt"


def test_the_json_uses_the_protocols_field_names() -> None:
    data = msgspec.json.decode(task_json(job(), BASE))
    assert set(data) == {
        "id", "action", "status", "prompt", "promptEn", "description", "state", "submitTime", "startTime", "finishTime",
        "progress", "imageUrl", "failReason", "buttons", "properties", "botType",
    }  # fmt: skip
