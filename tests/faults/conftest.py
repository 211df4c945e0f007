"""Fixtures of the fault matrix: a `cluster` (simulator + adapter processes) that is always torn
down, and whose evidence (events, jobs, interactions, log tails) is attached to a failed test's
report."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fault_cluster import Cluster  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        cluster = getattr(item, "funcargs", {}).get("cluster")
        if isinstance(cluster, Cluster):
            try:
                report.sections.append(("fault-matrix evidence", cluster.digest()))
            except Exception as exc:  # evidence is best effort; the failure itself stands
                report.sections.append(("fault-matrix evidence", f"(could not collect: {exc!r})"))


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Set FAULT_MATRIX_KEEP=<dir> to keep every test's logs (pytest's tmp dirs rotate)."""
    c = Cluster(tmp_path)
    keep = os.environ.get("FAULT_MATRIX_KEEP")
    try:
        yield c
    finally:
        if keep:  # while the processes still run: the digest asks them
            try:
                (tmp_path / "digest.txt").write_text(c.digest(log_lines=0))
            except Exception as exc:
                (tmp_path / "digest.txt").write_text(f"(could not collect: {exc!r})")
        c.close()
        if keep:
            dest = Path(keep) / re.sub(r"[^\w.-]+", "_", request.node.name)
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True, exist_ok=True)
            for f in [*tmp_path.glob("*.log"), tmp_path / "digest.txt"]:
                shutil.copy(f, dest / f.name)
