"""A real S3-compatible server on loopback for the image store tests: moto's server mode, run as
a subprocess on a free port. Each test takes its own bucket (see `new_bucket`) and empties it
afterwards, so one server serves a whole session."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# moto accepts any credentials; these only have to be present and are never real
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "mj-test-access", "AWS_SECRET_ACCESS_KEY": "mj-test-secret-do-not-log", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_moto() -> None:
    """Skip when moto's server is not installed; in CI (`CI=true`) that is a failure instead, so
    the S3 tests can never silently stop running there."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
        import obstore  # noqa: F401
    except ImportError as exc:
        reason = f"the S3 tests need moto[server], boto3 and obstore (pip install -e '.[test]'): {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


class MotoServer:
    def __init__(self, log_dir: Path) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / "moto.log"
        env = {**os.environ, **CREDENTIALS}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=open(self.log_path, "ab"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.endpoint + "/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("moto server not ready in 30 s")
            time.sleep(0.1)
        import boto3

        self.client: Any = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listing = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def new_bucket(self) -> Iterator[str]:
        """A fresh bucket for one test; emptied and removed afterwards."""
        name = f"mj-test-{secrets.token_hex(6)}"
        self.client.create_bucket(Bucket=name)
        try:
            yield name
        finally:
            for key in self.keys(name):
                self.client.delete_object(Bucket=name, Key=key)
            self.client.delete_bucket(Bucket=name)


def moto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The body of a session-scoped fixture."""
    require_moto()
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()
