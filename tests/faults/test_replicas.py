"""Several replicas, one pool, on real parts: the machine's Redis (job store, leases, job events),
an S3 server started here (moto), a standalone `mj-adapter simulator`, three `mj-adapter serve`
processes and a webhook receiver, all on loopback.

The run the issue asks for: 30 jobs submitted across the replicas (OpenAI SDK streams with an
Idempotency-Key, a second stream attached to the same job from another replica, /mj submits),
the replica holding an account SIGKILLed mid-run. Then: every job SUCCESS, no interaction sent
twice, the account held by another replica within 20 s, every stream on a survivor completed,
no webhook event delivered twice, every image URL answers on every survivor. Then a SIGTERM of
the next holder hands its accounts over at once (well within the lease TTL) and the last replica
runs new jobs on both accounts.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from fault_cluster import AUTH, KEY, MJ_AUTH, AdapterProc, SimulatorProc, wait_for  # noqa: E402
from s3_server import CREDENTIALS, MotoServer, moto_session  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SECRET = "whsec_" + "cmVwbGljYXMtdGVzdC1zZWNyZXQtMzItYnl0ZXMhIQ=="
LEASE_TTL = 6.0  # a SIGKILLed holder's accounts move after at most this (+ a renewal period)
N_JOBS = 30


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    yield from moto_session(tmp_path_factory)


@pytest.fixture
def bucket(moto: MotoServer) -> Iterator[str]:
    yield from moto.new_bucket()


class Replicas:
    def __init__(self, tmp: Path, redis_url: str, prefix: str, moto: MotoServer, bucket: str) -> None:
        self.tmp = tmp
        self.sim = SimulatorProc(tmp, speed=30, accounts=2, seed=11)
        self.receiver = Receiver(SECRET)
        accounts = [self.sim.account_config(i, min_gap_seconds=0.2, gap_jitter_seconds=0, queue_size=20) for i in range(2)]
        self.env = {
            **CREDENTIALS,
            "MJ_ADAPTER_ACCOUNTS": json.dumps(accounts),
            "MJ_ADAPTER_STORE_URL": f"{redis_url}?prefix={prefix}",
            "MJ_ADAPTER_IMAGE_STORE_URL": f"s3://{bucket}/run-{secrets.token_hex(3)}?endpoint_url={moto.endpoint}",
            "MJ_ADAPTER_LEASE_TTL_SECONDS": str(LEASE_TTL),
            "MJ_ADAPTER_WEBHOOK_URL": self.receiver.base + "/all",
            "MJ_ADAPTER_WEBHOOK_SECRET": SECRET,
            "MJ_ADAPTER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            "MJ_ADAPTER_WEBHOOK_BACKOFF_SECONDS": "0.05",
            "MJ_ADAPTER_WEBHOOK_BACKOFF_MAX_SECONDS": "0.3",
            "MJ_ADAPTER_WEBHOOK_TIMEOUT_SECONDS": "2",  # claims of a killed replica run out in 15 s
        }
        self.procs: dict[str, AdapterProc] = {}

    def start(self, name: str) -> AdapterProc:
        proc = AdapterProc(self.tmp / f"data-{name}", self.tmp / f"replica-{name}.log", {**self.env, "MJ_ADAPTER_REPLICA_ID": name})
        self.procs[name] = proc
        return proc

    def alive(self) -> dict[str, AdapterProc]:
        return {n: p for n, p in self.procs.items() if p.alive}

    def accounts(self, proc: AdapterProc) -> dict[str, dict[str, Any]]:
        return {a["id"]: a for a in httpx.get(proc.base + "/v1/accounts", headers=AUTH, timeout=3).json()}

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc._log.close()
        self.receiver.stop()
        self.sim.stop()

    def evidence(self) -> str:
        parts = []
        for name, proc in self.procs.items():
            lines = proc.log_text().splitlines()
            parts.append(f"--- replica {name} (alive={proc.alive}) ---\n" + "\n".join(lines[-40:]))
        return "\n".join(parts)


@pytest.fixture
def replicas(tmp_path: Path, redis_url: str, redis_prefix: str, moto: MotoServer, bucket: str) -> Iterator[Replicas]:
    r = Replicas(tmp_path, redis_url, redis_prefix, moto, bucket)
    try:
        yield r
    finally:
        r.close()


def _sdk(proc: AdapterProc) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.base + "/v1", api_key=KEY, max_retries=0, timeout=120)


class Stream:
    """One SSE stream (the OpenAI SDK's images.generate(stream=True)) in a thread."""

    def __init__(self, proc: AdapterProc, prompt: str, key: str) -> None:
        self.proc = proc
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(prompt, key), daemon=True)
        self.thread.start()

    def _run(self, prompt: str, key: str) -> None:
        try:
            for event in _sdk(self.proc).images.generate(
                model="midjourney", prompt=prompt, n=1, stream=True, extra_headers={"Idempotency-Key": key}
            ):
                self.events.append(event)
        except BaseException as exc:  # reported by the test
            self.error = exc

    @property
    def completed(self) -> Any:
        done = [e for e in self.events if e.type == "image_generation.completed"]
        return done[-1] if done else None


