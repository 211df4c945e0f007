"""Discord REST for a user account: the few calls Midjourney needs, with browser headers, rate
limits and bounded retries.

Retry policy: 429 waits what Discord asks (through the `RateLimiter`) and tries again; 5xx and
connection failures back off (capped, jittered) and try again, all within `max_attempts`. A
request that may have reached Discord (a read timeout on a POST) is not sent twice: an
interaction must not run twice. 401 and captcha answers are never retried.

Interactions are stricter both ways: a 429 means Discord did not take it, so it is sent again
after every wait Discord asks for, however many (the caller's deadline bounds it); a 5xx or a
lost answer is ambiguous (it may have been taken) and raises `OutcomeUnknown` at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from adapter.backends.discord.errors import (
    CaptchaRequired,
    DiscordError,
    DiscordUnavailable,
    Forbidden,
    OutcomeUnknown,
    InvalidFormBody,
    RateLimitExhausted,
    Unauthorized,
    redact,
)
from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.ratelimit import RateLimiter
from adapter.domain.ids import new_snowflake

log = logging.getLogger(__name__)

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
# Failures that guarantee the request never left: safe to send again whatever the method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_CAPTCHA_KEYS = ("captcha_key", "captcha_sitekey", "captcha_service")
_T = TypeVar("_T")


class UploadedAttachment(msgspec.Struct, frozen=True):
    """A file uploaded to Discord's attachment storage, ready to reference in a message or an
    interaction's `data.attachments`."""

    filename: str
    uploaded_filename: str


class _UploadSlot(msgspec.Struct):
    upload_url: str
    upload_filename: str


class _UploadSlots(msgspec.Struct):
    attachments: list[_UploadSlot]


class _GatewayInfo(msgspec.Struct):
    url: str


class _CommandIndex(msgspec.Struct):
    application_commands: list[dict[str, Any]]


class _ChannelRef(msgspec.Struct):
    id: str


def _decode_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return None


