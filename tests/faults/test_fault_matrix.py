"""The fault matrix: real processes on loopback (a standalone simulator, an `mj-adapter serve`
restartable on the same SQLite store), a batch of concurrent jobs (half through the OpenAI SDK
with an Idempotency-Key and retries on connection errors, half through /mj/submit/imagine +
polling), one fault injected at a chosen moment, then the same verdict every time:

- every job SUCCESS, with images whose URLs answer 200;
- exactly one adapter job and one accepted /imagine per prompt, and the simulator job is the one
  the adapter reports (same job hash): no duplicate spent, none lost;
- nothing still running, at the simulator or in the adapter;
- all of it well within a budget of seconds: nothing waited for a job timeout.

Simulated jobs take ~1.5-2 s (speed 30); two accounts, three slots each unless said otherwise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fault_cluster import Cluster, wait_for  # noqa: E402

pytestmark = pytest.mark.slow

# seconds from submission to the last job's end, faults and restarts included: a passing run takes
# 5-15 s; the margin is for a loaded machine (a restart alone has taken 16 s there). Any job that
# waits for a timeout (900 s fast mode, 60 s recovery wait) blows through it.
BUDGET = 45.0


def finish(cluster: Cluster) -> None:
    took = cluster.wait_clients()
    problems = cluster.verify()
    print("\n".join(cluster.events))  # shown with -rA, and with the evidence on failure
    assert not problems, f"{len(problems)} problem(s) after {took:.1f}s:\n" + "\n".join(problems)


# --- 1. SIGKILL early / late, restart at once ------------------------------------------------------


@pytest.mark.parametrize("moment", ["early", "late"])
def test_sigkill_then_immediate_restart(cluster: Cluster, moment: str) -> None:
    cluster.start_adapter()
    cluster.submit(12, BUDGET)
    if moment == "early":
        # while jobs are being sent: the first /imagine has reached Midjourney, most have not
        wait_for(lambda: len(cluster.sim.accepted_imagines()) >= 1, 10, "the first /imagine at the simulator", interval=0.005)
    else:
        # mid-progress: some grids are half drawn
        wait_for(lambda: len(cluster.sim_running(min_progress=46)) >= 2, 15, "two simulated jobs at >= 46%")
    cluster.event(f"sim before kill: {[(j['state'], j['progress']) for j in cluster.sim_jobs()]}")
    cluster.kill_adapter()
    cluster.restart_adapter()
    finish(cluster)


# --- 2. SIGKILL while jobs sit in Midjourney's own queue -----------------------------------------


def test_sigkill_while_jobs_are_queued_at_midjourney(cluster: Cluster) -> None:
    # the adapter allows 6 at once per account, the Midjourney plan runs 3: the rest get "Job queued"
    cluster.configure(concurrency=6)
    cluster.start_adapter()
    cluster.submit(12, BUDGET)
    wait_for(
        lambda: len(cluster.sim_jobs()) == 12 and sum(j["state"] == "queued" for j in cluster.sim_jobs()) >= 2,
        15,
        "all 12 jobs at the simulator, two or more in its queue",
    )
    cluster.event(f"sim before kill: {[(j['state'], j['progress']) for j in cluster.sim_jobs()]}")
    cluster.kill_adapter()
    # down for longer than the jobs take: they all finish at Midjourney meanwhile
    wait_for(cluster.sim_idle, 20, "every simulated job to finish while the adapter is down", interval=0.05)
    time.sleep(0.5)
    cluster.event("simulator idle; restarting")
    cluster.restart_adapter()
    finish(cluster)


# --- 3-5. gateway faults mid-run ---------------------------------------------------------------------


def _mid_run(cluster: Cluster, n: int = 16) -> None:
    """Submit n jobs (more than the 6 slots) and wait until some are half drawn and others still
    wait in the adapter's queues."""
    cluster.start_adapter()
    cluster.submit(n, BUDGET)
    wait_for(lambda: len(cluster.sim_running(min_progress=15)) >= 2, 15, "two simulated jobs in progress")
    cluster.event(f"sim at the fault: {[(j['state'], j['progress']) for j in cluster.sim_jobs()]}")


def test_non_resumable_invalid_session_mid_run(cluster: Cluster) -> None:
    _mid_run(cluster)
    hit = cluster.sim.must_fault("invalid-session", {"resumable": False})
    cluster.event(f"invalid-session (non-resumable) sent to {hit} socket(s)")
    assert hit >= 1
    finish(cluster)


def test_refused_resume_after_gateway_drop_mid_run(cluster: Cluster) -> None:
    _mid_run(cluster)
    cluster.sim.must_fault("refuse-next-resume", {"count": cluster.n_accounts})
    dropped = cluster.sim.must_fault("drop-gateway")
    cluster.event(f"refuse-next-resume x{cluster.n_accounts} + drop-gateway ({dropped} socket(s))")
    assert dropped >= 1
    finish(cluster)


