"""A scripted midjourney-proxy provider on loopback, for the provider account's tests: records
every request, answers submits from a script and serves each task as a sequence of snapshots
(one step per fetch)."""

from __future__ import annotations

import itertools
import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body


class FakeProvider:
    def __init__(self, port: int = 0) -> None:
        self.requests: list[Request] = []
        # endpoint ("imagine", "action", "modal", ...) -> queued answers (status, json)
        self.answers: dict[str, deque[tuple[int, Any]]] = defaultdict(deque)
        # task id -> snapshots; each fetch moves one step, the last one stays
        self.tasks: dict[str, deque[dict[str, Any]]] = {}
        self.fetch_failures = 0  # the next N fetches answer 500
        self.status = 200  # anything else: every request answers this (401 for a bad secret)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = self._serve(port)
        self.port = self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, task_id: str, *snapshots: dict[str, Any]) -> None:
        self.tasks[task_id] = deque({"id": task_id, **s} for s in snapshots)

    def answer(self, endpoint: str, payload: Any, status: int = 200) -> None:
        self.answers[endpoint].append((status, payload))

    def submits(self) -> list[Request]:
        return [r for r in self.requests if "/submit/" in r.path]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Request(method, path, headers, body))
            if self.status != 200:
                return self.status, {"error": "refused"}
            if "/submit/" in path:
                endpoint = path.rsplit("/", 1)[-1]
                if self.answers[endpoint]:
                    return self.answers[endpoint].popleft()
                return 200, {"code": 1, "description": "ok", "result": f"t{next(self._ids)}", "properties": {}}
            if path.endswith("/fetch"):
                if self.fetch_failures > 0:
                    self.fetch_failures -= 1
                    return 500, {"error": "boom"}
                task_id = path.split("/")[-2]
                steps = self.tasks.get(task_id)
                if not steps:
                    return 404, None
                snapshot = steps[0] if len(steps) == 1 else steps.popleft()
                return 200, snapshot
            if path.endswith("/list-by-condition"):
                return 200, []
            if "/task/" in path and self.answers[path.rsplit("/", 1)[-1]]:  # image-seed, cancel
                return self.answers[path.rsplit("/", 1)[-1]].popleft()
            return 404, None

    def _serve(self, port: int) -> ThreadingHTTPServer:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, payload = provider._handle(method, self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._reply("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._reply("POST")

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return server
