"""A webhook receiver on loopback for tests: records every attempt, checks every Standard
Webhooks signature with its own (independent) HMAC code, and can answer errors or stop
listening to play a receiver that is down."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret[len("whsec_") :]) if secret.startswith("whsec_") else secret.encode()


class Attempt:
    def __init__(self, path: str, headers: dict[str, str], body: bytes, answered: int, signed_ok: bool) -> None:
        self.path = path
        self.headers = headers
        self.body = body
        self.answered = answered
        self.signed_ok = signed_ok
        self.at = time.monotonic()

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def task(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


class Receiver:
    def __init__(self, secret: str, port: int = 0) -> None:
        self.key = key_of(secret)
        self.status = 200  # what to answer; anything but 2xx plays a broken receiver
        self.delay = 0.0  # seconds every request takes before it is answered (a slow receiver)
        # the next `stalls` requests hang (up to 30 s) until `released` is set; they are recorded
        # in `stalled_attempts`, not in `attempts` (their sender may be gone by then)
        self.stalls = 0
        self.stalled = threading.Event()  # set when a request starts hanging
        self.released = threading.Event()
        self.stalled_attempts: list[Attempt] = []
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _verify(self, headers: dict[str, str], body: bytes) -> bool:
        msg_id, ts, sig = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
        if not (msg_id and ts and sig and ts.isdigit()):
            return False
        if abs(time.time() - int(ts)) > 300:  # Standard Webhooks' replay window
            return False
        expected = base64.b64encode(hmac.new(self.key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
        return any(part.startswith("v1,") and hmac.compare_digest(part[3:], expected) for part in sig.split())

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = receiver.status
                with receiver._lock:
                    stall = receiver.stalls > 0
                    receiver.stalls -= int(stall)
                if stall:
                    attempt = Attempt(self.path, headers, body, answer, receiver._verify(headers, body))
                    with receiver._lock:
                        receiver.stalled_attempts.append(attempt)
                    receiver.stalled.set()
                    receiver.released.wait(30)
                else:
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    with receiver._lock:
                        receiver.attempts.append(Attempt(self.path, headers, body, answer, receiver._verify(headers, body)))
                self.send_response(answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (connections are refused until start())."""
        self.released.set()  # no handler thread keeps hanging
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def accepted(self, path: str | None = None) -> list[Attempt]:
        return [a for a in self.snapshot() if 200 <= a.answered < 300 and (path is None or a.path == path)]

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise TimeoutError(f"webhook receiver: condition not met in {timeout}s ({len(self.attempts)} attempts)")
