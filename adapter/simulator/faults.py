"""Fault switches: things that go wrong with Discord and Midjourney, on demand.

Two kinds: actions that happen now (drop sockets, moderate running jobs, revoke a token) and
switches armed for the next occurrence of something (the next RESUME, the next REST calls, the
next interaction, the next job). The control API (`/_simulator/faults/...`) and `sim.faults`
are two doors to the same object.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from adapter.domain.actions import BOT_APPLICATION_IDS, Mode

if TYPE_CHECKING:
    from adapter.simulator.context import SimContext

CaptchaKind = Literal["discord", "midjourney"]
DEFAULT_FAIL_TITLE = "Sorry! Could not complete the job!"
DEFAULT_FAIL_DESCRIPTION = "Something went wrong on our side while processing your job. Please try again."


class RateLimitFault(msgspec.Struct, frozen=True):
    retry_after: float
    is_global: bool


class CaptchaFault(msgspec.Struct, frozen=True):
    user_id: str | None
    kind: CaptchaKind


class ServerErrorFault(msgspec.Struct, frozen=True):
    user_id: str | None
    status: int
    accepted: bool


class FailFault(msgspec.Struct, frozen=True):
    user_id: str | None
    title: str
    description: str


class Faults:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refuse_resume = 0
        self._rate_limits: deque[RateLimitFault] = deque()
        self._captchas: list[CaptchaFault] = []
        self._stalls: list[str | None] = []
        self._fails: list[FailFault] = []
        self._server_errors: list[ServerErrorFault] = []
        self._revoked: set[str] = set()  # user ids

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- happening now -----------------------------------------------------------------------

    def drop_gateway(self, user_id: str | None = None) -> int:
        """Cut the TCP connection of the user's sockets (all sockets when None) without a close
        frame. Sessions stay resumable."""
        conns = self._ctx.gateway.connections_of(user_id)
        for conn in conns:
            conn.abort()
        return len(conns)

    def reconnect(self, user_id: str | None = None) -> int:
        """Send op 7 RECONNECT: the client should close and RESUME."""
        conns = self._ctx.gateway.connections_of(user_id)
        for conn in conns:
            self._spawn(conn.send_op(7, None))
        return len(conns)

    def invalid_session(self, user_id: str | None = None, resumable: bool = False) -> int:
        """Send op 9 INVALID_SESSION; unless resumable, the session is gone (IDENTIFY again)."""
        conns = [c for c in self._ctx.gateway.connections_of(user_id) if c.session is not None]
        for conn in conns:
            if not resumable and conn.session is not None:
                self._ctx.hub.invalidate(conn.session.id)
                conn.session = None
            self._spawn(conn.send_op(9, resumable))
        return len(conns)

    def moderate_running(self, user_id: str | None = None) -> int:
        """Delete the progress message of running jobs; they end with no result."""
        return self._ctx.runner.moderate(user_id)

    def revoke_token(self, token: str) -> bool:
        """REST answers 401 and the gateway closes 4004 for this token from now on."""
        user = self._ctx.world.user_for_token_any(token)
        if user is None:
            return False
        user.revoked = True
        self._revoked.add(user.id)
        for conn in self._ctx.gateway.connections_of(user.id):
            self._spawn(conn.close(4004, "Authentication failed."))
        for session in self._ctx.hub.sessions_of(user.id):
            self._ctx.hub.invalidate(session.id)
        return True

    def bump_command_versions(self, name: str | None = None) -> dict[str, str]:
        """New command versions: clients holding the old ones get 400 code 50035."""
        return self._ctx.commands.bump(name)

    def set_settings(
        self, user_id: str | None = None, *, remix: bool | None = None, mode: str | None = None,
        info_layout: str | None = None, settings_ids: str | None = None, website_link: str | None = None,
    ) -> int:
        """Midjourney-side settings, and the bot's two behaviours where it has two
        (`info_layout`, `settings_ids`, `website_link`: README, "Bot replies confirmed in public clients")."""
        users = [u for u in self._ctx.world.users.values() if user_id is None or u.id == user_id]
        for user in users:
            if remix is not None:
                user.remix = remix
            if mode is not None:
                user.mode = Mode(mode)
            self._ctx.bot.set_prefs(user, info_layout=info_layout, settings_ids=settings_ids, website_link=website_link)
        return len(users)

    def set_behaviour(
        self, user_id: str | None = None, *, interaction_events_fallback: bool | None = None, final_message_nonce: bool | None = None
    ) -> int:
        """Pick between Discord's two behaviours where it has two (README, "Two behaviours"),
        for one account or all."""
        users = [u for u in self._ctx.world.users.values() if user_id is None or u.id == user_id]
        for user in users:
            if interaction_events_fallback is not None:
                user.interaction_events_fallback = interaction_events_fallback
            if final_message_nonce is not None:
                user.final_message_nonce = final_message_nonce
        return len(users)

    def set_guild_apps(self, apps: list[str], user_id: str | None = None) -> int:
        """Which bots are in the guild of this user (every guild when None): the guild's command
        index lists only theirs. The commands still work (Midjourney and Niji are user-installable)."""
        known = set(BOT_APPLICATION_IDS.values())
        if not apps or any(a not in known for a in apps):
            raise ValueError(f"apps must be a non-empty list of {sorted(known)}")
        guilds = [g for g in self._ctx.world.guilds.values() if user_id is None or user_id in g.member_ids]
        for guild in guilds:
            guild.app_ids = list(dict.fromkeys(apps))
        return len(guilds)

    # --- armed for next time -----------------------------------------------------------------

    def refuse_next_resume(self, count: int = 1) -> None:
        self._refuse_resume += max(count, 1)

    def rate_limit(self, count: int = 1, retry_after: float = 1.0, is_global: bool = False) -> None:
        """The next `count` REST calls under /api/v9 answer 429."""
        for _ in range(max(count, 1)):
            self._rate_limits.append(RateLimitFault(retry_after, is_global))

    def interaction_5xx(self, count: int = 1, status: int = 500, accepted: bool = True, user_id: str | None = None) -> None:
        """The next `count` POST /interactions (of this user, or anyone's) answer `status` (500,
        502 or 503), ambiguous as in real life: with `accepted` the interaction still goes
        through (the bot answers, the job runs), without it the interaction is dropped."""
        if status not in (500, 502, 503):
            raise ValueError("status must be 500, 502 or 503")
        for _ in range(max(count, 1)):
            self._server_errors.append(ServerErrorFault(user_id, status, accepted))

    def captcha_next_interaction(self, user_id: str | None = None, kind: CaptchaKind = "discord") -> None:
        """discord: the next POST /interactions answers 400 with captcha_key/sitekey/service.
        midjourney: it is accepted, and the bot opens an iframe titled "Action required to
        continue" at /captcha/... instead of doing the job."""
        if kind not in ("discord", "midjourney"):
            raise ValueError("kind must be 'discord' or 'midjourney'")
        self._captchas.append(CaptchaFault(user_id, kind))

    def stall_next_job(self, user_id: str | None = None) -> None:
        """The next job to start stays at "(Waiting to start)" for ever (until cancelled)."""
        self._stalls.append(user_id)

    def fail_next_job(
        self, title: str = DEFAULT_FAIL_TITLE, description: str = DEFAULT_FAIL_DESCRIPTION, user_id: str | None = None
    ) -> None:
        """The next job to start runs part way, then ends with this red error embed."""
        self._fails.append(FailFault(user_id, title, description))

    def reset(self) -> None:
        """Disarm every switch and give revoked tokens back."""
        self._refuse_resume = 0
        self._rate_limits.clear()
        self._captchas.clear()
        self._stalls.clear()
        self._fails.clear()
        self._server_errors.clear()
        for user_id in self._revoked:
            if (user := self._ctx.world.users.get(user_id)) is not None:
                user.revoked = False
        self._revoked.clear()

    def armed(self) -> dict[str, Any]:
        return {
            "refuse_resume": self._refuse_resume,
            "rate_limited_calls": len(self._rate_limits),
            "captchas": [msgspec.to_builtins(c) for c in self._captchas],
            "stalls": len(self._stalls),
            "fails": [msgspec.to_builtins(f) for f in self._fails],
            "interaction_5xx": [msgspec.to_builtins(f) for f in self._server_errors],
            "revoked_user_ids": sorted(self._revoked),
        }

    # --- consumed by the simulator -----------------------------------------------------------

    def take_refuse_resume(self) -> bool:
        if self._refuse_resume > 0:
            self._refuse_resume -= 1
            return True
        return False

    def take_rate_limit(self) -> RateLimitFault | None:
        return self._rate_limits.popleft() if self._rate_limits else None

    def take_captcha(self, user_id: str) -> CaptchaKind | None:
        for i, fault in enumerate(self._captchas):
            if fault.user_id in (None, user_id):
                del self._captchas[i]
                return fault.kind
        return None

    def take_server_error(self, user_id: str) -> ServerErrorFault | None:
        for i, fault in enumerate(self._server_errors):
            if fault.user_id in (None, user_id):
                del self._server_errors[i]
                return fault
        return None

    def take_stall(self, user_id: str) -> bool:
        for i, wanted in enumerate(self._stalls):
            if wanted in (None, user_id):
                del self._stalls[i]
                return True
        return False

    def take_fail(self, user_id: str) -> FailFault | None:
        for i, fault in enumerate(self._fails):
            if fault.user_id in (None, user_id):
                del self._fails[i]
                return fault
        return None
