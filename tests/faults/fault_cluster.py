"""A small cluster for fault-matrix tests: one standalone `mj-adapter simulator` process and one
`mj-adapter serve` process (restartable on the same SQLite store) driving it over loopback,
client workers that submit jobs through the OpenAI SDK and the /mj API, and the final checks.

Every wait is bounded and polls at short intervals; every process is killed by `close()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai

KEY = "sk-fault-matrix-0123456789"
OTHER_KEY = "sk-fault-matrix-other-987654"
AUTH = {"Authorization": f"Bearer {KEY}"}
MJ_AUTH = {"mj-api-secret": KEY}
FINISHED = ("SUCCESS", "FAILURE", "CANCEL")
SIM_FINISHED = ("done", "failed", "moderated", "cancelled", "refused")
PROCESSED = ("accepted", "server_error_accepted")  # interaction outcomes the bot acted on
STATUS_RETRIES = 5  # an HTTP error answer is retried this many times in a row (the SDK does 2)

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError) as exc:  # a process restarting, a half-written answer
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


# --- processes ----------------------------------------------------------------------------------


class SimulatorProc:
    """`mj-adapter simulator` on a free loopback port."""

    def __init__(self, tmp: Path, *, speed: float, accounts: int, seed: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "simulator.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapter", "simulator", "--host", "127.0.0.1", "--port", str(self.port),
             "--speed", str(speed), "--accounts", str(accounts), "--seed", str(seed)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_")},
        )
        self.http = httpx.Client(base_url=self.base, timeout=5)
        try:
            self.accounts: list[dict[str, Any]] = wait_for(self._accounts, 20, "the simulator to answer")
        except BaseException:
            self.stop()
            raise

    def _accounts(self) -> list[dict[str, Any]] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {self.proc.returncode}:\n{_tail(self.log_path, 50)}")
        r = self.http.get("/_simulator/accounts", timeout=1)
        return r.json() if r.status_code == 200 else None

    def account_config(self, index: int, **overrides: Any) -> dict[str, Any]:
        acct = self.accounts[index]
        return {
            "id": f"acct-{index + 1}",
            "token": acct["token"],
            "guild_id": acct["guild_id"],
            "channel_id": acct["channel_id"],
            "rest_base": self.base + "/api/v9",
            "inpaint_submit_url": self.base + "/inpaint/api/submit-job",
            **overrides,
        }

    # reads
    def interactions(self) -> list[dict[str, Any]]:
        return self.http.get("/_simulator/interactions").json()

    def jobs(self) -> list[dict[str, Any]]:
        return self.http.get("/_simulator/jobs").json()

    def accepted_imagines(self) -> list[dict[str, Any]]:
        """Every /imagine the bot acted on (`server_error_accepted`: processed, but answered 5xx)."""
        return [i for i in self.interactions() if i["type"] == 2 and i["name"] == "imagine" and i["outcome"] in PROCESSED]

    # faults
    def fault(self, name: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """POST /_simulator/faults/<name>; the caller decides what a non-200 means."""
        return self.http.post(f"/_simulator/faults/{name}", json=body or {})

    def must_fault(self, name: str, body: dict[str, Any] | None = None) -> Any:
        r = self.fault(name, body)
        assert r.status_code == 200, f"fault {name} {body}: HTTP {r.status_code} {r.text}"
        return r.json().get("result")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.http.close()
        self._log.close()


class AdapterProc:
    """One incarnation of `mj-adapter serve` (a fresh port each time, the same data dir)."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in close_log()
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_")},
            "MJ_ADAPTER_DATA_DIR": str(data_dir),
            "MJ_ADAPTER_API_KEYS": f"{KEY},{OTHER_KEY}",
            # the harness reads /v1/accounts with KEY, which takes an admin key
            "MJ_ADAPTER_ADMIN_KEYS": KEY,
            "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "MJ_ADAPTER_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self.signalled_at: float | None = None
        self.exited_at: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float, accounts: int) -> None:
        """Until /readyz answers 200 and every configured account is `ready`."""

        def ready() -> bool:
            if not self.alive:
                raise RuntimeError(f"adapter exited with {self.proc.returncode}:\n{_tail(self.log_path, 60)}")
            if httpx.get(self.base + "/readyz", timeout=1).status_code != 200:
                return False
            rows = httpx.get(self.base + "/v1/accounts", headers=AUTH, timeout=1).json()
            return len(rows) == accounts and all(r["state"] == "ready" for r in rows)

        wait_for(ready, timeout, f"adapter on :{self.port} to be ready with {accounts} accounts", interval=0.05)

    def signal(self, sig: int) -> None:
        if self.alive:
            self.signalled_at = time.monotonic()
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> float:
        """Seconds from the signal to the exit; raises subprocess.TimeoutExpired."""
        self.proc.wait(timeout=timeout)
        self.exited_at = time.monotonic()
        return self.exited_at - (self.signalled_at or self.exited_at)

    def kill(self) -> None:
        if self.alive:
            self.signal(signal.SIGKILL)
            self.wait_exit(10)
        self._log.flush()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