class DiscordRest:
    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        identity: BrowserIdentity,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 5,
        limiter: RateLimiter | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        timeout: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self._base_url).path
        self._token = token
        self._identity = identity
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._max_attempts = max(1, max_attempts)
        self.limiter = limiter if limiter is not None else RateLimiter()
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rng = rng or random.Random()
        self._api_headers = {"Authorization": token, **identity.rest_headers()}

    def __repr__(self) -> str:
        return f"DiscordRest(base_url={self._base_url!r}, token=[redacted])"

    # --- the calls ------------------------------------------------------------------------

    async def get_gateway_url(self) -> str:
        body = await self._api("GET", "/gateway")
        return self._convert(body, _GatewayInfo).url

    async def post_interaction(self, payload: Mapping[str, Any]) -> None:
        await self._api("POST", "/interactions", json=payload, interaction=True)

    async def upload(
        self, channel_id: str, filename: str, data: bytes, content_type: str
    ) -> UploadedAttachment:
        body = await self._api(
            "POST",
            f"/channels/{channel_id}/attachments",
            json={"files": [{"filename": filename, "file_size": len(data), "id": "0"}]},
        )
        slots = self._convert(body, _UploadSlots).attachments
        if not slots:
            raise DiscordError(200, None, "attachment slot request returned no slot")
        # The upload URL is a pre-signed storage URL on another host: the token must not go there.
        await self._send(
            "PUT",
            slots[0].upload_url,
            route="/attachment-upload",
            headers={"User-Agent": self._identity.user_agent, "Content-Type": content_type},
            content=data,
        )
        return UploadedAttachment(filename=filename, uploaded_filename=slots[0].upload_filename)

    async def post_message(
        self, channel_id: str, content: str = "", attachments: Sequence[UploadedAttachment] = ()
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "content": content,
            "nonce": new_snowflake(),
            "tts": False,
            "flags": 0,
        }
        if attachments:
            payload["attachments"] = [
                {"id": str(i), "filename": a.filename, "uploaded_filename": a.uploaded_filename}
                for i, a in enumerate(attachments)
            ]
        body = await self._api("POST", f"/channels/{channel_id}/messages", json=payload)
        return self._convert(body, dict[str, Any])

    async def get_messages(
        self, channel_id: str, *, limit: int = 50, before: str | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        body = await self._api("GET", f"/channels/{channel_id}/messages", params=params)
        return self._convert(body, list[dict[str, Any]])

    async def get_command_index(self, guild_id: str) -> list[dict[str, Any]]:
        body = await self._api("GET", f"/guilds/{guild_id}/application-command-index")
        return self._convert(body, _CommandIndex).application_commands

    async def get_channel_command_index(self, channel_id: str) -> list[dict[str, Any]]:
        """The commands usable in a DM channel (there is no guild index there)."""
        body = await self._api("GET", f"/channels/{channel_id}/application-command-index")
        return self._convert(body, _CommandIndex).application_commands

    async def add_reaction(self, channel_id: str, message_id: str, emoji: str) -> None:
        """React as the user (204). The emoji is percent-encoded in the path, as clients do
        (✉️ -> %E2%9C%89%EF%B8%8F)."""
        await self._api(
            "PUT",
            f"/channels/{channel_id}/messages/{message_id}/reactions/{quote(emoji, safe='')}/@me",
            params={"location": "Message", "type": 0},
        )

    async def remove_reaction(self, channel_id: str, message_id: str, emoji: str) -> None:
        await self._api(
            "DELETE",
            f"/channels/{channel_id}/messages/{message_id}/reactions/{quote(emoji, safe='')}/@me",
            params={"location": "Message", "burst": "false"},
        )

    async def open_dm(self, recipient_id: str) -> str:
        """The id of the DM channel with a user or bot (Discord returns the existing one)."""
        body = await self._api("POST", "/users/@me/channels", json={"recipients": [recipient_id]})
        return self._convert(body, _ChannelRef).id

    async def submit_inpaint(
        self, url: str, *, custom_id: str, mask_png_b64: str, prompt: str
    ) -> None:
        # The iframe app authenticates the job by its custom_id token, not by the user token,
        # and it lives on another host: no Authorization header.
        await self._send(
            "POST",
            url,
            route="/inpaint/api/submit-job",
            headers={"User-Agent": self._identity.user_agent, "Content-Type": "application/json"},
            content=msgspec.json.encode(
                {
                    "customId": custom_id,
                    "mask": mask_png_b64,
                    "prompt": prompt,
                    "userId": "0",
                    "username": "0",
                }
            ),
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- machinery ------------------------------------------------------------------------

    async def _api(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        interaction: bool = False,
    ) -> Any:
        headers = dict(self._api_headers)
        content: bytes | None = None
        if json is not None:
            headers["Content-Type"] = "application/json"
            content = msgspec.json.encode(json)
        return await self._send(
            method,
            self._base_url + path,
            route=self._base_path + path,
            headers=headers,
            content=content,
            params=params,
            interaction=interaction,
        )

    def _backoff(self, attempt: int) -> float:
        delay = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + self._rng.random() / 2)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        route: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        interaction: bool = False,
    ) -> Any:
        """Send with rate limits and retries; return the decoded JSON body of a 2xx answer
        (None when empty), raise a `DiscordError` otherwise. `interaction`: see the module
        docstring."""
        last: DiscordError | None = None
        attempt = 0
        while attempt < self._max_attempts:
            attempt += 1
            await self.limiter.acquire(method, route)
            try:
                response = await self._client.request(
                    method, url, headers=headers, content=content, params=params
                )
            except httpx.TransportError as exc:
                reason = f"{method} {route} failed: {type(exc).__name__}"
                if not isinstance(exc, _NOT_SENT) and method not in _IDEMPOTENT:
                    if interaction:
                        raise OutcomeUnknown(0, None, reason) from None
                    raise DiscordUnavailable(0, None, reason) from None
                last = DiscordUnavailable(0, None, reason)
                log.warning("%s (attempt %d/%d)", reason, attempt, self._max_attempts)
                await self._pause(attempt)
                continue

            body = _decode_body(response)
            status = response.status_code
            retry_after = self.limiter.update(method, route, status, response.headers, body)
            if 200 <= status < 300:
                return body
            error = self._error(status, body)
            if isinstance(error, (Unauthorized, CaptchaRequired)):
                raise error
            if retry_after is not None:
                log.info("%s %s: 429, retry after %.2fs", method, route, retry_after)
                last = RateLimitExhausted(
                    status, error.code, error.message, retry_after=retry_after
                )
                if interaction:
                    attempt -= 1  # not taken: only the caller's deadline limits these
                continue  # the limiter holds the next attempt until the wait is over
            if status >= 500 and interaction:
                log.warning("%s %s: HTTP %d; it may or may not have been taken", method, route, status)
                raise OutcomeUnknown(status, error.code, error.message)
            if status >= 500:
                log.warning("%s %s: HTTP %d (attempt %d/%d)", method, route, status, attempt, self._max_attempts)
                last = DiscordUnavailable(status, error.code, error.message)
                await self._pause(attempt)
                continue
            raise error
        assert last is not None
        raise last

    async def _pause(self, attempt: int) -> None:
        if attempt < self._max_attempts:
            await asyncio.sleep(self._backoff(attempt))

    def _error(self, status: int, body: Any) -> DiscordError:
        info = body if isinstance(body, dict) else {}
        raw_code = info.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = redact(str(info.get("message") or f"HTTP {status}"), self._token)
        if any(key in info for key in _CAPTCHA_KEYS):
            service = info.get("captcha_service")
            sitekey = info.get("captcha_sitekey")
            return CaptchaRequired(
                status,
                code,
                message if info.get("message") else "captcha required",
                service=service if isinstance(service, str) else None,
                sitekey=sitekey if isinstance(sitekey, str) else None,
            )
        if status == 401:
            return Unauthorized(status, code, message)
        if code == 50035:
            return InvalidFormBody(status, code, message, errors=info.get("errors"))
        if status == 403:
            return Forbidden(status, code, message)
        return DiscordError(status, code, message)

    def _convert(self, body: Any, kind: type[_T]) -> _T:
        try:
            return msgspec.convert(body, kind)
        except msgspec.ValidationError as exc:
            raise DiscordError(200, None, f"unexpected answer from Discord: {exc}") from None