def test_gateway_drops_and_429_storm_mid_run(cluster: Cluster) -> None:
    _mid_run(cluster)
    cluster.sim.must_fault("rate-limit", {"count": 8, "retry_after": 0.5})
    dropped = cluster.sim.must_fault("drop-gateway")
    cluster.event(f"rate-limit x8 + drop-gateway ({dropped} socket(s))")
    # a second drop once the accounts are back on the gateway, while jobs still run
    time.sleep(0.2)  # let them notice the first drop
    wait_for(lambda: all(a["state"] == "ready" for a in cluster.accounts()), 10, "accounts ready again after the first drop")
    cluster.sim.must_fault("rate-limit", {"count": 4, "retry_after": 0.5})
    dropped = cluster.sim.must_fault("drop-gateway")
    cluster.event(f"rate-limit x4 + drop-gateway again ({dropped} socket(s))")
    finish(cluster)


# --- 6. REST 5xx on POST /interactions ------------------------------------------------------------


@pytest.mark.parametrize("accepted", [True, False], ids=["processed-then-5xx", "refused-5xx"])
def test_interaction_5xx(cluster: Cluster, accepted: bool) -> None:
    cluster.start_adapter()
    cluster.submit(12, BUDGET)
    wait_for(lambda: len(cluster.sim.accepted_imagines()) >= 2, 10, "two /imagine at the simulator", interval=0.005)
    r = cluster.sim.fault("interaction-5xx", {"count": 3, "status": 502, "accepted": accepted})
    if r.status_code == 404:
        pytest.skip("fault not available yet")
    assert r.status_code == 200, f"interaction-5xx: HTTP {r.status_code} {r.text}"
    cluster.event(f"interaction-5xx x3 (502, accepted={accepted})")
    finish(cluster)


# --- 7. SIGTERM with a backlog ---------------------------------------------------------------------


def test_sigterm_with_a_backlog_then_restart(cluster: Cluster) -> None:
    # two slots per account and 20 jobs: a backlog that outlasts the shutdown (about 5 waves)
    cluster.configure(concurrency=2)
    cluster.start_adapter()
    cluster.submit(20, BUDGET)
    wait_for(
        lambda: len(cluster.sim_running(min_progress=15)) >= 2 and cluster.adapter_backlog() >= 8,
        15,
        "two simulated jobs in progress and a backlog of 8+ in the adapter",
    )
    cluster.event(f"sim at SIGTERM: {[(j['state'], j['progress']) for j in cluster.sim_jobs()]}")
    term_wall = time.time()
    took = cluster.term_adapter(timeout=20)
    exited_wall = time.time()

    problems: list[str] = []
    if took > 10:
        problems.append(f"SIGTERM: the adapter took {took:.1f}s to exit")
    log = cluster.adapter.log_text()
    for bad in ("exception was never retrieved", "Task was destroyed but it is pending"):
        for line in (ln for ln in log.splitlines() if bad in ln):
            problems.append(f"adapter log after SIGTERM: {line}")
    stored = cluster.store_jobs()
    by_status: dict[str, list[str]] = {}
    for job in stored:
        by_status.setdefault(job.status.value, []).append(f"{job.id}({cluster.token_of(job.prompt)})")
    cluster.event(f"store after SIGTERM: { {k: len(v) for k, v in by_status.items()} }")
    for job in stored:
        if job.status.value in ("FAILURE", "CANCEL"):
            problems.append(f"after SIGTERM the store has {job.id} ({cluster.token_of(job.prompt)}) {job.status.value}: {job.fail_reason!r}")
    if not by_status.get("NOT_START"):
        problems.append(f"after SIGTERM no job is queued (NOT_START) in the store: {by_status}")
    # what reached Midjourney after the signal (checked below: each must be a job the adapter reports)
    after = [j for j in cluster.sim_jobs() if j["created_at"] >= term_wall]
    during = [j for j in after if j["created_at"] <= exited_wall]
    cluster.event(f"simulated jobs created between SIGTERM and exit: {[(j['hash'][:8], cluster.token_of(j['prompt'])) for j in during]}")
    signalled, exited = cluster.adapter.signalled_at or 0.0, cluster.adapter.exited_at or 0.0
    late_sends = [i for i in cluster.sim.interactions() if signalled <= i["at"] <= exited]
    cluster.event(f"interactions between SIGTERM and exit: {[(i['name'], i['outcome'], i['nonce']) for i in late_sends]}")

    cluster.restart_adapter()
    took_all = cluster.wait_clients()
    problems += cluster.verify()
    tasks = {cluster.token_of(t["prompt"]): t for t in cluster.tasks()}
    for sj in during:
        t = tasks.get(cluster.token_of(sj["prompt"]))
        if t is None or t["properties"].get("messageHash") != sj["hash"] or t["status"] != "SUCCESS":
            problems.append(f"simulated job {sj['hash']} ({sj['prompt']!r}) sent during shutdown was not reconciled: {t and (t['id'], t['status'], t['properties'].get('messageHash'))}")
    print("\n".join(cluster.events))
    assert not problems, f"{len(problems)} problem(s) after {took_all:.1f}s:\n" + "\n".join(problems)

