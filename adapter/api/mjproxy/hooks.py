"""Wiring of the webhook dispatcher: its payload is the /mj task view, so it is built here (the
engine's dispatcher only knows it is handed bytes)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from adapter.api.mjproxy.views import task_json
from adapter.config import Settings
from adapter.domain.jobs import Job
from adapter.engine.webhooks import WebhookDispatcher, WebhookOptions, hook_url_problem, load_or_create_secret
from adapter.stores.base import JobStore

log = logging.getLogger(__name__)


def webhook_base(settings: Settings) -> str:
    """Image URLs in webhook payloads: there is no request to take the Host from, so the
    configured public base, else the listen address."""
    if base := settings.image_base_url():
        return base
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


# Job.extra["hook_format"] names the payload a job's webhooks take when a front door other than
# /mj made it (e.g. "acedata": that API's task result); absent, the /mj task view
HOOK_FORMAT = "hook_format"


def build_webhooks(settings: Settings, store: JobStore, formats: Mapping[str, Callable[[Job, str], bytes]] | None = None) -> WebhookDispatcher:
    base = webhook_base(settings)
    renderers = dict(formats or {})

    def render(job: Job) -> bytes:
        other = renderers.get(job.extra.get(HOOK_FORMAT, ""))
        return other(job, base) if other is not None else task_json(job, base)

    if settings.webhook_url and (problem := hook_url_problem(settings.webhook_url, settings.webhook_allow_hosts)):
        log.warning("webhook_url %s: its events will not be delivered", problem)
    configured = settings.webhook_secret.reveal()
    options = WebhookOptions(
        global_url=settings.webhook_url or None,
        retry_seconds=settings.webhook_retry_seconds,
        backoff_seconds=settings.webhook_backoff_seconds,
        backoff_max_seconds=settings.webhook_backoff_max_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
        allow_hosts=settings.webhook_allow_hosts,
    )
    return WebhookDispatcher(store, render, options, lambda: load_or_create_secret(configured, settings.data_dir))
