"""The README's "Use it" examples, run as a newcomer would after its install step: the Python
blocks with the openai SDK and the command-line block, against a real keyless demo server. The
only change made to them is the server's address (a free port instead of 8080)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ServerProcess  # noqa: E402

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
USE_IT = README[README.index("## Use it") : README.index("## How requests map")]
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(USE_IT) if lang == kind]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # keyless, as the README's demo command starts it
    s = ServerProcess(tmp_path_factory.mktemp("readme"), env={"MJ_ADAPTER_API_KEYS": "", "MJ_ADAPTER_ADMIN_KEYS": ""}).start()
    yield s
    s.stop()


def test_the_python_examples_run_verbatim(server: ServerProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples save files where they run
    code = blocks("python")
    assert len(code) >= 2
    scope: dict[str, object] = {}
    for body in code:
        exec(compile(body.replace("http://127.0.0.1:8080", server.base), "README.md", "exec"), scope)  # noqa: S102
    out = capsys.readouterr().out
    assert out.count(server.base + "/images/") >= 4  # four image URLs printed
    assert "image_generation.completed" in out


def test_the_command_line_examples_run_verbatim(server: ServerProcess, tmp_path: Path) -> None:
    (sh,) = [b for b in blocks("sh") if "mj-adapter imagine" in b]
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_ADAPTER_", "OPENAI_"))}
    # the shell the server was started from knows its port; the CLI finds it from there
    env["MJ_ADAPTER_PORT"] = str(server.port)
    for line in sh.strip().splitlines():
        argv = shlex.split(line.replace(".venv/bin/", f"{bin_dir}/"))
        proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr.decode()
    assert len(list((tmp_path / "images").iterdir())) == 4
