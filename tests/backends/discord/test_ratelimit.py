"""Rate limits: route keys and limiter bookkeeping in isolation (driven clock), and the real
behaviour over a loopback HTTP server (server-side arrival times prove no request went early)."""

from __future__ import annotations

import sys
from pathlib import Path
import asyncio

import pytest

from adapter.backends.discord.errors import OutcomeUnknown, RateLimitExhausted
from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.ratelimit import RateLimiter, route_key
from adapter.backends.discord.rest import DiscordRest

# The fakes module sits beside this file; make it importable under any pytest import mode.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from transport_fakes import WAIT, FakeHttpServer, HttpRequest, HttpResponse  # noqa: E402

TOKEN = "fake-user-token.not-real.abc123"
CHANNEL = "123456789012345678"
OTHER_CHANNEL = "223456789012345678"


class DrivenClock:
    """A clock that moves only when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_route_key_keeps_major_param_only() -> None:
    assert route_key("get", f"/channels/{CHANNEL}/messages/998877665544332211") == (
        f"GET /channels/{CHANNEL}/messages/:id"
    )
    assert route_key("POST", "/interactions") == "POST /interactions"
    assert route_key("GET", "/guilds/42/application-command-index?x=1") == "GET /guilds/42/application-command-index"
    assert route_key("PUT", f"/channels/{CHANNEL}/messages/998877665544332211/reactions/%E2%9D%8C/@me") == (
        f"PUT /channels/{CHANNEL}/messages/:id/reactions/:emoji/@me"
    )


async def test_exhausted_bucket_waits_for_reset() -> None:
    clock = DrivenClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    path = f"/channels/{CHANNEL}/messages"
    await limiter.acquire("POST", path)
    limiter.update("POST", path, 200, {"x-ratelimit-bucket": "b1", "x-ratelimit-limit": "5",
                                       "x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "2.5"}, None)
    await limiter.acquire("POST", path)
    assert clock.sleeps == [2.5]
    # The window reset: the announced limit is available again, minus the request just let through.
    for _ in range(4):
        await limiter.acquire("POST", path)
    assert clock.sleeps == [2.5]
    await limiter.acquire("POST", path)
    assert clock.sleeps == [2.5, 2.5]


async def test_bucket_split_by_major_param() -> None:
    clock = DrivenClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    headers = {"x-ratelimit-bucket": "b1", "x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "3"}
    limiter.update("POST", f"/channels/{CHANNEL}/messages", 200, headers, None)
    await limiter.acquire("POST", f"/channels/{OTHER_CHANNEL}/messages")
    assert clock.sleeps == []
    await limiter.acquire("POST", f"/channels/{CHANNEL}/messages")
    assert clock.sleeps == [3.0]


async def test_429_body_header_and_fallbacks() -> None:
    clock = DrivenClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep, default_retry_after=1.0, min_retry_after=0.05)
    assert limiter.update("POST", "/interactions", 429, {"retry-after": "7"}, {"retry_after": 0.4, "global": False}) == 0.4
    assert limiter.update("POST", "/interactions", 429, {"retry-after": "7", "x-ratelimit-bucket": "b"}, None) == 7.0
    assert limiter.update("POST", "/interactions", 429, {}, {"message": "x"}) == 1.0
    assert limiter.update("POST", "/interactions", 429, {}, {"retry_after": 0}) == 0.05  # never a tight loop
    assert limiter.stats.rate_limited == 4


async def test_wait_longer_than_max_wait_raises() -> None:
    clock = DrivenClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep, max_wait=10)
    limiter.update("POST", "/interactions", 429, {}, {"retry_after": 30, "global": True})
    with pytest.raises(RateLimitExhausted) as caught:
        await limiter.acquire("GET", f"/channels/{CHANNEL}/messages")
    assert caught.value.retry_after == pytest.approx(30)
    assert clock.sleeps == []


# --- over loopback HTTP ---------------------------------------------------------------------


def make_rest(server: FakeHttpServer, **kwargs: object) -> DiscordRest:
    return DiscordRest(base_url=server.url + "/api/v9", token=TOKEN, identity=BrowserIdentity(), **kwargs)  # type: ignore[arg-type]


def too_many(retry_after: float, *, is_global: bool = False) -> HttpResponse:
    return HttpResponse(
        429,
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
        headers={"Retry-After": str(int(retry_after) + 1)} | ({"X-RateLimit-Global": "true"} if is_global else {}),
    )


async def test_429_twice_then_success_waits_retry_after_each_time() -> None:
    answers = [too_many(0.2), too_many(0.2), HttpResponse(204)]

    async def handler(request: HttpRequest) -> HttpResponse:
        return answers.pop(0)

    async with FakeHttpServer(handler) as server:
        rest = make_rest(server, max_attempts=5)
        async with asyncio.timeout(WAIT):
            await rest.post_interaction({"type": 2})
        assert len(server.requests) == 3
        first, second, third = (r.arrived for r in server.requests)
        # Measured from when each 429 left the server: the client cannot have seen it earlier.
        assert second - server.responded[0] >= 0.2
        assert third - server.responded[1] >= 0.2
        assert rest.limiter.stats.rate_limited == 2
        assert sum(rest.limiter.stats.waits) >= 0.4 - 0.01
        await rest.aclose()


async def test_429_exhausts_attempts() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return too_many(0.05)

    async with FakeHttpServer(handler) as server:
        rest = make_rest(server, max_attempts=3)
        with pytest.raises(RateLimitExhausted) as caught:
            async with asyncio.timeout(WAIT):
                await rest.get_messages(CHANNEL)
        assert len(server.requests) == 3
        assert caught.value.retry_after == pytest.approx(0.05)
        await rest.aclose()


async def test_interaction_429s_are_sent_again_past_max_attempts() -> None:
    """A 429 means Discord did not take the interaction: it goes again after every wait, and
    only the caller's deadline limits how often."""
    answers = [too_many(0.02) for _ in range(7)] + [HttpResponse(204)]

    async def handler(request: HttpRequest) -> HttpResponse:
        return answers.pop(0)

    async with FakeHttpServer(handler) as server:
        rest = make_rest(server, max_attempts=3)
        async with asyncio.timeout(WAIT):
            await rest.post_interaction({})
        assert len(server.requests) == 8
        assert all(r.path == "/api/v9/interactions" for r in server.requests)
        await rest.aclose()


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_interaction_5xx_is_ambiguous_and_never_resent(status: int) -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status, {"message": "upstream trouble", "code": 0})

    async with FakeHttpServer(handler) as server:
        rest = make_rest(server, max_attempts=5)
        with pytest.raises(OutcomeUnknown) as caught:
            async with asyncio.timeout(WAIT):
                await rest.post_interaction({})
        assert caught.value.status == status
        assert len(server.requests) == 1
        await rest.aclose()


