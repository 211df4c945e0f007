"""The Litestar application: configuration -> stores -> accounts -> engine -> routes."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING
import httpx
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig

from adapter.api.admin.routes import accounts, healthz, image_cache_control, image_file, metrics, pause_account, readyz, resume_account
from adapter.api.common.auth import KeyRing
from adapter.api.common.bodies import json_body_limit
from adapter.api.common.browser import LoopbackCors, browser_guard
from adapter.api.common.fast_lane import AnswerMemo
from adapter.api.context import ApiContext
from adapter.api.mcp.endpoint import McpEndpoint
from adapter.api.mcp.tools import McpTools
from adapter.api.acedata.router import ace_router
from adapter.api.acedata.serving import HOOK_FORMAT as ACE_HOOK_FORMAT, AceServing, callback_json as ace_callback_json
from adapter.api.mjproxy.hooks import build_webhooks
from adapter.api.mjproxy.router import mj_routers
from adapter.api.mjproxy.serving import MjServing
from adapter.api.yokonsan.callbacks import build_callbacks
from adapter.api.yokonsan.router import yokonsan_router
from adapter.api.yokonsan.serving import YokonsanServing
from adapter.api.openai.errors import EXCEPTION_HANDLERS
from adapter.api.openai.jobs_view import act_on_job, get_job, get_job_seed
from adapter.api.openai.router_images import create_image, get_model, list_models
from adapter.api.openai.image_inputs import ImageInputs
from adapter.api.openai.result_lookup import ResultFinder
from adapter.api.openai.router_chat import create_chat_completion
from adapter.api.openai.router_edits import create_image_edit, create_image_variation
from adapter.api.openai.router_responses import create_response, retrieve_response
from adapter.api.openai.serving_chat import ChatServing
from adapter.api.openai.serving_edits import EditServing
from adapter.api.openai.serving_images import ImageServing
from adapter.api.openai.serving_responses import ResponsesServing
from adapter.backends.base import Account
from adapter.backends.discord.identity import BrowserIdentity
from adapter.backends.discord.session import DiscordAccount, DiscordAccountOptions
from adapter.backends.mjproxy.account import ProviderAccount
from adapter.config import DiscordAccountConfig, ProviderAccountConfig, Settings, default_replica_id
from adapter.domain.actions import Mode
from adapter.domain.banned import build_banned_words
from adapter.domain.models import ModelCatalog
from adapter.engine.bus import JobBus
from adapter.engine.metrics import Metrics
from adapter.engine.results import ResultIngester
from adapter.engine.retention import DAY_SECONDS, RetentionSweeper
from adapter.engine.scheduler import Scheduler
from adapter.engine.service import JobService
from adapter.engine.translate import ChatTranslator
from adapter.media.decoding import USER_IMAGE_MAX_PIXELS
from adapter.media.fetch import FetchPolicy, ImageFetcher
from adapter.media.store import ImageStore, LocalImageStore
from adapter.stores.base import JobStore
from adapter.stores.factory import open_store

if TYPE_CHECKING:
    from adapter.engine.cluster import Cluster

log = logging.getLogger("adapter")

VERSION = "0.1.0"


class BindRefused(RuntimeError):
    pass


def check_bind(settings: Settings) -> None:
    """Without API keys the server is open to anyone who can reach it: loopback only."""
    if settings.api_keys or settings.admin_keys:
        return
    host = settings.host.strip("[]")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BindRefused(
            f"Refusing to listen on {settings.host} without API keys: anyone who can reach it could spend "
            "your Midjourney hours. Set MJ_ADAPTER_API_KEYS, or bind to 127.0.0.1."
        )


def _discord_options(cfg: DiscordAccountConfig) -> DiscordAccountOptions:
    identity = BrowserIdentity(user_agent=cfg.user_agent) if cfg.user_agent else BrowserIdentity()
    return DiscordAccountOptions(
        id=cfg.id,
        token=cfg.token.reveal(),
        guild_id=cfg.guild_id or None,
        channel_id=cfg.channel_id,
        dm_channel_id=cfg.dm_channel_id or None,
        modes=cfg.modes,
        concurrency=cfg.concurrency,
        queue_size=cfg.queue_size,
        min_gap_seconds=cfg.min_gap_seconds,
        gap_jitter_seconds=cfg.gap_jitter_seconds,
        daily_cap=cfg.daily_cap,
        identity=identity,
        rest_base=cfg.rest_base,
        inpaint_submit_url=cfg.inpaint_submit_url,
        compress=cfg.compress,
        ack_grace_seconds=cfg.ack_grace_seconds,
    )


async def _demo_accounts(settings: Settings, stack: AsyncExitStack, demo_info: dict[str, str]) -> tuple[list[Account], tuple[str, ...]]:
    """Start the built-in simulator on loopback and connect accounts to it over the real
    Discord protocol: the same code path as production."""
    from adapter.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(speed=settings.simulator_speed, seed=settings.simulator_seed, accounts=settings.simulator_accounts))
    await sim.start(host="127.0.0.1", port=0)
    stack.push_async_callback(sim.stop)
    demo_info["simulator_url"] = sim.base_url
    log.warning(
        "DEMO MODE: no Midjourney account is configured, so jobs run on the built-in simulator at %s "
        "(speed x%g). Images are labelled SIMULATED. Configure an account to use real Midjourney.",
        sim.base_url,
        settings.simulator_speed,
    )
    # pacing is scaled with the simulator's speed so demo jobs are not dominated by waiting
    scale = max(settings.simulator_speed, 1.0)
    accounts: list[Account] = []
    for i, acct in enumerate(sim.accounts):
        accounts.append(
            DiscordAccount(
                DiscordAccountOptions(
                    id=f"demo-{i + 1}",
                    token=acct.token,
                    guild_id=acct.guild_id,
                    channel_id=acct.channel_id,
                    modes=(Mode.FAST, Mode.RELAX, Mode.TURBO),
                    min_gap_seconds=1.5 / scale,
                    gap_jitter_seconds=1.0 / scale,
                    rest_base=sim.rest_base,
                    inpaint_submit_url=sim.inpaint_submit_url,
                    delete_grace_seconds=max(0.2, 3.0 / scale),
                )
            )
        )
    return accounts, ("127.0.0.1",)


def _make_account(cfg: DiscordAccountConfig | ProviderAccountConfig) -> Account:
    if isinstance(cfg, DiscordAccountConfig):
        return DiscordAccount(_discord_options(cfg))
    return ProviderAccount.from_config(cfg)


def _cluster(settings: Settings, store: JobStore, configured: list[DiscordAccountConfig | ProviderAccountConfig]) -> Cluster:
    from adapter.engine.cluster import AccountPlan, Cluster  # needs the [redis] extra, as the store does

    by_id = {a.id: a for a in configured}
    plans = [
        AccountPlan(
            id=cfg.id,
            kind="discord" if isinstance(cfg, DiscordAccountConfig) else "mjproxy",
            modes=cfg.modes,
            concurrency=cfg.concurrency,
            queue_size=cfg.queue_size,
        )
        for cfg in configured
    ]
    cluster = Cluster(
        store.client_url,  # type: ignore[attr-defined]
        prefix=store.prefix,  # type: ignore[attr-defined]
        replica_id=settings.replica_id or default_replica_id(),
        plans=plans,
        make_account=lambda account_id: _make_account(by_id[account_id]),
        lease_ttl_seconds=settings.lease_ttl_seconds,
    )
    log.info("replica %s: account leases on %r (ttl %gs)", cluster.replica_id, store, settings.lease_ttl_seconds)
    if not settings.image_store_url:
        log.warning(
            "replica %s: result images are kept in this replica's DATA_DIR; with several replicas, set "
            "IMAGE_STORE_URL (an S3 bucket) or share DATA_DIR, or an image URL answers only where the job ran",
            cluster.replica_id,
        )
    return cluster


def image_store(settings: Settings) -> ImageStore:
    if not settings.image_store_url:
        return LocalImageStore(settings.data_dir)
    from adapter.media.s3_store import S3ImageStore, parse_s3_url  # needs the [s3] extra

    location = parse_s3_url(settings.image_store_url)
    log.info("images: %s", location.describe())
    # what the /images/ route would send for a file written just now
    return S3ImageStore(location, cache_control=image_cache_control(settings.retention_days, 0.0, now=0.0))


def create_app(settings: Settings) -> Litestar:
    mcp = McpEndpoint(KeyRing(settings.api_keys, settings.admin_keys), settings.image_base_url())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = open_store(settings.resolved_store_url())
            await store.open()
            stack.push_async_callback(store.close)

            demo_info: dict[str, str] = {}
            cluster = None
            if settings.demo:
                accounts, extra_allow = await _demo_accounts(settings, stack, demo_info)
            else:
                configured = [a for a in settings.accounts if a.enabled]
                # upstream midjourney-proxy providers; their image URLs are trusted like the operator's own hosts
                extra_allow = tuple(httpx.URL(a.base_url).host for a in configured if isinstance(a, ProviderAccountConfig))
                if settings.clustered:
                    # several replicas may share this Redis: each account is driven by the one
                    # replica holding its lease, and the others hand it their jobs
                    cluster = _cluster(settings, store, configured)
                    accounts = []
                else:
                    accounts = [_make_account(a) for a in configured]
            # Two trust levels: results come from the account's own sources (the Discord CDN, the
            # simulator, provider hosts, the operator's exemptions); URLs a caller hands us may
            # reach public addresses only, plus what the operator listed for them explicitly.
            source_fetcher = ImageFetcher(
                FetchPolicy(max_bytes=settings.fetch_max_bytes, allow_hosts=(*settings.fetch_allow_hosts, *extra_allow))
            )
            stack.push_async_callback(source_fetcher.aclose)
            user_fetcher = ImageFetcher(
                FetchPolicy(
                    max_bytes=settings.fetch_max_bytes,
                    allow_hosts=settings.user_url_allow_hosts,
                    uniform_errors=True,
                    max_pixels=USER_IMAGE_MAX_PIXELS,
                )
            )
            stack.push_async_callback(user_fetcher.aclose)
            images = image_store(settings)

            bus: JobBus
            if cluster is not None:
                from adapter.engine.bus_redis import RedisJobBus
                from adapter.engine.cluster import redis_client

                bus_client = redis_client(store.client_url)  # type: ignore[attr-defined]
                stack.push_async_callback(bus_client.aclose)
                bus = RedisJobBus(bus_client, cluster.prefix, cluster.replica_id, resync=store.get)
                await bus.start()
                stack.push_async_callback(bus.close)  # after the service: its last events go out
            else:
                bus = JobBus()
            metrics_ = Metrics()
            bus.add_listener(metrics_.observe)
            scheduler = Scheduler(accounts)
            translator = None
            if settings.translate_base_url:
                translator = ChatTranslator(
                    settings.translate_base_url,
                    model=settings.translate_model,
                    api_key=settings.translate_api_key.reveal(),
                    timeout_seconds=settings.translate_timeout_seconds,
                )
                stack.push_async_callback(translator.aclose)
                log.info("prompt translation: on (model %s at %s)", settings.translate_model, translator.where)
            service = JobService(
                store=store,
                scheduler=scheduler,
                ingester=ResultIngester(source_fetcher, images),
                banned=build_banned_words(settings.banned_words, replace=settings.banned_words_replace),
                timeouts=settings.timeouts,
                bus=bus,
                idempotency_window_seconds=settings.idempotency_window_seconds,
                translator=translator,
                peers=cluster,
            )
            # webhooks see every job event (recovery included) and close after the service, so the
            # last events are in the outbox before the store closes
            webhooks = build_webhooks(settings, store, {ACE_HOOK_FORMAT: ace_callback_json})
            bus.add_listener(webhooks.observe)
            await webhooks.start()
            stack.push_async_callback(webhooks.close)
            if callbacks := build_callbacks(settings, store):  # yokonsan/midjourney-api's CALLBACK_URL
                bus.add_listener(callbacks.observe)
                await callbacks.start()
                stack.push_async_callback(callbacks.close)
            for account in accounts:
                stack.push_async_callback(account.close)
            # connect every account at once; a slow or broken one must not hold the others
            await asyncio.gather(*(a.start() for a in accounts))
            if cluster is not None:
                cluster.bind(service, scheduler)
                # unwinds after the service has stopped following jobs: then the leases go back
                stack.push_async_callback(cluster.close)
            await service.start()
            stack.push_async_callback(service.close)
            if cluster is not None:
                await cluster.start()
            if settings.retention_days is not None:
                # closes first (the stack unwinds in reverse), so no pass runs on a closed store
                retention = RetentionSweeper(
                    store,
                    images,
                    retention_seconds=settings.retention_days * DAY_SECONDS,
                    interval_seconds=settings.retention_interval_seconds,
                )
                retention.start()
                stack.push_async_callback(retention.close)

            catalog = ModelCatalog(settings.model_aliases)
            image_inputs = ImageInputs(user_fetcher, images, max_bytes=settings.fetch_max_bytes)
            chat_serving = ChatServing(service, image_inputs, catalog, preview_images=settings.chat_preview_images)
            ctx = ApiContext(
                settings=settings,
                service=service,
                scheduler=scheduler,
                images=images,
                user_fetcher=user_fetcher,
                keys=KeyRing(settings.api_keys, settings.admin_keys),
                catalog=catalog,
                metrics=metrics_,
                image_serving=ImageServing(service, images, catalog),
                chat_serving=chat_serving,
                responses_serving=ResponsesServing(chat_serving, service, images, catalog),
                edit_serving=EditServing(service, catalog, image_inputs, ResultFinder(service, images)),
                mj_serving=MjServing(service, scheduler, images, user_fetcher, webhook_allow_hosts=settings.webhook_allow_hosts),
                yokonsan_serving=YokonsanServing(service, images, user_fetcher, max_bytes=settings.fetch_max_bytes),
                answers=AnswerMemo(service),
                started_at=time.time(),
                simulator_url=demo_info.get("simulator_url"),
                ace_serving=AceServing(service, user_fetcher, webhook_allow_hosts=settings.webhook_allow_hosts),
                cluster=cluster,
            )
            app.state.ctx = ctx
            await stack.enter_async_context(mcp.running(McpTools(service, image_inputs, images, settings.timeouts)))
            app.state.begin_shutdown = service.begin_shutdown
            for st in scheduler.statuses():
                log.info("account %s (%s): %s%s", st.id, st.kind, st.state.value, f" - {st.reason}" if st.reason else "")
            yield

    openai_routes = Router(
        path="/",
        route_handlers=[list_models, get_model, create_image, get_job, act_on_job, get_job_seed, accounts, pause_account, resume_account, create_chat_completion, create_response, retrieve_response, create_image_edit, create_image_variation],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    keyless = KeyRing(settings.api_keys, settings.admin_keys).open
    return Litestar(
        route_handlers=[openai_routes, *mj_routers(), yokonsan_router(), ace_router(), healthz, readyz, metrics, image_file, mcp.route()],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        # keyless (loopback only): pages on this machine only, refused origins get no CORS headers
        # at all (browser.py); with keys every call needs one, so CORS is the operator's choice
        guards=[browser_guard(keyless=True)] if keyless else [],
        middleware=[LoopbackCors] if keyless else [],
        cors_config=None if keyless else CORSConfig(allow_origins=list(settings.cors_origins), allow_headers=["*"], allow_methods=["*"]),
        openapi_config=OpenAPIConfig(title="mj-adapter", version=VERSION, path="/docs"),
        request_max_body_size=json_body_limit(settings.fetch_max_bytes),
    )
