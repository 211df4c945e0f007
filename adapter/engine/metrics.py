"""Prometheus metrics, rendered in the text exposition format (no client library needed)."""

from __future__ import annotations

from collections import Counter

from adapter.domain.jobs import Job, JobStatus
from adapter.engine.scheduler import Scheduler

# seconds; Midjourney jobs run from seconds (turbo) to many minutes (relax)
_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        self.finished: Counter[tuple[str, str, str]] = Counter()  # (status, action, category)
        self.submitted: Counter[str] = Counter()  # action
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = {}
        self._count: Counter[str] = Counter()
        self._seen_submit: set[str] = set()
        self._seen_finish: set[str] = set()

    def observe(self, job: Job) -> None:
        """A JobBus listener: counts each job once when it starts and once when it ends."""
        if job.id not in self._seen_submit and job.status is not JobStatus.MODAL:
            self._seen_submit.add(job.id)
            self.submitted[job.action.value] += 1
        if job.status.finished and job.id not in self._seen_finish:
            self._seen_finish.add(job.id)
            self._seen_submit.discard(job.id)
            category = job.error_category.value if job.error_category else ""
            self.finished[(job.status.value, job.action.value, category)] += 1
            if job.finished_at and job.status is JobStatus.SUCCESS:
                seconds = (job.finished_at - job.created_at) / 1000
                action = job.action.value
                buckets = self._hist.setdefault(action, [0] * len(_BUCKETS))
                for i, edge in enumerate(_BUCKETS):
                    if seconds <= edge:
                        buckets[i] += 1
                self._sum[action] = self._sum.get(action, 0.0) + seconds
                self._count[action] += 1
            # keep the seen-set bounded: a finished job is never counted again anyway
            if len(self._seen_finish) > 100_000:
                self._seen_finish.clear()

    def render(
        self,
        scheduler: Scheduler,
        running_by_status: dict[tuple[str, str], int],
        *,
        cluster: dict[str, int] | None = None,
        repeats: tuple[int, int] | None = None,
    ) -> str:
        lines: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        head("mj_jobs_submitted_total", "counter", "Jobs accepted, by action.")
        for action, n in sorted(self.submitted.items()):
            lines.append(f'mj_jobs_submitted_total{{action="{action}"}} {n}')
        head("mj_jobs_finished_total", "counter", "Jobs that ended, by status, action and error category.")
        for (status, action, cat), n in sorted(self.finished.items()):
            lines.append(f'mj_jobs_finished_total{{status="{status}",action="{action}",category="{cat}"}} {n}')
        head("mj_jobs", "gauge", "Jobs in the store by status and action.")
        for (status, action), n in sorted(running_by_status.items()):
            lines.append(f'mj_jobs{{status="{status}",action="{action}"}} {n}')
        head("mj_queue_depth", "gauge", "Jobs waiting for an account slot.")
        lines.append(f"mj_queue_depth {scheduler.queue_depth()}")
        head("mj_account_up", "gauge", "1 when the account is ready, by account and state.")
        head_running = []
        for st in scheduler.statuses():
            lines.append(f'mj_account_up{{account="{st.id}",kind="{st.kind}",state="{st.state.value}"}} {1 if st.state.value == "ready" else 0}')
            head_running.append(f'mj_account_running_jobs{{account="{st.id}"}} {st.running}')
        head("mj_account_running_jobs", "gauge", "Jobs running on each account.")
        lines.extend(head_running)
        head("mj_job_duration_seconds", "histogram", "Time from submit to success.")
        for action, buckets in sorted(self._hist.items()):
            for edge, n in zip(_BUCKETS, buckets):
                lines.append(f'mj_job_duration_seconds_bucket{{action="{action}",le="{edge:g}"}} {n}')
            lines.append(f'mj_job_duration_seconds_bucket{{action="{action}",le="+Inf"}} {self._count[action]}')
            lines.append(f'mj_job_duration_seconds_sum{{action="{action}"}} {self._sum[action]:.3f}')
            lines.append(f'mj_job_duration_seconds_count{{action="{action}"}} {self._count[action]}')
        if repeats is not None:
            given, kept = repeats
            head("mj_http_repeat_answers_total", "counter", "Repeated reads of finished jobs answered from a kept answer, before the framework.")
            lines.append(f"mj_http_repeat_answers_total {given}")
            head("mj_http_kept_answers", "gauge", "Answers kept for repeated reads.")
            lines.append(f"mj_http_kept_answers {kept}")
        if cluster is not None:
            # this replica's side of the account leases and job hand-overs
            head("mj_cluster_events_total", "counter", "Lease and hand-over events on this replica, by kind.")
            for kind, n in sorted(cluster.items()):
                lines.append(f'mj_cluster_events_total{{kind="{kind}"}} {n}')
            head("mj_cluster_accounts_held", "gauge", "Accounts this replica drives.")
            lines.append(f"mj_cluster_accounts_held {len(scheduler.accounts())}")
        return "\n".join(lines) + "\n"