async def test_global_429_blocks_other_buckets() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        if request.path == "/api/v9/interactions" and len(server.requests) == 1:
            return too_many(0.3, is_global=True)
        if request.path == "/api/v9/interactions":
            return HttpResponse(204)
        return HttpResponse(200, [])

    server = FakeHttpServer(handler)
    async with server:
        rest = make_rest(server)
        async with asyncio.timeout(WAIT):
            interaction = asyncio.create_task(rest.post_interaction({}))
            while rest.limiter.stats.global_limited == 0:
                await asyncio.sleep(0.005)
            await rest.get_messages(CHANNEL)
            await interaction
        history = next(r for r in server.requests if r.method == "GET")
        assert history.arrived - server.responded[0] >= 0.3
        assert len(server.requests) == 3
        await rest.aclose()


async def test_remaining_zero_waits_reset_after_before_sending() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(
            200,
            [],
            headers={"X-RateLimit-Bucket": "hist", "X-RateLimit-Limit": "5",
                     "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "0.25"},
        )

    async with FakeHttpServer(handler) as server:
        rest = make_rest(server)
        async with asyncio.timeout(WAIT):
            await rest.get_messages(CHANNEL)
            await rest.get_messages(CHANNEL, before="5")
            await rest.get_messages(OTHER_CHANNEL)  # another channel: its own bucket, no wait
        first, second, third = server.requests
        assert second.arrived - server.responded[0] >= 0.25
        assert rest.limiter.stats.rate_limited == 0
        assert len(rest.limiter.stats.waits) >= 1 and all(w <= 0.25 for w in rest.limiter.stats.waits)
        assert sum(rest.limiter.stats.waits) >= 0.25 - 0.01
        await rest.aclose()


async def test_concurrent_requests_share_one_wait() -> None:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(
            204,
            headers={"X-RateLimit-Bucket": "ix", "X-RateLimit-Limit": "2",
                     "X-RateLimit-Remaining": "1" if len(server.requests) % 2 else "0",
                     "X-RateLimit-Reset-After": "0.2"},
        )

    server = FakeHttpServer(handler)
    async with server:
        rest = make_rest(server)
        await rest.post_interaction({})  # learn the bucket: 1 left in this window
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(rest.post_interaction({}) for _ in range(3)))
        assert len(server.requests) == 4
        # Request 2 used the last slot of the first window; 3 and 4 waited for the reset.
        assert server.requests[2].arrived - server.responded[0] >= 0.2
        assert rest.limiter.stats.rate_limited == 0
        await rest.aclose()