# --- client jobs --------------------------------------------------------------------------------


@dataclass
class ClientJob:
    """One job as a client sees it: submitted, retried across restarts, followed to its end."""

    index: int
    kind: str  # "sdk" (OpenAI images.generate) | "mj" (/mj/submit/imagine + fetch polling)
    token: str
    prompt: str
    idempotency_key: str
    job_id: str | None = None
    status: str | None = None  # the final status the client saw (None: gave up at its deadline)
    fail_reason: str | None = None
    image_urls: list[str] = field(default_factory=list)
    retries: int = 0
    notes: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None

    def note(self, text: str) -> None:
        if len(self.notes) < 40:
            self.notes.append(f"{time.monotonic():.2f} {text}")

    def summary(self) -> str:
        notes = "; ".join(self.notes[-6:])
        return (f"#{self.index:02d} {self.kind:3} {self.token} id={self.job_id} status={self.status} "
                f"fail={self.fail_reason!r} images={len(self.image_urls)} retries={self.retries} notes=[{notes}]")


class Cluster:
    """A simulator, an adapter on top of it (restartable), client workers and the final checks."""

    def __init__(self, tmp: Path, *, speed: float = 30, accounts: int = 2, seed: int = 7) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = "fm" + uuid.uuid4().hex[:6]
        self.n_accounts = accounts
        self.speed = speed
        self.sim = SimulatorProc(tmp, speed=speed, accounts=accounts, seed=seed)
        self.adapters: list[AdapterProc] = []
        self.env: dict[str, str] = {}
        self.jobs: list[ClientJob] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.deadline = float("inf")
        self.submitted_at: float | None = None
        self.events: list[str] = []  # what the test did, when (monotonic)

    # --- adapter lifecycle -------------------------------------------------------------------

    def configure(self, **account_overrides: Any) -> None:
        """Account tables for every simulated account (pacing short but not zero, so sends are
        spread out and a fault can land while jobs are being sent)."""
        defaults: dict[str, Any] = {"min_gap_seconds": 0.2, "gap_jitter_seconds": 0}
        defaults.update(account_overrides)
        accounts = [self.sim.account_config(i, **defaults) for i in range(self.n_accounts)]
        self.env = {"MJ_ADAPTER_ACCOUNTS": json.dumps(accounts)}

    @property
    def adapter(self) -> AdapterProc:
        return self.adapters[-1]

    @property
    def base(self) -> str:
        """The current incarnation's base URL (clients look it up on every attempt)."""
        return self.adapter.base

    def start_adapter(self, ready_timeout: float = 40) -> AdapterProc:
        if not self.env:
            self.configure()
        n = len(self.adapters) + 1
        proc = AdapterProc(self.data_dir, self.tmp / f"adapter-{n}.log", self.env)
        self.adapters.append(proc)
        self.event(f"adapter #{n} starting on :{proc.port}")
        proc.wait_ready(ready_timeout, self.n_accounts)
        self.event(f"adapter #{n} ready")
        return proc

    def kill_adapter(self) -> None:
        self.event("SIGKILL adapter")
        self.adapter.kill()

    def term_adapter(self, timeout: float = 20) -> float:
        """SIGTERM; the seconds it took to exit (AssertionError when it does not within `timeout`)."""
        self.event("SIGTERM adapter")
        self.adapter.signal(signal.SIGTERM)
        try:
            took = self.adapter.wait_exit(timeout)
        except subprocess.TimeoutExpired:
            self.adapter.kill()
            raise AssertionError(f"the adapter did not exit within {timeout}s of SIGTERM") from None
        self.event(f"adapter exited {took:.2f}s after SIGTERM, code {self.adapter.proc.returncode}")
        return took

    def restart_adapter(self) -> AdapterProc:
        assert not self.adapter.alive, "restart_adapter: the previous incarnation is still running"
        return self.start_adapter()

    def event(self, text: str) -> None:
        self.events.append(f"{time.monotonic():.2f} {text}")

    # --- adapter reads -----------------------------------------------------------------------

    def accounts(self) -> list[dict[str, Any]]:
        return httpx.get(self.base + "/v1/accounts", headers=AUTH, timeout=2).json()

    def adapter_backlog(self) -> int:
        """Jobs waiting in the adapter's own queues (not yet sent to Midjourney)."""
        return sum(a["queued"] for a in self.accounts())

    def tasks(self) -> list[dict[str, Any]]:
        r = httpx.get(self.base + "/mj/task/list", headers=MJ_AUTH, timeout=5)
        r.raise_for_status()
        return r.json()

    def store_jobs(self) -> list[Any]:
        """Every job in the SQLite store, read straight from the file (the adapter must be down)."""
        assert not self.adapter.alive, "store_jobs reads the file of a stopped adapter"
        from adapter.stores.sqlite import SqliteJobStore

        async def read() -> list[Any]:
            store = SqliteJobStore(self.data_dir / "jobs.db")
            await store.open()
            try:
                return await store.list_jobs(limit=1000)
            finally:
                await store.close()

        return asyncio.run(read())

    # --- simulator reads ---------------------------------------------------------------------

    def token_of(self, prompt: str) -> str | None:
        m = re.search(rf"\b({self.run_id}x\d\d)\b", prompt or "")
        return m.group(1) if m else None

    def sim_jobs(self) -> list[dict[str, Any]]:
        return [j for j in self.sim.jobs() if j["action"].lower() == "imagine"]

    def sim_running(self, min_progress: int = 1) -> list[dict[str, Any]]:
        return [j for j in self.sim_jobs() if j["state"] == "running" and j["progress"] >= min_progress]

    def sim_idle(self) -> bool:
        return all(j["state"] in SIM_FINISHED for j in self.sim.jobs())

    # --- clients -----------------------------------------------------------------------------

    def submit(self, n: int, budget: float) -> list[ClientJob]:
        """Start n concurrent client jobs (even: OpenAI SDK, odd: /mj), each with a unique prompt
        token and its own Idempotency-Key. Every client gives up `budget` seconds from now."""
        self.submitted_at = time.monotonic()
        self.deadline = self.submitted_at + budget
        self.event(f"submitting {n} jobs (budget {budget:g}s)")
        for i in range(n):
            token = f"{self.run_id}x{i:02d}"
            kind = "sdk" if i % 2 == 0 else "mj"
            job = ClientJob(index=i, kind=kind, token=token, prompt=f"a lighthouse in a storm, study {token}",
                            idempotency_key=f"idem-{token}")
            self.jobs.append(job)
            target = self._run_sdk if kind == "sdk" else self._run_mj
            t = threading.Thread(target=self._guard, args=(target, job), name=f"client-{token}", daemon=True)
            self._threads.append(t)
            t.start()
        return self.jobs

    def _remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _guard(self, target: Callable[[ClientJob], None], job: ClientJob) -> None:
        try:
            target(job)
        except Exception as exc:  # a harness bug must show up as a failed job, not a hung test
            job.note(f"client crashed: {exc!r}")
            job.fail_reason = f"client crashed: {exc!r}"
        finally:
            job.finished_at = time.monotonic()
            job.done.set()

    def _run_sdk(self, job: ClientJob) -> None:
        status_retries = 0
        while not self._stop.is_set() and self._remaining() > 0:
            base = self.base
            client = openai.OpenAI(base_url=base + "/v1", api_key=KEY, max_retries=0)
            try:
                result = client.images.generate(
                    model="midjourney",
                    prompt=job.prompt,
                    n=4,
                    extra_headers={"Idempotency-Key": job.idempotency_key},
                    timeout=httpx.Timeout(max(self._remaining(), 0.1), connect=2.0),
                )
            except openai.APIConnectionError as exc:  # also APITimeoutError
                job.retries += 1
                status_retries = 0
                job.note(f"sdk {type(exc).__name__} on {base}")
                time.sleep(0.1)
                continue
            except openai.APIStatusError as exc:
                # the SDK's rule: x-should-retry decides, else 408/409/429/5xx are retried
                should = exc.response.headers.get("x-should-retry")
                retryable = should == "true" or (should != "false" and (exc.status_code in (408, 409, 429) or exc.status_code >= 500))
                status_retries += 1
                if retryable and status_retries <= STATUS_RETRIES:
                    job.retries += 1
                    job.note(f"sdk HTTP {exc.status_code}: {str(exc.body)[:120]}")
                    time.sleep(min(float(exc.response.headers.get("retry-after", "0.2") or 0.2), 0.5))
                    continue
                job.status = "FAILURE"
                job.fail_reason = f"HTTP {exc.status_code}: {exc.body}"
                job.note(job.fail_reason)
                return
            finally:
                client.close()
            data = result.model_dump()
            job.job_id = (data.get("job_ids") or [None])[0] or data["data"][0].get("job_id")
            job.image_urls = [d["url"] for d in data["data"] if d.get("url")]
            job.status = "SUCCESS"
            job.note("sdk SUCCESS")
            return
        job.note("sdk gave up at the deadline")

    def _run_mj(self, job: ClientJob) -> None:
        headers = {**MJ_AUTH, "Idempotency-Key": job.idempotency_key}
        status_retries = 0
        with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0)) as http:
            # submit, retrying with the same key until an answer arrives
            while job.job_id is None:
                if self._stop.is_set() or self._remaining() <= 0:
                    job.note("mj gave up submitting at the deadline")
                    return
                base = self.base
                try:
                    r = http.post(base + "/mj/submit/imagine", json={"prompt": job.prompt}, headers=headers)
                except httpx.TransportError as exc:
                    job.retries += 1
                    job.note(f"mj submit {type(exc).__name__} on {base}")
                    time.sleep(0.1)
                    continue
                if (r.status_code >= 500 or r.status_code == 429) and (status_retries := status_retries + 1) <= STATUS_RETRIES:
                    job.retries += 1
                    job.note(f"mj submit HTTP {r.status_code}")
                    time.sleep(0.2)
                    continue
                try:
                    body = r.json()
                except ValueError:
                    body = {"text": r.text[:200]}
                if body.get("code") in (1, 22) and body.get("result"):
                    job.job_id = body["result"]
                    job.note(f"mj submitted code={body['code']}")
                elif body.get("code") == 23:  # queue full: try later
                    job.retries += 1
                    job.note("mj submit code 23")
                    time.sleep(0.3)
                else:
                    job.status = "FAILURE"
                    job.fail_reason = f"submit answered HTTP {r.status_code} {body}"
                    job.note(job.fail_reason)
                    return
            # poll
            misses = 0
            while not self._stop.is_set() and self._remaining() > 0:
                base = self.base
                try:
                    r = http.get(f"{base}/mj/task/{job.job_id}/fetch", headers=MJ_AUTH)
                except httpx.TransportError as exc:
                    job.retries += 1
                    job.note(f"mj fetch {type(exc).__name__}")
                    time.sleep(0.1)
                    continue
                if r.status_code != 200:
                    # a task the adapter forgot (404) or a server error: give up after ~5 s of it
                    misses += 1
                    job.note(f"mj fetch HTTP {r.status_code}")
                    if misses >= 50:
                        job.status = "FAILURE"
                        job.fail_reason = f"fetch answered HTTP {r.status_code} {r.text[:200]}"
                        return
                    time.sleep(0.1)
                    continue
                misses = 0
                task = r.json()
                if task["status"] in FINISHED:
                    job.status = task["status"]
                    job.fail_reason = task.get("failReason")
                    job.image_urls = [task["imageUrl"]] if task.get("imageUrl") else []
                    job.note(f"mj {task['status']}")
                    return
                time.sleep(0.1)
            job.note("mj gave up polling at the deadline")

    def wait_clients(self) -> float:
        """Until every client job has ended (or the shared deadline passed); the seconds since
        submission."""
        for job in self.jobs:
            job.done.wait(timeout=max(self._remaining(), 0) + 5)
        self.event("clients done")
        return time.monotonic() - (self.submitted_at or time.monotonic())

    # --- the final checks ----------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Every rule of the fault matrix; returns the problems (empty: all good)."""
        problems: list[str] = []
        tokens = {j.token: j for j in self.jobs}

        # 1. every client saw SUCCESS, in bounded time, with images
        for j in self.jobs:
            if j.status != "SUCCESS":
                problems.append(f"client job not SUCCESS: {j.summary()}")
            elif not j.image_urls:
                problems.append(f"client job SUCCESS without images: {j.summary()}")
        late = [j for j in self.jobs if j.finished_at and j.finished_at > self.deadline]
        if late or any(not j.done.is_set() for j in self.jobs):
            problems.append(f"jobs still going at the deadline (did something wait for a job timeout?): {[j.token for j in late]}")

        with httpx.Client(timeout=5) as http:
            for j in self.jobs:
                for url in j.image_urls:
                    self._check_url(http, url, f"client {j.token}", problems)

            # 2. the adapter: exactly one job per prompt, each finished SUCCESS with its images
            adapter_jobs: dict[str, list[dict[str, Any]]] = {}
            try:
                tasks = self.tasks()
            except (httpx.HTTPError, OSError) as exc:
                problems.append(f"cannot list the adapter's tasks: {exc!r}")
                tasks = []
            for t in tasks:
                tok = self.token_of(t.get("prompt", ""))
                if tok is None:
                    problems.append(f"adapter task with no known prompt token: {t['id']} {t.get('prompt')!r}")
                    continue
                adapter_jobs.setdefault(tok, []).append(t)
            for tok, job in tokens.items():
                found = adapter_jobs.get(tok, [])
                if len(found) != 1:
                    problems.append(f"{tok}: {len(found)} adapter jobs (want 1): {[(t['id'], t['status']) for t in found]}")
                for t in found:
                    if job.job_id and t["id"] != job.job_id:
                        problems.append(f"{tok}: client got job {job.job_id} but the adapter also has {t['id']} ({t['status']})")
                    if t["status"] != "SUCCESS":
                        problems.append(f"{tok}: adapter task {t['id']} {t['status']} progress={t.get('progress')} failReason={t.get('failReason')!r}")
                    r = http.get(f"{self.base}/v1/jobs/{t['id']}", headers=AUTH)
                    if r.status_code != 200:
                        problems.append(f"{tok}: GET /v1/jobs/{t['id']} answered {r.status_code}")
                        continue
                    view = r.json()
                    if view["status"] not in FINISHED:
                        problems.append(f"{tok}: /v1/jobs/{t['id']} still {view['status']}")
                    if view["status"] == "SUCCESS":
                        if len(view.get("image_urls", [])) != 4:
                            problems.append(f"{tok}: /v1/jobs/{t['id']} has {len(view.get('image_urls', []))} image_urls")
                        for url in view.get("image_urls", []):
                            self._check_url(http, url, f"/v1/jobs {tok}", problems)

        # 3. the simulator: one accepted /imagine per job, one simulated job per prompt, all ended,
        #    and each is the very job the adapter reports (same job hash)
        wait_until_idle = time.monotonic() + 3
        while not self.sim_idle() and time.monotonic() < wait_until_idle:
            time.sleep(0.05)
        accepted = self.sim.accepted_imagines()
        if len(accepted) != len(tokens):
            problems.append(f"simulator accepted {len(accepted)} /imagine interactions for {len(tokens)} jobs")
        sim_by_token: dict[str, list[dict[str, Any]]] = {}
        for sj in self.sim.jobs():
            if sj["state"] not in SIM_FINISHED:
                problems.append(f"simulator job still {sj['state']}: {sj['hash']} {sj['action']} {sj['prompt']!r} progress={sj['progress']}")
            if sj["action"].lower() != "imagine":
                continue
            tok = self.token_of(sj["prompt"])
            if tok is None:
                problems.append(f"simulator job with no known prompt token: {sj['hash']} {sj['prompt']!r}")
                continue
            sim_by_token.setdefault(tok, []).append(sj)
        for tok in tokens:
            found = sim_by_token.get(tok, [])
            if len(found) != 1:
                problems.append(f"{tok}: {len(found)} simulator jobs (want 1): {[(s['hash'][:8], s['state']) for s in found]}")
            adapter_hashes = {t["properties"].get("messageHash") for t in adapter_jobs.get(tok, [])}
            for sj in found:
                if sj["state"] == "done" and sj["hash"] not in adapter_hashes:
                    problems.append(f"{tok}: simulator job {sj['hash']} is not the one the adapter reports ({adapter_hashes})")
        return problems

    def _check_url(self, http: httpx.Client, url: str, what: str, problems: list[str]) -> None:
        # Each incarnation listens on a fresh port, and an image URL names the address it was
        # requested through; in production the address is stable. Ask the running incarnation for
        # the same path.
        for proc in self.adapters:
            if url.startswith(proc.base + "/"):
                url = self.base + url[len(proc.base):]
                break
        try:
            r = http.get(url)
            if r.status_code != 200 or not r.content:
                problems.append(f"{what}: image {url} answered {r.status_code}")
        except httpx.HTTPError as exc:
            problems.append(f"{what}: image {url} failed: {exc!r}")

    # --- evidence ------------------------------------------------------------------------------

    def digest(self, log_lines: int = 120) -> str:
        """What happened, for a failure report: test events, client jobs, adapter tasks, the
        simulator's interactions and jobs, and the tails of every log."""
        out: list[str] = [f"run {self.run_id}, logs in {self.tmp}", "== events =="]
        out += self.events
        out.append("== client jobs ==")
        out += [j.summary() for j in self.jobs]
        out.append("== adapter accounts and tasks ==")
        try:
            if self.adapters and self.adapter.alive:
                out += [f"{a['id']} {a['state']} running={a['running']} queued={a['queued']} reason={a.get('reason')!r}" for a in self.accounts()]
                for t in self.tasks():
                    out.append(f"{t['id']} {self.token_of(t.get('prompt', ''))} {t['status']} {t.get('progress')} "
                               f"hash={t['properties'].get('messageHash')} acct={t['properties'].get('discordInstanceId')} "
                               f"fail={t.get('failReason')!r}")
            else:
                out.append("(adapter not running)")
        except Exception as exc:
            out.append(f"(unavailable: {exc!r})")
        out.append("== simulator interactions ==")
        try:
            inter = self.sim.interactions()
            out.append(str(Counter((i["name"], i["outcome"]) for i in inter)))
            out += [f"{i['at']:.2f} {i['user_id'][-4:]} {i['name']} {i['outcome']} nonce={i['nonce']}" for i in inter[-60:]]
            out.append("== simulator jobs ==")
            out += [f"{j['hash'][:8]} {j['action']} {self.token_of(j['prompt'])} {j['state']} {j['progress']} user={j['user_id'][-4:]}"
                    for j in self.sim.jobs()]
        except Exception as exc:
            out.append(f"(unavailable: {exc!r})")
        for proc in self.adapters:
            text = proc.log_text().splitlines()
            notable = [ln for ln in text if re.search(r"WARNING|ERROR|CRITICAL|Traceback|never retrieved|destroyed", ln)]
            out.append(f"== {proc.log_path.name}: {len(text)} lines; warnings/errors ({len(notable)}) ==")
            out += notable[-60:]
            out.append(f"== {proc.log_path.name}: last {log_lines} lines ==")
            out += text[-log_lines:] if log_lines > 0 else []
        out.append("== simulator log (tail) ==")
        out.append(_tail(self.sim.log_path, 40))
        return "\n".join(out)

    def close(self) -> None:
        self._stop.set()
        for proc in self.adapters:
            try:
                proc.kill()
            except Exception:
                pass
            proc._log.close()
        self.sim.stop()
        for t in self._threads:
            t.join(timeout=5)

