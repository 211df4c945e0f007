"""Run `mj-adapter serve` as a real process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

KEY_A = "sk-test-alpha-0123456789"
KEY_B = "sk-test-bravo-9876543210"
# an operator's key (MJ_ADAPTER_ADMIN_KEYS): /v1/accounts, /metrics and the full /readyz need it
ADMIN_KEY = "sk-test-admin-5555555555"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()

class ServerProcess:
    def __init__(self, data_dir: Path, *, env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        # a port picked here may be taken by someone else before the server binds it (free_port
        # closes its socket, and any client's ephemeral port may land on it): the first start of
        # such a server moves to a fresh port; a restart keeps its port (its URLs must not change)
        self._may_move = port is None
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.base + "/v1"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        for _ in range(3):
            try:
                return self._start(timeout)
            except RuntimeError:
                if not (self._may_move and "address already in use" in self.log()):
                    raise
                self.port = free_port()
                self.log_path = self.data_dir / f"server-{self.port}.log"
        return self._start(timeout)

    def _start(self, timeout: float) -> ServerProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MJ_ADAPTER_")},
            "MJ_ADAPTER_DATA_DIR": str(self.data_dir),
            "MJ_ADAPTER_API_KEYS": f"{KEY_A},{KEY_B}",
            "MJ_ADAPTER_ADMIN_KEYS": ADMIN_KEY,
            "MJ_ADAPTER_SIMULATOR_SPEED": "400",
            "MJ_ADAPTER_LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapter", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    self._may_move = False
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class SimulatorProcess:
    def __init__(self, tmp: Path, speed: float, accounts: int = 1) -> None:
        self.port = free_port()
        self.log_path = tmp / "simulator.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapter", "simulator", "--port", str(self.port), "--speed", str(speed), "--accounts", str(accounts)],
            stdout=open(self.log_path, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.base + "/_simulator/accounts", timeout=1)
                if r.status_code == 200:
                    self.accounts: list[dict[str, Any]] = r.json()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.proc.kill()
        raise TimeoutError(self.log_path.read_text())

    def interactions(self) -> list[dict[str, Any]]:
        return httpx.get(self.base + "/_simulator/interactions", timeout=5).json()

    def stop(self) -> None:
        stop_process(self.proc)


    def account_config(self, index: int = 0, **overrides: Any) -> dict[str, Any]:
        """An adapter account table pointing at this simulator."""
        acct = self.accounts[index]
        return {
            "token": acct["token"],
            "guild_id": acct["guild_id"],
            "channel_id": acct["channel_id"],
            "rest_base": self.base + "/api/v9",
            "inpaint_submit_url": self.base + "/inpaint/api/submit-job",
            "min_gap_seconds": 0.01,
            "gap_jitter_seconds": 0,
            **overrides,
        }

    def fault(self, name: str, body: dict[str, Any] | None = None) -> None:
        httpx.post(f"{self.base}/_simulator/faults/{name}", json=body or {}, timeout=5).raise_for_status()
