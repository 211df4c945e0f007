"""The one way images come in from the outside: user URLs, data URLs and Midjourney CDN links.

A URL given to us by a caller is an SSRF vector (cloud metadata at 169.254.169.254, the admin port
on localhost, the Redis next door). So the fetcher resolves host names itself, refuses any
non-public address the operator has not exempted, and then connects to exactly the address it
checked — the request goes to the IP literal with the original Host header (and TLS SNI / certificate
check against the original name), so a DNS answer that changes between check and connect
(rebinding) cannot redirect it. Redirects are followed by hand, each hop checked the same way.
Bodies are streamed under a byte cap and the result is sniffed with Pillow, never trusting the
declared Content-Type.

Two trust levels use it with different policies (see app.py): results from the account's own
sources (Discord's CDN, the simulator, provider hosts, the operator's exemptions) and URLs that a
caller hands us. The second never inherits the first one's exemptions and answers every failure
with one and the same error (`uniform_errors`), so it cannot be used as a port scanner.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from types import TracebackType

import httpx
import msgspec

from adapter.media.addresses import HostAllowList, is_public_ip, parse_ip
from adapter.media.decoding import DEFAULT_MAX_PIXELS, ImageError, is_mp4, mime_of, verify_image

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_URL_CHARS = 16 * 1024
# Sniffing is header parsing plus a structural check; below this size it is cheaper to do it
# inline than to hop to a thread.
_INLINE_SNIFF_BYTES = 256 * 1024


class FetchPolicy(msgspec.Struct, frozen=True):
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 30.0  # whole fetch: DNS, every redirect hop and the body
    max_redirects: int = 5
    # host names (exact, or ".example.com" for subdomains), IPs or CIDRs exempt from the
    # public-address rule: tests, the simulator, an operator's own CDN
    allow_hosts: tuple[str, ...] = ()
    allowed_schemes: tuple[str, ...] = ("http", "https")
    require_image: bool = True
    allow_data_urls: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    user_agent: str = "mj-adapter"
    # For URLs a caller gave us: every failure after the URL parsed (refused address, no
    # connection, an HTTP status, a redirect, a body that is not an image) gets one and the same
    # error, so the answers cannot be used to map which hosts and ports exist.
    uniform_errors: bool = False


class FetchedImage(msgspec.Struct, frozen=True):
    data: bytes
    content_type: str  # sniffed (declared one only when require_image=False and sniffing failed)
    width: int  # 0 when not an image (require_image=False)
    height: int
    format: str  # "png" | "jpeg" | "webp" | "gif" ("" when not an image)
    url: str  # final URL after redirects; for data URLs just "data:<mime type>"

    def __repr__(self) -> str:  # never dump megabytes into a log line
        return (
            f"FetchedImage({self.format or self.content_type}, {self.width}x{self.height}, "
            f"{len(self.data)} bytes)"
        )


class FetchError(Exception):
    """A fetch that failed. `code` is stable, `message` is safe to show to the caller (it never
    carries the URL, which may hold tokens, nor internal addresses)."""

    CODES = frozenset(
        {
            "invalid_url",
            "forbidden_address",
            "too_large",
            "timeout",
            "not_image",
            "http_error",
            "too_many_redirects",
            "unreachable",
            "unusable_url",
        }
    )

    def __init__(self, code: str, message: str) -> None:
        assert code in self.CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"FetchError({self.code!r}, {self.message!r})"


async def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver, off the event loop (asyncio runs getaddrinfo in a thread)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


_WHITESPACE = re.compile(r"\s")
_URLSAFE = str.maketrans("-_", "+/")


def decode_data_url(url: str, max_bytes: int) -> tuple[bytes, str]:
    """`data:[<mime>][;params][;base64],<payload>` -> (bytes, declared mime type)."""
    if url[:5].lower() != "data:":
        raise FetchError("invalid_url", "not a data URL")
    # A data URL may be tens of MB: every step below makes at most the copies it must (the
    # payload once, the bytes once), and the rarer fixes (unquoting, unwrapping lines, URL-safe
    # letters, padding) copy only when the payload needs them.
    comma = url.find(",")
    if comma < 0:
        raise FetchError("invalid_url", "the data URL has no ',' before its data")
    header, payload = url[5:comma], url[comma + 1 :]
    params = [p.strip() for p in header.split(";")]
    is_base64 = len(params) > 1 and params[-1].lower() == "base64"
    mime = params[0].lower() if params and "/" in params[0] else "text/plain"
    if is_base64:
        if "%" in payload:
            payload = urllib.parse.unquote(payload)
        if _WHITESPACE.search(payload):
            payload = "".join(payload.split())  # clients wrap long base64 lines
        if len(payload) * 3 // 4 > max_bytes + 3:  # refuse before allocating the decode
            raise FetchError("too_large", f"the image is larger than {max_bytes} bytes")
        if "-" in payload or "_" in payload:
            payload = payload.translate(_URLSAFE)
        if len(payload) % 4:
            payload += "=" * (-len(payload) % 4)
        try:
            # takes the str as it is (no ASCII-encoded copy) and refuses any other character
            data = binascii.a2b_base64(payload, strict_mode=True)
        except (binascii.Error, ValueError):
            raise FetchError("invalid_url", "the data URL is not valid base64") from None
        del payload
    else:
        if len(payload) > 3 * max_bytes + 3:
            raise FetchError("too_large", f"the image is larger than {max_bytes} bytes")
        data = urllib.parse.unquote_to_bytes(payload)
    if not data:
        raise FetchError("invalid_url", "the data URL is empty")
    if len(data) > max_bytes:
        raise FetchError("too_large", f"the image is larger than {max_bytes} bytes")
    return data, mime


def sniff_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, str, int, int]:
    """-> (format, content_type, width, height) from the bytes themselves, or FetchError
    ("not_image"; "too_large" for a decompression bomb)."""
    try:
        img = verify_image(data, max_pixels=max_pixels)
    except ImageError as e:
        raise FetchError("too_large" if e.code == "too_large" else "not_image", e.message) from None
    fmt = (img.format or "").lower()
    return fmt, mime_of(fmt), img.size[0], img.size[1]


class _Redirect(msgspec.Struct, frozen=True):
    location: str


class _Body(msgspec.Struct, frozen=True):
    data: bytes
    content_type: str


class ImageFetcher:
    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.policy = policy or FetchPolicy()
        self._allow = HostAllowList(self.policy.allow_hosts)
        self._schemes = {s.lower() for s in self.policy.allowed_schemes} & {"http", "https"}
        self._resolver = resolver or system_resolver
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            # env proxies would move the connection somewhere we did not check
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(self.policy.timeout),
            # pooled TLS connections are keyed by IP, so reusing one for another host name
            # behind the same IP would skip that name's certificate check: no keep-alive
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def fetch(self, url: str, *, video_ok: bool = False) -> FetchedImage:
        """The image at `url` (a data URL too, where allowed), checked. `video_ok`: an MP4 is
        accepted as well (results from the account's own sources: Midjourney's videos)."""
        url = url.strip()
        if url[:5].lower() == "data:":
            if not self.policy.allow_data_urls:
                raise FetchError("invalid_url", "data URLs are not accepted here")
            data, declared = decode_data_url(url, self.policy.max_bytes)
            return await self._finish(data, declared, f"data:{declared}", video_ok)
        parsed = self._parse(url)
        try:
            try:
                async with asyncio.timeout(self.policy.timeout):
                    body, final_url = await self._download(parsed)
            except TimeoutError:
                raise FetchError(
                    "timeout", f"the image download took longer than {self.policy.timeout:g} s"
                ) from None
            return await self._finish(body.data, body.content_type, final_url, video_ok)
        except FetchError as exc:
            if not self.policy.uniform_errors:
                raise
            # the operator's log keeps the reason; the caller learns nothing about the target
            log.info("refused a caller's image URL (%s): %s", exc.code, exc.message)
            raise FetchError("unusable_url", self.uniform_message()) from None

    def uniform_message(self) -> str:
        limit = self.policy.max_bytes / (1024 * 1024)
        return (
            "the URL must be a public http(s) address that answers within "
            f"{self.policy.timeout:g} s with a PNG, JPEG, WebP or GIF image of at most {limit:g} MB"
        )

    # -- steps ---------------------------------------------------------------------------------

    def _parse(self, raw: str) -> httpx.URL:
        if len(raw) > _MAX_URL_CHARS:
            raise FetchError("invalid_url", "the URL is too long")
        try:
            url = httpx.URL(raw)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise FetchError("invalid_url", "the URL is not valid") from None
        if url.scheme.lower() not in self._schemes:
            allowed = ", ".join(sorted(self._schemes)) or "none"
            raise FetchError("invalid_url", f"only {allowed} URLs are accepted")
        if not url.host:
            raise FetchError("invalid_url", "the URL has no host")
        if url.userinfo:
            raise FetchError("invalid_url", "URLs with credentials are not accepted")
        return url

    async def _destinations(self, url: httpx.URL) -> list[str]:
        """The checked addresses to connect to for this URL, or FetchError."""
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        literal = parse_ip(host)
        if literal is not None:
            candidates = [literal]
        else:
            try:
                answers = await self._resolver(host, port)
            except FetchError:
                raise
            except (OSError, UnicodeError, ValueError):
                raise FetchError("unreachable", "the image host name could not be resolved") from None
            candidates = [ip for ip in (parse_ip(a) for a in answers) if ip is not None]
            if not candidates:
                raise FetchError("unreachable", "the image host name could not be resolved")
        if not self._allow.allows_host(host):
            # one non-public answer is enough to refuse: legitimate public hosts never mix them
            for ip in candidates:
                if not is_public_ip(ip) and not self._allow.allows_ip(ip):
                    log.info("refused fetch from %s: non-public address", host)
                    raise FetchError(
                        "forbidden_address",
                        "the URL points to a private, local or reserved network address",
                    )
        return [str(ip) for ip in candidates]

    async def _download(self, url: httpx.URL) -> tuple[_Body, str]:
        redirects = 0
        while True:
            ips = await self._destinations(url)
            result = await self._request_any(url, ips)
            if isinstance(result, _Body):
                return result, str(url)
            redirects += 1
            if redirects > self.policy.max_redirects:
                raise FetchError(
                    "too_many_redirects",
                    f"the image URL redirected more than {self.policy.max_redirects} times",
                )
            try:
                target = str(url.join(result.location))
            except (httpx.InvalidURL, TypeError, ValueError):
                raise FetchError("invalid_url", "the image server redirected to an invalid URL") from None
            url = self._parse(target)

    async def _request_any(self, url: httpx.URL, ips: list[str]) -> _Body | _Redirect:
        # Try each checked address in resolver order, like a browser would; only a failure to
        # connect moves on (anything after the connection is the server's answer).
        for ip in ips:
            try:
                return await self._request(url, ip)
            except httpx.ConnectError:
                continue
        raise FetchError("unreachable", "could not connect to the image host")

    async def _request(self, url: httpx.URL, ip: str) -> _Body | _Redirect:
        pinned = url.copy_with(host=ip)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "User-Agent": self.policy.user_agent,
            "Accept": "image/*,*/*;q=0.5",
        }
        extensions: dict[str, object] = {}
        if url.scheme == "https" and parse_ip(url.host) is None:
            extensions["sni_hostname"] = url.host  # TLS SNI + certificate check use the name
        # built directly (not client.build_request) so no client cookies/headers ride along
        request = httpx.Request("GET", pinned, headers=headers, extensions=extensions)
        try:
            response = await self._client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError:
            raise
        except httpx.TimeoutException:
            raise FetchError(
                "timeout", f"the image download took longer than {self.policy.timeout:g} s"
            ) from None
        except httpx.InvalidURL:
            # httpx pre-builds the next request of a redirect even when not following it, and
            # fails on locations it cannot express (data:, mailto:, ...)
            raise FetchError("invalid_url", "the image server redirected to an invalid URL") from None
        except httpx.ProtocolError:
            raise FetchError("http_error", "the image server sent a broken response") from None
        except httpx.TransportError:
            raise FetchError("unreachable", "the image host did not answer properly") from None
        try:
            return await self._read(response)
        except httpx.TimeoutException:
            raise FetchError(
                "timeout", f"the image download took longer than {self.policy.timeout:g} s"
            ) from None
        except httpx.TransportError:
            raise FetchError("http_error", "the image server sent a broken response") from None
        finally:
            await response.aclose()

    async def _read(self, response: httpx.Response) -> _Body | _Redirect:
        status = response.status_code
        if status in _REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise FetchError("http_error", f"the image server answered HTTP {status} without a location")
            return _Redirect(location)
        if not 200 <= status < 300:
            raise FetchError("http_error", f"the image server answered HTTP {status}")
        limit = self.policy.max_bytes
        declared = response.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise FetchError("too_large", f"the image is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        # aiter_bytes yields decoded content, so the cap also bounds gzip bombs
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise FetchError("too_large", f"the image is larger than {limit} bytes")
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        # joined once (a growing buffer copies a multi-MB grid several times over)
        return _Body(b"".join(chunks), content_type)

    async def _finish(self, data: bytes, declared: str, url: str, video_ok: bool = False) -> FetchedImage:
        max_pixels = self.policy.max_pixels
        try:
            if len(data) > _INLINE_SNIFF_BYTES:
                fmt, mime, w, h = await asyncio.to_thread(sniff_image, data, max_pixels)
            else:
                fmt, mime, w, h = sniff_image(data, max_pixels)
        except FetchError:
            if video_ok and is_mp4(data):
                return FetchedImage(data, "video/mp4", 0, 0, "mp4", url)
            if self.policy.require_image:
                raise
            return FetchedImage(data, declared or "application/octet-stream", 0, 0, "", url)
        return FetchedImage(data, mime, w, h, fmt, url)