def _fetch(proc: AdapterProc, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{proc.base}/mj/task/{job_id}/fetch", headers=MJ_AUTH, timeout=5)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def _agreed_holders(replicas: Replicas) -> dict[str, str] | None:
    seen = [{acct: v["replica"] for acct, v in replicas.accounts(p).items()} for p in replicas.alive().values()]
    first = seen[0]
    return first if all(first.values()) and all(v == first for v in seen) else None


def _ended(proc: AdapterProc, job_id: str) -> dict[str, Any] | None:
    task = _fetch(proc, job_id)
    return task if task["status"] in ("SUCCESS", "FAILURE", "CANCEL") else None


def test_a_replica_dies_mid_run_and_nobody_notices(replicas: Replicas) -> None:
    names = ["a", "b", "c"]
    for name in names:
        replicas.start(name)
    for proc in replicas.procs.values():
        proc.wait_ready(40, accounts=2)

    # each replica's log lines carry its id
    assert all(f"[{n}] " in p.log_text() for n, p in replicas.procs.items())

    # each account is driven by exactly one replica, and every replica agrees on which
    views = {n: replicas.accounts(p) for n, p in replicas.procs.items()}
    # ...and the accounts are spread: two replicas hold one each (the fair share), one waits
    holders = wait_for(
        lambda: (h := _agreed_holders(replicas)) and len(set(h.values())) == 2 and h, 20, "every replica to agree on a spread"
    )
    assert set(holders) == {"acct-1", "acct-2"}, views
    victim_name = holders["acct-1"]
    victim = replicas.procs[victim_name]
    survivors = [replicas.procs[n] for n in names if n != victim_name]
    run = secrets.token_hex(3)

    # 30 jobs: streams opened on survivors (half with a second stream on the other survivor,
    # attached by the same Idempotency-Key), /mj submits on every replica, the victim included
    streams: list[Stream] = []
    mj_ids: list[str] = []
    for i in range(N_JOBS):
        prompt = f"harbour {run}x{i:02d} at dusk"
        if i % 3 == 2:
            target = replicas.procs[names[(i // 3) % 3]]  # a, b, c in turn
            r = httpx.post(target.base + "/mj/submit/imagine", headers=MJ_AUTH, json={"prompt": prompt}, timeout=10)
            assert r.status_code == 200 and r.json()["code"] in (1, 22), r.text
            mj_ids.append(r.json()["result"])
        else:
            key = f"idem-{run}-{i}"
            first = survivors[i % 2]
            streams.append(Stream(first, prompt, key))
            if i % 2 == 0:
                time.sleep(0.05)  # the first request creates the job; this one attaches to it
                streams.append(Stream(survivors[(i + 1) % 2], prompt, key))

    # kill the holder of acct-1 while jobs run on it
    wait_for(lambda: len([j for j in replicas.sim.jobs() if j["state"] == "running"]) >= 3, 30, "jobs running at the simulator")
    assert _agreed_holders(replicas) == holders, "the accounts moved before the kill"
    killed_at = time.time()
    killed_mono = time.monotonic()
    victim.kill()

    # the account is held by another replica within 20 s, seen from every survivor
    def moved() -> bool:
        return all(
            (acct := replicas.accounts(p)["acct-1"])["replica"] not in (None, victim_name) and acct["state"] == "ready" for p in survivors
        )

    wait_for(moved, 20, "acct-1 to be held by a surviving replica")
    moved_after = time.time() - killed_at
    assert moved_after > 1, "the account moved at once: was the victim its holder?"

    # the take-over is counted where it happened
    taker = replicas.procs[replicas.accounts(survivors[0])["acct-1"]["replica"]]
    metrics = httpx.get(taker.base + "/metrics", headers=AUTH, timeout=5).text
    acquired = [line for line in metrics.splitlines() if line.startswith('mj_cluster_events_total{kind="acquired"}')]
    assert acquired and int(acquired[0].split()[-1]) >= 1, metrics
    assert "mj_cluster_accounts_held" in metrics

    # every stream on a survivor completes, every job ends in SUCCESS
    for s in streams:
        s.thread.join(timeout=150)
        assert not s.thread.is_alive(), "a stream never ended"
        assert s.error is None, f"stream on {s.proc.base} failed: {s.error!r}\n{replicas.evidence()}"
        assert s.completed is not None, f"stream without a completed event: {[e.type for e in s.events]}"
    stream_jobs = {s.completed.job_id for s in streams}
    assert len(stream_jobs) == N_JOBS - len(mj_ids), "two streams of one Idempotency-Key got different jobs"
    final = {}
    for job_id in [*mj_ids, *stream_jobs]:
        final[job_id] = wait_for(lambda job_id=job_id: _ended(survivors[0], job_id), 90, f"job {job_id} to end")
    statuses = Counter(t["status"] for t in final.values())
    assert statuses == {"SUCCESS": N_JOBS}, f"{statuses}: {[t.get('failReason') for t in final.values() if t['status'] != 'SUCCESS']}\n{replicas.evidence()}"

    # zero duplicates at Midjourney: one imagine per prompt
    per_prompt = Counter(j["prompt"].split(" ")[1] for j in replicas.sim.jobs() if j["action"].lower() == "imagine" and run in j["prompt"])
    assert len(per_prompt) == N_JOBS and set(per_prompt.values()) == {1}, per_prompt

    # every image URL answers on every surviving replica (the images are in the bucket)
    for t in final.values():
        path = httpx.URL(t["imageUrl"]).path
        for p in survivors:
            r = httpx.get(p.base + path, timeout=10)
            assert r.status_code == 200 and r.content[:4] == b"\x89PNG", (p.base, path, r.status_code)
    for s in streams:
        path = httpx.URL(s.completed.url).path
        assert all(httpx.get(p.base + path, timeout=10).status_code == 200 for p in survivors)

    # webhooks: every job's final event arrives, and no event twice (a delivery the killed
    # replica was making when it died may be made again by another: that is at-least-once)
    def finals() -> set[str]:
        return {a.task["id"] for a in replicas.receiver.accepted() if a.task.get("status") == "SUCCESS"}

    # (a task's events go out in order: one the killed replica was delivering holds up the
    # task's later events until its claim runs out)
    wait_for(lambda: set(final) <= finals(), 45, "a webhook for every finished job")
    accepted = replicas.receiver.accepted()
    by_id = Counter(a.id for a in accepted)
    twice = {i for i, n in by_id.items() if n > 1}
    # An event may come twice only when the killed replica had delivered it but not yet recorded
    # that (the receiver's 200 and the victim's outbox delete are two steps): then its first copy
    # came shortly before the kill and the second after it, from a survivor once the claim ran
    # out. Shortly: on a loaded machine (three replicas, a simulator and S3 on two cores) the
    # victim's record may lag its delivery by seconds, never by a claim's length.
    when = {i: [round(a.at - killed_mono, 2) for a in accepted if a.id == i] for i in twice}
    explained = {i for i, at in when.items() if len(at) == 2 and -5 <= at[0] <= 0 < at[1]}
    assert twice <= explained, f"webhook events delivered twice (seconds from the kill): {when}"

    # what only an account's holder can do, asked of a replica that does not drive it
    holders = wait_for(lambda: _agreed_holders(replicas), 15, "the survivors to agree on the holders")

    def elsewhere(account: str) -> AdapterProc:
        return next(p for n, p in replicas.procs.items() if p.alive and n != holders[account])

    parent = final[mj_ids[0]]
    account = parent["properties"]["discordInstanceId"]
    asker = elsewhere(account)
    u1 = next(b["customId"] for b in parent["buttons"] if b.get("label") == "U1")
    r = httpx.post(asker.base + "/mj/submit/action", headers=MJ_AUTH, json={"taskId": parent["id"], "customId": u1}, timeout=10)
    assert r.status_code == 200 and r.json()["code"] in (1, 22), r.text
    upscale = wait_for(lambda: _ended(asker, r.json()["result"]), 60, "the U1 follow-up to end")
    assert upscale["status"] == "SUCCESS" and upscale["properties"]["discordInstanceId"] == account, upscale

    seed = httpx.get(f"{asker.base}/v1/jobs/{parent['id']}/seed", headers=AUTH, timeout=90)
    assert seed.status_code == 200 and seed.json()["seed"].isdigit(), seed.text

    r = httpx.post(f"{asker.base}/v1/accounts/{account}/pause", headers=AUTH, json={"reason": "maintenance window"}, timeout=10)
    assert r.status_code == 200, r.text
    holder = replicas.procs[holders[account]]
    wait_for(lambda: replicas.accounts(holder)[account]["state"] == "paused", 10, "the holder to pause the account")
    assert replicas.accounts(holder)[account]["reason"] == "maintenance window"
    assert httpx.post(f"{asker.base}/v1/accounts/{account}/resume", headers=AUTH, timeout=10).status_code == 200
    wait_for(lambda: replicas.accounts(holder)[account]["state"] == "ready", 10, "the holder to resume the account")

    replicas.sim.must_fault("stall-next-job")  # it waits to start for ever, until cancelled
    slow = httpx.post(asker.base + "/mj/submit/imagine", headers=MJ_AUTH, json={"prompt": f"to be cancelled {run}"}, timeout=10).json()
    job_id = slow["result"]
    wait_for(lambda: any(f"cancelled {run}" in j["prompt"] for j in replicas.sim.jobs()), 30, "the job to reach the simulator")
    running = wait_for(lambda: (t := _fetch(asker, job_id))["status"] in ("SUBMITTED", "IN_PROGRESS") and t, 30, "the job to be seen running")
    time.sleep(0.5)  # its progress message reaches the holder
    canceller = elsewhere(running["properties"]["discordInstanceId"])
    r = httpx.post(f"{canceller.base}/mj/task/{job_id}/cancel", headers=MJ_AUTH, timeout=30)
    assert r.status_code == 200 and r.json()["code"] == 1, r.text
    assert _fetch(canceller, job_id)["status"] == "CANCEL"
    wait_for(lambda: any(j["state"] == "cancelled" and run in j["prompt"] and "cancelled" in j["prompt"] for j in replicas.sim.jobs()), 15, "the simulator to see the job cancelled (❌ pressed by the holder)")

    # SIGTERM the next holder: its accounts move at once, not after the lease TTL
    holders = {acct: v["replica"] for acct, v in replicas.accounts(survivors[0]).items()}
    leaving_name = holders["acct-1"]
    leaving = replicas.procs[leaving_name]
    last_name = next(n for n, p in replicas.procs.items() if p.alive and n != leaving_name)
    last = replicas.procs[last_name]
    leaving.signal(signal.SIGTERM)
    termed_at = time.monotonic()
    wait_for(
        lambda: all(a["replica"] == last_name and a["state"] == "ready" for a in replicas.accounts(last).values()),
        LEASE_TTL,
        "the last replica to hold every account",
    )
    handover = time.monotonic() - termed_at
    assert handover < LEASE_TTL - 1, f"hand-over took {handover:.1f}s: it waited for the TTL"
    leaving.wait_exit(20)

    # the last replica alone runs new work on both accounts
    client = _sdk(last)
    results = [client.images.generate(model="midjourney", prompt=f"after {run} {i}", n=1) for i in range(2)]
    assert all(r.data[0].url for r in results)
    print(f"acct-1 moved {moved_after:.1f}s after SIGKILL; SIGTERM hand-over {handover:.1f}s")
