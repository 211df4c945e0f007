"""What the handlers share: built once by the app factory, read from `app.state.ctx`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Request

from adapter.api.acedata.serving import AceServing
from adapter.api.common.auth import KeyRing
from adapter.api.common.fast_lane import AnswerMemo
from adapter.api.mjproxy.serving import MjServing
from adapter.api.openai.serving_chat import ChatServing
from adapter.api.openai.serving_edits import EditServing
from adapter.api.openai.serving_images import ImageServing
from adapter.api.openai.serving_responses import ResponsesServing
from adapter.api.yokonsan.serving import YokonsanServing
from adapter.config import Settings
from adapter.domain.models import ModelCatalog
from adapter.engine.metrics import Metrics
from adapter.engine.scheduler import Scheduler
from adapter.engine.service import JobService
from adapter.engine.specs import RequestMeta
from adapter.media.fetch import ImageFetcher
from adapter.media.store import ImageStore

if TYPE_CHECKING:
    from adapter.engine.cluster import Cluster


@dataclass
class ApiContext:
    settings: Settings
    service: JobService
    scheduler: Scheduler
    images: ImageStore
    user_fetcher: ImageFetcher  # for URLs callers send: public addresses only
    keys: KeyRing
    catalog: ModelCatalog
    metrics: Metrics
    image_serving: ImageServing
    chat_serving: ChatServing
    responses_serving: ResponsesServing
    edit_serving: EditServing
    mj_serving: MjServing
    yokonsan_serving: YokonsanServing
    answers: AnswerMemo  # finished jobs' answers, given again to identical requests (fast_lane.py)
    started_at: float = 0.0
    simulator_url: str | None = None  # demo mode: the built-in simulator (loopback)
    ace_serving: AceServing | None = None  # /midjourney (the action-style Imagine API)
    cluster: Cluster | None = None  # several replicas: who holds which account

    def public_base(self, request: Request[Any, Any, Any]) -> str:
        """The base of the image URLs in our answers (`<base>/images/<key>`)."""
        return self.settings.image_base_url() or str(request.base_url).rstrip("/")


def ctx_of(request: Request[Any, Any, Any]) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def request_meta(request: Request[Any, Any, Any], owner: str, body: bytes, *, webhook_url: str | None = None, state: str | None = None) -> RequestMeta:
    """Idempotency from the `Idempotency-Key` header, or from an SDK retry of the same body."""
    retry = request.headers.get("x-stainless-retry-count", "0")
    fingerprint = hashlib.sha256(b"\0".join([owner.encode(), request.url.path.encode(), body])).hexdigest()
    return RequestMeta(
        owner=owner,
        idempotency_key=request.headers.get("idempotency-key") or None,
        fingerprint=fingerprint,
        is_retry=retry.isdigit() and int(retry) > 0,
        webhook_url=webhook_url,
        state=state,
    )
