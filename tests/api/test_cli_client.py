"""The CLI as a newcomer meets it: it finds the server the way the server was configured, names
the URL it tried when it fails, says where it saves, numbers files like the image URLs and
draws one progress bar per Midjourney job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess, free_port  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("cli")).start()
    yield s
    s.stop()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_ADAPTER_", "OPENAI_"))}
    return {**env, **extra}


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # bytes, decoded here: text mode would turn the progress line's carriage returns into newlines
    proc = subprocess.run([sys.executable, "-m", "adapter", *args], env=env, cwd=cwd, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_imagine_finds_the_server_from_its_own_settings(server: ServerProcess, tmp_path: Path) -> None:
    # the shell that started the server: its port and keys, no --base-url, no --api-key
    env = clean_env(MJ_ADAPTER_PORT=str(server.port), MJ_ADAPTER_API_KEYS=f"{KEY_A},sk-other")
    proc = cli("imagine", "a red fox in snow", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "images"
    assert f"saving to {out}" in proc.stderr
    names = sorted(p.name for p in out.iterdir())
    job = names[0].rsplit("-", 1)[0]
    assert names == [f"{job}-{i}.png" for i in range(1, 5)]  # like the tile URLs and U1-U4
    final = proc.stderr.rsplit("\r", 1)[-1].splitlines()[0]
    assert final.count("100%") == 1 and job in final, final  # one bar for the one grid job


def test_several_jobs_get_a_bar_each(server: ServerProcess, tmp_path: Path) -> None:
    proc = cli("imagine", "five foxes", "--n", "5", "--base-url", server.v1, "--api-key", KEY_A, "--out", "o", env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    final = proc.stderr.rsplit("\r", 1)[-1].splitlines()[0]
    assert len(re.findall(r"j_\w+ \[#+\] 100%", final)) == 2, final
    assert len(list((tmp_path / "o").iterdir())) == 5


def test_errors_name_the_url_tried(tmp_path: Path) -> None:
    port = free_port()
    proc = cli("imagine", "a fox", env=clean_env(MJ_ADAPTER_PORT=str(port)), cwd=tmp_path)
    assert proc.returncode == 1
    assert f"http://127.0.0.1:{port}/v1/images/generations" in proc.stderr and "--base-url" in proc.stderr
    accounts = cli("accounts", "--base-url", f"http://127.0.0.1:{port}/v1", env=clean_env(), cwd=tmp_path)
    assert accounts.returncode == 1 and f"http://127.0.0.1:{port}/v1/accounts" in accounts.stderr


def test_refusals_name_the_url_too(server: ServerProcess, tmp_path: Path) -> None:
    proc = cli("imagine", "a fox", "--base-url", server.v1, "--api-key", "sk-wrong", env=clean_env(), cwd=tmp_path)
    assert proc.returncode == 1 and f"error 401 from {server.v1}/images/generations" in proc.stderr
    assert not (tmp_path / "images").exists()  # nothing saved, no empty folder left behind
