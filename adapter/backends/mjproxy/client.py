"""HTTP calls to an upstream midjourney-proxy-compatible API (one shared httpx client per
provider). Knows the paths, the auth header and the answer shapes; decides nothing."""

from __future__ import annotations

from typing import Any, Literal

import httpx
import msgspec

from adapter.domain.actions import Mode

ErrorKind = Literal["unreachable", "auth", "server", "bad_response"]


class UpstreamError(Exception):
    """The provider could not be used for this call. `message` is safe to show (never the
    secret, never a response body)."""

    def __init__(self, kind: ErrorKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    code: int
    description: str = ""
    result: str | None = None  # the upstream task id
    properties: dict[str, Any] = {}


def normalize_base(base_url: str) -> str:
    """`https://host/`, `https://host/mj` and `https://host/mj/` all mean the same provider."""
    base = base_url.strip().rstrip("/")
    if base.endswith("/mj"):
        base = base[: -len("/mj")]
    return base


class ProxyClient:
    def __init__(
        self,
        base_url: str,
        secret: str = "",
        *,
        timeout: float = 30.0,
        mode_prefix: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base = normalize_base(base_url)
        self.mode_prefix = mode_prefix
        self._headers = {"mj-api-secret": secret} if secret else {}
        self._own = client is None
        # the provider is the operator's choice, so no SSRF rules here; env proxies are still
        # ignored so that a loopback or LAN provider is reached directly
        self._client = client or httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(timeout))

    async def aclose(self) -> None:
        if self._own:
            await self._client.aclose()

    def url(self, path: str, mode: Mode | None = None) -> str:
        prefix = f"/mj-{mode.value}" if mode is not None and self.mode_prefix else ""
        return f"{self.base}{prefix}/mj{path}"

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            return await self._client.request(method, url, json=body, headers=self._headers)
        except httpx.TimeoutException:
            raise UpstreamError("unreachable", "the provider did not answer in time") from None
        except httpx.HTTPError as exc:
            raise UpstreamError("unreachable", f"cannot reach the provider ({type(exc).__name__})") from None

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code in (401, 403):
            raise UpstreamError("auth", f"the provider refused the secret (HTTP {response.status_code})", response.status_code)
        try:
            return msgspec.json.decode(response.content) if response.content.strip() else None
        except msgspec.DecodeError:
            if response.status_code >= 500:
                raise UpstreamError("server", f"the provider failed (HTTP {response.status_code})", response.status_code) from None
            raise UpstreamError("bad_response", f"the provider answered HTTP {response.status_code} without JSON", response.status_code) from None

    async def submit(self, endpoint: str, body: dict[str, Any], mode: Mode | None = None) -> Submitted:
        """POST /mj/submit/<endpoint>. Protocol refusals come back as a Submitted with their
        code (some providers send them with a 4xx status): only transport, auth and
        unreadable answers raise."""
        response = await self._call("POST", self.url(f"/submit/{endpoint}", mode), body)
        data = self._json(response)
        if isinstance(data, dict) and isinstance(data.get("code"), int):
            try:
                return msgspec.convert(data, Submitted, strict=False)
            except msgspec.ValidationError:
                pass
        if response.status_code >= 500:
            raise UpstreamError("server", f"the provider failed (HTTP {response.status_code})", response.status_code)
        raise UpstreamError("bad_response", f"the provider's answer to {endpoint} has no result code (HTTP {response.status_code})", response.status_code)

    async def fetch(self, task_id: str) -> dict[str, Any] | None:
        """The task, or None when the provider does not know it (404 or an empty answer)."""
        response = await self._call("GET", self.url(f"/task/{task_id}/fetch"))
        if response.status_code == 404:
            return None
        data = self._json(response)
        if response.status_code >= 500:
            raise UpstreamError("server", f"the provider failed (HTTP {response.status_code})", response.status_code)
        if data is None:
            return None
        if not isinstance(data, dict) or "status" not in data:
            raise UpstreamError("bad_response", "the provider's task answer is not a task")
        return data

    async def task_call(self, method: str, task_id: str, action: str) -> tuple[int, Any]:
        """GET/POST /mj/task/{id}/<action> (image-seed, cancel): (HTTP status, decoded body).
        Refusals come back as they are; only transport and auth problems raise."""
        response = await self._call(method, self.url(f"/task/{task_id}/{action}"), {} if method == "POST" else None)
        if response.status_code >= 500:
            raise UpstreamError("server", f"the provider failed (HTTP {response.status_code})", response.status_code)
        try:
            return response.status_code, self._json(response)
        except UpstreamError as exc:
            if exc.kind == "bad_response":
                return response.status_code, None
            raise

    async def probe(self) -> None:
        """A cheap authenticated call: raises UpstreamError if the provider is unusable."""
        response = await self._call("POST", self.url("/task/list-by-condition"), {"ids": []})
        if response.status_code in (401, 403):
            self._json(response)  # raises "auth"
        if response.status_code >= 500:
            raise UpstreamError("server", f"the provider failed (HTTP {response.status_code})", response.status_code)
        # any other answer (even a 404 from a provider without this endpoint) shows it is up and
        # takes our secret; a wrong base_url shows up as readable job failures instead
