"""The Discord account session against the simulator, over real loopback websockets and HTTP."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from adapter.backends.base import (
    AccountState,
    Blend,
    Describe,
    ImageInput,
    Imagine,
    Info,
    JobEvent,
    JobFailed,
    JobOutput,
    NotSent,
    PressButton,
    RecoveryProbe,
    Shorten,
)
from adapter.backends.discord.session import DiscordAccount, DiscordAccountOptions
from adapter.domain.actions import Action, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import now_ms
from adapter.simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.usefixtures("sim_behaviour")  # both simulated worlds (conftest)
WAIT = 15.0
SPEED = 600.0


def png(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 48)) -> ImageInput:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return ImageInput(filename="in.png", content_type="image/png", data=buf.getvalue())


def mask_png(size: tuple[int, int] = (64, 64)) -> bytes:
    img = Image.new("L", size, 0)
    img.paste(255, (0, 0, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class Recorder:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []

    def __call__(self, ev: JobEvent) -> None:
        self.events.append(ev)

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    @property
    def progress(self) -> list[int]:
        return [e.progress for e in self.events if e.kind == "progress"]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(SimulatorConfig(speed=SPEED, seed=7, accounts=2))
    await s.start()
    yield s
    await s.stop()


async def control(sim: Simulator, path: str, body: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=5) as c:
        r = await c.post(f"/_simulator/{path}", json=body or {})
        assert r.status_code < 300, r.text
        return r.json() if r.content else None


AccountFactory = Callable[..., Awaitable[DiscordAccount]]


@pytest.fixture
async def account(sim: Simulator) -> AsyncIterator[AccountFactory]:
    made: list[DiscordAccount] = []

    async def make(index: int = 0, **opts: Any) -> DiscordAccount:
        acct = sim.accounts[index]
        options = {
            "id": f"sim-{index}",
            "token": acct.token,
            "guild_id": acct.guild_id,
            "channel_id": acct.channel_id,
            "modes": (Mode.FAST, Mode.RELAX, Mode.TURBO),
            "rest_base": sim.rest_base,
            "inpaint_submit_url": sim.inpaint_submit_url,
            "min_gap_seconds": 0.01,
            "gap_jitter_seconds": 0.0,
            "delete_grace_seconds": 0.3,
            "modal_timeout_seconds": 5.0,
            "connect_timeout_seconds": 5.0,
            "invalid_session_delay": (0.01, 0.05),
            **opts,
        }
        a = DiscordAccount(DiscordAccountOptions(**options))
        made.append(a)
        await a.start()
        return a

    yield make
    for a in made:
        await a.close()


async def run(acct: DiscordAccount, op: Any, mode: Mode = Mode.FAST) -> tuple[JobOutput, Recorder]:
    rec = Recorder()
    out = await asyncio.wait_for(acct.run(op, mode, rec), WAIT)
    return out, rec


def button(out: JobOutput, action: Action, **match: Any) -> PressButton:
    for b in out.buttons:
        if b.custom_id and (p := parse_custom_id(b.custom_id)) and p.action is action and all(getattr(p, k) == v for k, v in match.items()):
            return PressButton(message_id=out.message_id or "", custom_id=b.custom_id, message_flags=out.message_flags)
    raise AssertionError(f"no {action} {match} button in {[b.custom_id for b in out.buttons]}")


async def fetch_image(url: str) -> Image.Image:
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(url)
        assert r.status_code == 200, r.status_code
    return Image.open(io.BytesIO(r.content))


async def test_imagine_reports_waiting_progress_and_a_grid(account: AccountFactory) -> None:
    acct = await account()
    assert acct.status().state is AccountState.READY
    out, rec = await run(acct, Imagine(prompt="a lighthouse at dawn --ar 3:2"))
    assert rec.kinds[:2] == ["sending", "submitted"]
    assert "waiting" in rec.kinds and "progress" in rec.kinds
    assert rec.progress == sorted(rec.progress) and all(0 <= p < 100 for p in rec.progress) and max(rec.progress) > 0
    assert all(e.preview_url for e in rec.events if e.kind == "progress" and e.progress > 0)
    assert out.job_hash and out.message_id and out.image_url
    assert "a lighthouse at dawn" in out.prompt
    labels = {parse_custom_id(b.custom_id).action for b in out.buttons if b.custom_id and parse_custom_id(b.custom_id)}
    assert {Action.UPSCALE, Action.VARIATION, Action.REROLL} <= labels
    grid = await fetch_image(out.image_url)
    assert grid.width > grid.height  # --ar 3:2


async def test_every_follow_up_button(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a red fox in snow"))
    v2, _ = await run(acct, button(grid, Action.VARIATION, index=2))
    assert v2.job_hash and v2.job_hash != grid.job_hash
    rr, _ = await run(acct, button(grid, Action.REROLL))
    assert rr.job_hash not in (grid.job_hash, v2.job_hash)
    u3, _ = await run(acct, button(grid, Action.UPSCALE, index=3))
    assert not any(parse_custom_id(b.custom_id or "") and parse_custom_id(b.custom_id or "").action is Action.UPSCALE for b in u3.buttons)
    for action, match in [
        (Action.VARY_SUBTLE, {}),
        (Action.VARY_STRONG, {}),
        (Action.UPSCALE_SUBTLE, {}),
        (Action.UPSCALE_CREATIVE, {}),
        (Action.ZOOM, {"zoom": 2.0}),
        (Action.ZOOM, {"zoom": 1.5}),
        (Action.PAN, {"pan": "left"}),
        (Action.PAN, {"pan": "right"}),
        (Action.PAN, {"pan": "up"}),
        (Action.PAN, {"pan": "down"}),
    ]:
        out, rec = await run(acct, button(u3, action, **match))
        assert out.image_url and out.job_hash, (action, match)
        assert "submitted" in rec.kinds


async def test_custom_zoom_and_vary_region_modals(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a quiet harbour"))
    u1, _ = await run(acct, button(grid, Action.UPSCALE, index=1))
    cz = button(u1, Action.CUSTOM_ZOOM)
    zoomed, _ = await run(acct, PressButton(message_id=cz.message_id, custom_id=cz.custom_id, message_flags=cz.message_flags, prompt="a quiet harbour at night --zoom 1.5"))
    assert zoomed.image_url and zoomed.job_hash != u1.job_hash
    vr = button(u1, Action.VARY_REGION)
    region, _ = await run(acct, PressButton(message_id=vr.message_id, custom_id=vr.custom_id, prompt="a red boat", mask_png=mask_png()))
    assert region.image_url and region.job_hash not in (u1.job_hash, zoomed.job_hash)


async def test_describe_blend_shorten_info(account: AccountFactory) -> None:
    acct = await account()
    described, _ = await run(acct, Describe(image=png()))
    assert len(described.texts) == 4 and all(t and not t.startswith("1") for t in described.texts)
    blended, _ = await run(acct, Blend(images=(png((255, 0, 0)), png((0, 0, 255))), dimensions="landscape"))
    assert blended.image_url and any(parse_custom_id(b.custom_id or "") for b in blended.buttons)
    short, _ = await run(acct, Shorten(prompt="a very long and flowery prompt about a majestic castle on a hill at sunset"))
    assert len(short.texts) >= 2
    info, _ = await run(acct, Info())
    assert any("Subscription" in t or "Job Mode" in t for t in info.texts)


async def test_two_identical_prompts_at_once_stay_distinct(account: AccountFactory) -> None:
    acct = await account()
    (a, ra), (b, rb) = await asyncio.gather(run(acct, Imagine(prompt="the same prompt")), run(acct, Imagine(prompt="the same prompt")))
    assert a.job_hash != b.job_hash and a.message_id != b.message_id
    pa = {e.message_id for e in ra.events if e.kind == "progress"}
    pb = {e.message_id for e in rb.events if e.kind == "progress"}
    assert pa and pb and not (pa & pb)


async def test_gateway_drop_mid_job_resumes_without_losing_progress(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    rec = Recorder()
    task = asyncio.create_task(acct.run(Imagine(prompt="resume me"), Mode.RELAX, rec))  # relax: slower, time to drop
    for _ in range(500):
        if "progress" in rec.kinds:
            break
        await asyncio.sleep(0.01)
    await control(sim, "faults/drop-gateway")
    out = await asyncio.wait_for(task, WAIT)
    assert out.image_url
    assert acct._gateway.stats.resumes >= 1 and acct._gateway.stats.identifies == 1
    assert rec.progress == sorted(rec.progress)


async def test_refused_resume_reidentifies(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/refuse-next-resume")
    await control(sim, "faults/drop-gateway")
    for _ in range(500):
        if acct._gateway.stats.identifies >= 2 and acct.status().state is AccountState.READY:
            break
        await asyncio.sleep(0.01)
    assert acct._gateway.stats.identifies >= 2
    out, _ = await run(acct, Imagine(prompt="after a new session"))
    assert out.image_url


async def test_rate_limits_are_honoured(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/rate-limit", {"count": 2, "retry_after": 0.25, "global": False})
    started = time.monotonic()
    out, _ = await run(acct, Imagine(prompt="patience"))
    elapsed = time.monotonic() - started
    assert out.image_url
    stats = acct._rest.limiter.stats
    assert stats.rate_limited == 2
    # two 429s in a row, each asking for 0.25 s: nothing may have been retried early
    assert elapsed >= 0.5 - 0.01, elapsed


async def test_banned_prompt_fails_as_content_policy(account: AccountFactory) -> None:
    acct = await account()
    with pytest.raises(JobFailed) as err:
        await run(acct, Imagine(prompt="a gory bloodbath scene"))
    assert err.value.error.category is ErrorCategory.CONTENT_POLICY


async def test_invalid_parameter_fails_as_invalid_request(account: AccountFactory) -> None:
    acct = await account()
    with pytest.raises(JobFailed) as err:
        await run(acct, Imagine(prompt="a cat --ar 0:0"))
    assert err.value.error.category is ErrorCategory.INVALID_REQUEST


async def test_job_queued_waits_and_completes(sim: Simulator, account: AccountFactory) -> None:
    acct = await account(concurrency=6)
    plan = sim.accounts[0].plan_concurrency
    results = await asyncio.gather(*(run(acct, Imagine(prompt=f"crowd {i}"), Mode.RELAX) for i in range(plan + 2)))
    assert all(out.image_url for out, _ in results)
    assert any("queued" in rec.kinds for _, rec in results)


async def test_captcha_pauses_the_account_and_sends_nothing_more(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/captcha-next-interaction")
    with pytest.raises(JobFailed) as err:
        await run(acct, Imagine(prompt="hello"))
    assert err.value.error.category is ErrorCategory.ACCOUNT
    st = acct.status()
    assert st.state is AccountState.PAUSED and "captcha" in (st.reason or "").lower()
    before = len(sim.interaction_log)
    with pytest.raises(NotSent):
        await run(acct, Imagine(prompt="again"))
    await asyncio.sleep(0.05)
    assert len(sim.interaction_log) == before


async def test_revoked_token_disables_the_account(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/revoke-token", {"token": sim.accounts[0].token})
    with pytest.raises((JobFailed, NotSent)):
        await run(acct, Imagine(prompt="anyone there"))
    for _ in range(300):
        if acct.status().state is AccountState.DISABLED:
            break
        await asyncio.sleep(0.01)
    st = acct.status()
    assert st.state is AccountState.DISABLED and st.reason
    assert sim.accounts[0].token not in (st.reason or "")


async def test_moderated_job_fails_as_content_policy(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    rec = Recorder()
    task = asyncio.create_task(acct.run(Imagine(prompt="moderate me"), Mode.RELAX, rec))
    for _ in range(500):
        if "progress" in rec.kinds:
            break
        await asyncio.sleep(0.01)
    await control(sim, "faults/moderate-running")
    with pytest.raises(JobFailed) as err:
        await asyncio.wait_for(task, WAIT)
    assert err.value.error.category is ErrorCategory.CONTENT_POLICY


async def test_pacing_gap_is_never_violated(sim: Simulator, account: AccountFactory) -> None:
    gap = 0.08
    acct = await account(min_gap_seconds=gap, gap_jitter_seconds=0.02, concurrency=6)
    await asyncio.gather(*(run(acct, Imagine(prompt=f"paced {i}")) for i in range(5)))
    times = sorted(r.at for r in sim.interaction_log if r.user_id == sim.accounts[0].user_id)
    assert len(times) >= 5
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= gap * 0.95, gaps  # small allowance for clock granularity


async def test_recover_finds_a_finished_job_in_history(account: AccountFactory) -> None:
    acct = await account()
    rec = Recorder()
    started = now_ms()
    out, rec = await run(acct, Imagine(prompt="find me later"))
    nonce = next(e.nonce for e in rec.events if e.kind == "submitted")
    progress_id = next(e.message_id for e in rec.events if e.kind in ("waiting", "progress") and e.message_id)
    await acct.close()
    fresh = await account()
    found = await asyncio.wait_for(
        fresh.recover(RecoveryProbe(operation=Imagine(prompt="find me later --fast"), submitted_at_ms=started, nonce=nonce, progress_message_id=progress_id, prompt=out.prompt), Recorder()),
        WAIT,
    )
    assert found.job_hash == out.job_hash and found.message_id == out.message_id


async def test_stale_command_version_is_refreshed_and_retried_once(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await run(acct, Imagine(prompt="warm the command cache"))
    refreshes = acct._commands.refreshes
    await control(sim, "faults/bump-command-versions", {"name": "imagine"})
    out, _ = await run(acct, Imagine(prompt="after a version bump"))
    assert out.image_url and acct._commands.refreshes == refreshes + 1


async def test_midjourney_side_captcha_pauses_the_account(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/captcha-next-interaction", {"kind": "midjourney"})
    with pytest.raises(JobFailed) as err:
        await run(acct, Imagine(prompt="are you human"))
    assert err.value.error.category is ErrorCategory.ACCOUNT
    assert acct.status().state is AccountState.PAUSED
    acct.resume()
    assert acct.status().state is AccountState.READY


async def test_midjourney_failure_is_retryable(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/fail-next-job", {"title": "Sorry! Could not complete the job!"})
    with pytest.raises(JobFailed) as err:
        await run(acct, Imagine(prompt="unlucky"))
    assert err.value.error.category is ErrorCategory.RETRYABLE
    assert "Could not complete" in err.value.error.message


async def test_remix_modals_are_answered(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a blue house"))
    await control(sim, "settings", {"user_id": sim.accounts[0].user_id, "remix": True})
    v1 = button(grid, Action.VARIATION, index=1)
    remixed, _ = await run(acct, PressButton(message_id=v1.message_id, custom_id=v1.custom_id, prompt="a red house"))
    assert remixed.image_url and "red house" in remixed.prompt
    plain, _ = await run(acct, button(grid, Action.VARIATION, index=2))  # no new prompt: the prefilled one
    assert plain.image_url and "blue house" in plain.prompt


async def test_mode_switch_is_acknowledged_and_used(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await acct.switch_mode(Mode.RELAX)
    info, _ = await run(acct, Info())
    assert any("relax" in t.lower() for t in info.texts if t.lower().startswith("job mode")), info.texts
    grid, _ = await run(acct, Imagine(prompt="slow and steady"), Mode.RELAX)
    assert grid.mode is Mode.RELAX


async def test_daily_cap_stops_sending_and_cools_down(account: AccountFactory) -> None:
    acct = await account(daily_cap=1)
    await run(acct, Imagine(prompt="the only one today"))
    with pytest.raises(NotSent):
        await run(acct, Imagine(prompt="one too many"))
    st = acct.status()
    assert st.state is AccountState.COOLING_DOWN and "cap" in (st.reason or "")


async def test_imagine_with_image_prompts_uploads_and_links_them(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    out, _ = await run(acct, Imagine(prompt="in the style of these", images=(png((10, 200, 10)), png((10, 10, 200)))))
    assert out.image_url
    # Midjourney echoes image prompts as shortened links ahead of the text
    assert out.prompt.count("https://") >= 2 and out.prompt.index("https://") < out.prompt.index("in the style of these")
    uploads = [r for r in sim.interaction_log if r.user_id == sim.accounts[0].user_id]
    assert [r.name for r in uploads] == ["imagine"]  # the uploads are plain messages, not interactions


async def test_recover_tells_identical_prompts_apart_by_interaction(account: AccountFactory) -> None:
    acct = await account()
    (a, ra), (b, rb) = await asyncio.gather(run(acct, Imagine(prompt="twin prompt")), run(acct, Imagine(prompt="twin prompt")))
    ids_b = next(e.interaction_ids for e in reversed(rb.events) if e.interaction_ids)
    await acct.close()
    fresh = await account()
    # the progress message is gone and the prompt matches both: only the interaction id decides
    found = await asyncio.wait_for(
        fresh.recover(RecoveryProbe(operation=Imagine(prompt="twin prompt"), submitted_at_ms=now_ms() - 60_000, interaction_ids=ids_b, prompt=b.prompt), Recorder()),
        WAIT,
    )
    assert found.message_id == b.message_id != a.message_id


async def test_daily_cap_and_pacing_carry_over_to_the_next_holder(sim: Simulator, account: AccountFactory) -> None:
    """Several replicas: the account's next holder starts from what the last one recorded, so the
    daily cap counts every interaction of the day, whoever sent it."""
    first = await account(daily_cap=2)
    marks: list[tuple[str, int, float]] = []
    first.on_paced = lambda day, count, at: marks.append((day, count, at))
    await run(first, Imagine(prompt="sent by the first holder"))
    assert [m[1] for m in marks] == [1]
    await first.close()

    second = await account(daily_cap=2)
    second.restore_pacing(*marks[-1])
    await run(second, Imagine(prompt="sent by the second holder"))
    with pytest.raises(NotSent):
        await run(second, Imagine(prompt="the third of the day"))
    assert second.status().state is AccountState.COOLING_DOWN


async def test_nothing_is_sent_without_the_lease(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    acct.send_gate = lambda: False  # this replica's lease ran out (or was taken)
    before = len(sim.interaction_log)
    with pytest.raises(NotSent, match="no longer holds"):
        await run(acct, Imagine(prompt="fenced off"))
    assert len(sim.interaction_log) == before
