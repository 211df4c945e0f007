"""`/_simulator/...`: the control API (documented in README.md). No auth: the simulator only
ever listens on loopback."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler

from adapter.simulator.context import SimContext

PREFIX = "/_simulator"


class UserTarget(msgspec.Struct):
    user_id: str | None = None


class InvalidSessionBody(msgspec.Struct):
    user_id: str | None = None
    resumable: bool = False


class CountBody(msgspec.Struct):
    count: int = 1


class RateLimitBody(msgspec.Struct, rename={"is_global": "global"}):
    count: int = 1
    retry_after: float = 1.0
    is_global: bool = False


class CaptchaBody(msgspec.Struct):
    user_id: str | None = None
    kind: Literal["discord", "midjourney"] = "discord"


class RevokeBody(msgspec.Struct):
    token: str


class FailBody(msgspec.Struct):
    title: str = "Sorry! Could not complete the job!"
    description: str = "Something went wrong on our side while processing your job. Please try again."
    user_id: str | None = None


class ServerErrorBody(msgspec.Struct):
    count: int = 1
    status: int = 500
    accepted: bool = True
    user_id: str | None = None


class BehaviourBody(msgspec.Struct):
    user_id: str | None = None
    interaction_events_fallback: bool | None = None
    final_message_nonce: bool | None = None


class GuildAppsBody(msgspec.Struct):
    apps: list[str]
    user_id: str | None = None


class BumpBody(msgspec.Struct):
    name: str | None = None


class SettingsBody(msgspec.Struct):
    user_id: str | None = None
    remix: bool | None = None
    mode: Literal["fast", "relax", "turbo"] | None = None
    info_layout: Literal["classic", "aligned"] | None = None
    settings_ids: Literal["plain", "stateful"] | None = None
    website_link: Literal["random", "never", "always"] | None = None


def _ok(body: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status, media_type="application/json")


async def _body(request: Request[Any, Any, Any], kind: type[Any]) -> Any:
    raw = await request.body()
    return msgspec.json.decode(raw or b"{}", type=kind)


def control_routes(ctx: SimContext) -> list[HTTPRouteHandler]:
    faults = ctx.faults

    def handler(path: str, kind: type[Any] | None, action: Any) -> HTTPRouteHandler:
        async def endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
            try:
                body = await _body(request, kind) if kind is not None else None
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                return _ok({"error": str(exc)}, 400)
            try:
                result = action(body)
            except (ValueError, KeyError) as exc:
                return _ok({"error": str(exc)}, 400)
            return _ok({"ok": True, "result": result})

        endpoint.__name__ = "control_" + path.replace("-", "_").replace("/", "_")
        return post(f"{PREFIX}/{path}", status_code=200, name=endpoint.__name__)(endpoint)

    @get(f"{PREFIX}/accounts")
    async def accounts() -> Response[bytes]:
        users = ctx.world.users
        # the behaviour switches as they are now (the control API may have flipped them)
        prefs = [ctx.bot.user_prefs(users[a.user_id]) for a in ctx.accounts]
        return _ok([
            msgspec.to_builtins(a)
            | {"interaction_events_fallback": users[a.user_id].interaction_events_fallback, "final_message_nonce": users[a.user_id].final_message_nonce, "info_layout": p.info_layout, "settings_ids": p.settings_ids, "website_link": p.website_link}
            for a, p in zip(ctx.accounts, prefs, strict=True)
        ])

    @get(f"{PREFIX}/info")
    async def info() -> Response[bytes]:
        return _ok(
            {
                "base_url": ctx.base_url,
                "rest_base": f"{ctx.base_url}/api/v9",
                "rest_base_v10": f"{ctx.base_url}/api/v10",
                "gateway_url": ctx.gateway.url,
                "inpaint_submit_url": f"{ctx.base_url}/inpaint/api/submit-job",
                "speed": ctx.config.speed,
                "seed": ctx.config.seed,
            }
        )

    @get(f"{PREFIX}/interactions")
    async def interactions() -> Response[bytes]:
        return _ok(ctx.interactions.records)

    @get(f"{PREFIX}/jobs")
    async def jobs() -> Response[bytes]:
        return _ok([j.info() for j in ctx.runner.jobs.values()])

    @get(f"{PREFIX}/faults")
    async def armed() -> Response[bytes]:
        return _ok(faults.armed())

    return [
        accounts,
        info,
        interactions,
        jobs,
        armed,
        handler("faults/drop-gateway", UserTarget, lambda b: faults.drop_gateway(b.user_id)),
        handler("faults/reconnect", UserTarget, lambda b: faults.reconnect(b.user_id)),
        handler("faults/invalid-session", InvalidSessionBody, lambda b: faults.invalid_session(b.user_id, b.resumable)),
        handler("faults/refuse-next-resume", CountBody, lambda b: faults.refuse_next_resume(b.count)),
        handler("faults/rate-limit", RateLimitBody, lambda b: faults.rate_limit(b.count, b.retry_after, b.is_global)),
        handler("faults/captcha-next-interaction", CaptchaBody, lambda b: faults.captcha_next_interaction(b.user_id, b.kind)),
        handler("faults/moderate-running", UserTarget, lambda b: faults.moderate_running(b.user_id)),
        handler("faults/stall-next-job", UserTarget, lambda b: faults.stall_next_job(b.user_id)),
        handler("faults/revoke-token", RevokeBody, lambda b: faults.revoke_token(b.token)),
        handler("faults/fail-next-job", FailBody, lambda b: faults.fail_next_job(b.title, b.description, b.user_id)),
        handler("faults/interaction-5xx", ServerErrorBody, lambda b: faults.interaction_5xx(b.count, b.status, b.accepted, b.user_id)),
        handler("faults/bump-command-versions", BumpBody, lambda b: faults.bump_command_versions(b.name)),
        handler("faults/reset", None, lambda b: faults.reset()),
        handler("settings", SettingsBody, lambda b: faults.set_settings(
            b.user_id, remix=b.remix, mode=b.mode, info_layout=b.info_layout, settings_ids=b.settings_ids, website_link=b.website_link)),
        handler("guild-apps", GuildAppsBody, lambda b: faults.set_guild_apps(b.apps, b.user_id)),
        handler("behaviour", BehaviourBody, lambda b: faults.set_behaviour(
            b.user_id, interaction_events_fallback=b.interaction_events_fallback, final_message_nonce=b.final_message_nonce)),
    ]
