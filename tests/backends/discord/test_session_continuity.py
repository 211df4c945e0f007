"""The Discord account when continuity breaks: a restart (recover), a new gateway session
(reconcile), an ambiguous 5xx on an interaction, a 429 storm. Against the simulator over real
loopback sockets. No outcome is ever invented: a job is SUCCESS with its result, an honest
failure, or still being followed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from adapter.backends.base import AccountState, Imagine, JobFailed, JobOutput, RecoveryProbe
from adapter.backends.discord.session import DiscordAccount, DiscordAccountOptions
from adapter.domain.actions import Mode
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import now_ms
from adapter.simulator import Simulator, SimulatorConfig
from tests.backends.discord.test_session_sim import Recorder

pytestmark = pytest.mark.usefixtures("sim_behaviour")  # both simulated worlds (conftest)
WAIT = 20.0


AccountFactory = Callable[..., Awaitable[DiscordAccount]]


def _sim(speed: float) -> Callable[[], AsyncIterator[Simulator]]:
    async def fixture() -> AsyncIterator[Simulator]:
        s = Simulator(SimulatorConfig(speed=speed, seed=11, accounts=1))
        await s.start()
        yield s
        await s.stop()

    return fixture


fast_sim = pytest.fixture(_sim(600.0))
# slow enough that a job can finish while the client is away, fast enough for a unit test
slow_sim = pytest.fixture(_sim(60.0))


def _factory(sim: Simulator, made: list[DiscordAccount]) -> AccountFactory:
    async def make(**opts: Any) -> DiscordAccount:
        acct = sim.accounts[0]
        options = {
            "id": "sim-0",
            "token": acct.token,
            "guild_id": acct.guild_id,
            "channel_id": acct.channel_id,
            "modes": (Mode.FAST, Mode.RELAX),
            "rest_base": sim.rest_base,
            "inpaint_submit_url": sim.inpaint_submit_url,
            "min_gap_seconds": 0.01,
            "gap_jitter_seconds": 0.0,
            "delete_grace_seconds": 0.3,
            "connect_timeout_seconds": 5.0,
            "invalid_session_delay": (0.01, 0.05),
            "ack_grace_seconds": 0.5,
            **opts,
        }
        a = DiscordAccount(DiscordAccountOptions(**options))
        made.append(a)
        await a.start()
        return a

    return make


@pytest.fixture
async def account(fast_sim: Simulator) -> AsyncIterator[AccountFactory]:
    made: list[DiscordAccount] = []
    yield _factory(fast_sim, made)
    for a in made:
        await a.close()


@pytest.fixture
async def slow_account(slow_sim: Simulator) -> AsyncIterator[AccountFactory]:
    made: list[DiscordAccount] = []
    yield _factory(slow_sim, made)
    for a in made:
        await a.close()


def accepted(sim: Simulator, name: str = "imagine") -> list[Any]:
    return [r for r in sim.interaction_log if r.name == name and r.outcome.startswith(("accepted", "server_error_accepted"))]


async def until(cond: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


# --- recovery after a restart ---------------------------------------------------------------


async def test_recover_matches_the_prompt_as_sent_with_its_speed_flag(account: AccountFactory) -> None:
    """Jobs are sent as `<prompt> --fast`; a probe that only knows the caller's prompt (no
    nonce, no interaction id, no message) must still find it."""
    acct = await account()
    started = now_ms()
    out = await asyncio.wait_for(acct.run(Imagine(prompt="a flagged harbour"), Mode.FAST, Recorder()), WAIT)
    await acct.close()
    fresh = await account()
    probe = RecoveryProbe(operation=Imagine(prompt="a flagged harbour"), submitted_at_ms=started, prompt="a flagged harbour", mode=Mode.FAST)
    found = await asyncio.wait_for(fresh.recover(probe, Recorder()), WAIT)
    assert found.message_id == out.message_id and found.image_url


async def test_recover_keeps_following_a_traceless_job_while_midjourney_is_busy(fast_sim: Simulator, account: AccountFactory) -> None:
    """No trace in history is not proof of anything while Midjourney has jobs queued or running
    for the account (ours may be one of them, behind an ephemeral "Job queued")."""
    busy = await account(id="sim-0-busy")
    fast_sim.faults.stall_next_job()
    stalled = asyncio.create_task(busy.run(Imagine(prompt="hogging the slot"), Mode.FAST, Recorder()))
    await until(lambda: any(j.info()["state"] == "stalled" for j in fast_sim.context.runner.jobs.values()))
    acct = await account()
    probe = RecoveryProbe(operation=Imagine(prompt="never seen"), submitted_at_ms=now_ms(), nonce="123", prompt="never seen --fast")
    task = asyncio.create_task(acct.recover(probe, Recorder()))
    await asyncio.sleep(2.5)  # past the grace and one /info round
    assert not task.done()
    assert any(r.name == "info" for r in fast_sim.interaction_log)
    assert len(accepted(fast_sim)) == 1  # recovery itself never sends the job
    for t in (task, stalled):
        t.cancel()
    await asyncio.gather(task, stalled, return_exceptions=True)


async def test_recover_proves_a_traceless_job_was_never_sent(fast_sim: Simulator, account: AccountFactory) -> None:
    """The process died after marking the job submitted and before its POST: nothing queued or
    running at Midjourney, no trace in the history read after /info said so. NotSent, so the
    engine sends it (once)."""
    from adapter.backends.base import NotSent

    acct = await account()
    probe = RecoveryProbe(operation=Imagine(prompt="died before the post"), submitted_at_ms=now_ms(), nonce="123", prompt="died before the post --fast")
    with pytest.raises(NotSent) as err:
        await asyncio.wait_for(acct.recover(probe, Recorder()), WAIT)
    assert "never sent" in err.value.error.message
    assert accepted(fast_sim) == []


async def test_recover_picks_up_a_job_that_shows_up_after_the_restart(fast_sim: Simulator, account: AccountFactory) -> None:
    """A job still queued at Midjourney when we restarted appears later: recovery attaches to it
    by the prompt as sent."""
    recovering = await account()
    probe = RecoveryProbe(operation=Imagine(prompt="late bloomer"), submitted_at_ms=now_ms(), prompt="late bloomer --fast", mode=Mode.FAST)
    task = asyncio.create_task(recovering.recover(probe, Recorder()))
    await asyncio.sleep(0.2)
    sender = await account(id="sim-0-other")  # another session of the same user sends it
    out = await asyncio.wait_for(sender.run(Imagine(prompt="late bloomer"), Mode.FAST, Recorder()), WAIT)
    found = await asyncio.wait_for(task, WAIT)
    assert found.message_id == out.message_id
    assert len(accepted(fast_sim)) == 1


async def test_recover_calls_a_vanished_message_unknown_not_moderated(account: AccountFactory) -> None:
    acct = await account()
    await asyncio.wait_for(acct.run(Imagine(prompt="something else"), Mode.FAST, Recorder()), WAIT)
    gone = str((now_ms() - 1_420_070_400_000 - 5_000) << 22)  # a snowflake of a message that is not there
    probe = RecoveryProbe(operation=Imagine(prompt="vanished"), submitted_at_ms=now_ms() - 10_000, progress_message_id=gone, prompt="vanished --fast")
    with pytest.raises(JobFailed) as err:
        await asyncio.wait_for(acct.recover(probe, Recorder()), WAIT)
    assert err.value.error.category is ErrorCategory.OUTCOME_UNKNOWN
    assert "moderat" not in err.value.error.message.lower()


async def test_ephemeral_job_queued_message_is_never_the_recovery_anchor(fast_sim: Simulator, account: AccountFactory) -> None:
    acct = await account(concurrency=8)
    recs = [Recorder() for _ in range(5)]
    # more than the plan runs at once: Midjourney answers some with an ephemeral "Job queued"
    await asyncio.wait_for(
        asyncio.gather(*(acct.run(Imagine(prompt=f"queue me {i}"), Mode.FAST, r) for i, r in enumerate(recs))), WAIT
    )
    queued = [e for r in recs for e in r.events if e.kind == "queued"]
    assert queued, "the simulator should have queued some jobs (plan concurrency 3)"
    assert all(e.message_id is None for e in queued)


# --- a new gateway session while jobs run ---------------------------------------------------


@pytest.mark.parametrize("fault", ["invalid-session", "refused-resume"])
async def test_result_missed_during_a_new_session_is_reconciled(slow_sim: Simulator, slow_account: AccountFactory, fault: str) -> None:
    """The job finishes while the account is between sessions: the result never arrives as an
    event, and the account finds it in the channel history before it takes new work."""
    acct = await slow_account(invalid_session_delay=(2.5, 2.5), concurrency=2)
    rec = Recorder()
    task = asyncio.create_task(acct.run(Imagine(prompt="finish while away"), Mode.FAST, rec))
    await until(lambda: "progress" in rec.kinds)
    user = slow_sim.accounts[0].user_id
    states: list[AccountState] = []
    acct.add_listener(lambda st: states.append(st.state))
    if fault == "invalid-session":
        slow_sim.faults.invalid_session(user, resumable=False)
    else:
        slow_sim.faults.refuse_next_resume()
        slow_sim.faults.drop_gateway(user)
    # the job ends at Midjourney while we are away
    await until(lambda: any(j.info()["state"] == "done" for j in slow_sim.context.runner.jobs.values()), 10)
    assert acct.status().state is not AccountState.READY  # still away: the result was missed
    out: JobOutput = await asyncio.wait_for(task, WAIT)
    assert out.image_url and out.job_hash
    assert acct.reconciles >= 1
    assert AccountState.RECONNECTING in states and acct.status().state is AccountState.READY
    assert len(accepted(slow_sim)) == 1


async def test_nothing_new_is_sent_before_reconciliation_ends(slow_sim: Simulator, slow_account: AccountFactory) -> None:
    acct = await slow_account(invalid_session_delay=(0.5, 0.5))
    rec = Recorder()
    first = asyncio.create_task(acct.run(Imagine(prompt="running across the gap"), Mode.FAST, rec))
    await until(lambda: "progress" in rec.kinds)
    slow_sim.faults.invalid_session(slow_sim.accounts[0].user_id, resumable=False)
    await until(lambda: acct.status().state is not AccountState.READY)
    sent_before = len(slow_sim.interaction_log)
    # a job offered now is refused by the account (the engine places it elsewhere or later)
    await until(lambda: acct.status().state is AccountState.READY)
    assert acct.reconciles == 1
    assert len(slow_sim.interaction_log) == sent_before
    await asyncio.wait_for(first, WAIT)


# --- ambiguous answers to an interaction ----------------------------------------------------


async def test_5xx_that_was_taken_is_followed_not_resent(fast_sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    fast_sim.faults.interaction_5xx(status=502, accepted=True)
    out = await asyncio.wait_for(acct.run(Imagine(prompt="taken despite a 502"), Mode.FAST, Recorder()), WAIT)
    assert out.image_url
    assert len(accepted(fast_sim)) == 1


async def test_5xx_that_was_not_taken_is_not_sent(fast_sim: Simulator, account: AccountFactory) -> None:
    """With the gateway connected all along and no INTERACTION_CREATE within the grace, the
    interaction provably did not happen: NotSent, so the engine may send it again."""
    from adapter.backends.base import NotSent

    acct = await account()
    fast_sim.faults.interaction_5xx(status=500, accepted=False)
    started = time.monotonic()
    with pytest.raises(NotSent):
        await asyncio.wait_for(acct.run(Imagine(prompt="lost to a 500"), Mode.FAST, Recorder()), WAIT)
    assert time.monotonic() - started >= 0.5  # it waited for evidence first
    assert accepted(fast_sim) == []
    out = await asyncio.wait_for(acct.run(Imagine(prompt="lost to a 500"), Mode.FAST, Recorder()), WAIT)
    assert out.image_url and len(accepted(fast_sim)) == 1


async def test_a_429_storm_delays_but_never_fails_the_job(fast_sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await asyncio.wait_for(acct.run(Imagine(prompt="warm the command cache"), Mode.FAST, Recorder()), WAIT)
    before = len(accepted(fast_sim))
    fast_sim.faults.rate_limit(count=8, retry_after=0.05)
    out = await asyncio.wait_for(acct.run(Imagine(prompt="through the storm"), Mode.FAST, Recorder()), WAIT)
    assert out.image_url and len(accepted(fast_sim)) == before + 1
    assert sum(r.outcome == "rate_limited" for r in fast_sim.interaction_log) >= 6


# --- limits ---------------------------------------------------------------------------------


async def test_daily_cap_turns_the_account_away_until_midnight_utc(fast_sim: Simulator, account: AccountFactory) -> None:
    from adapter.backends.base import NotSent

    acct = await account(daily_cap=2)
    await asyncio.wait_for(acct.run(Imagine(prompt="one of two"), Mode.FAST, Recorder()), WAIT)
    assert acct.status().state is AccountState.READY
    await asyncio.wait_for(acct.run(Imagine(prompt="two of two"), Mode.FAST, Recorder()), WAIT)
    st = acct.status()
    # said at once, so the scheduler stops placing jobs here
    assert st.state is AccountState.COOLING_DOWN and st.reason and "daily interaction cap (2)" in st.reason
    tomorrow = (now_ms() // 86_400_000 + 1) * 86_400_000
    assert st.until_ms == tomorrow
    with pytest.raises(NotSent):
        await asyncio.wait_for(acct.run(Imagine(prompt="three of two"), Mode.FAST, Recorder()), WAIT)
    assert len(accepted(fast_sim)) == 2
