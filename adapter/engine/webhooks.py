"""Webhooks: every change of a job, POSTed to its `notifyHook` and to the global webhook URL,
signed the Standard Webhooks way, delivered at least once.

The dispatcher listens on the JobBus (the engine itself never hears of HTTP). Each event becomes
an outbox item in the job store *before* anything is sent, so deliveries survive restarts; the
store hands out only the oldest pending item of each (job, url) queue, so a receiver never sees
an older state of a task after a newer one, even while an earlier delivery is being retried with
exponential backoff and jitter. The payload is rendered once, when the event happens, by a
function the app supplies (the /mj task view): this module does not know the wire format.

Several replicas on one shared store each run a dispatcher over the same outbox. Every delivery
attempt is claimed first (`JobStore.outbox_claim`, owner = this dispatcher's replica id) for a
time well above the delivery timeout, and a delivery is cut off before its claim ends: so one
replica, and one only, is sending a given item at any moment. A replica that dies mid-delivery
leaves its claim to expire; then another one takes the item over (at least once toward
receivers stays the contract). A replica that shuts down cleanly releases the claims of the
deliveries it cut off, so they go out again at once.

Hook URLs are caller input, so delivery follows the same address rules as image fetching: the
host is resolved here, private/loopback/link-local targets are refused unless the operator
allow-listed them, and the request goes to exactly the checked address.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import hmac
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec

from adapter.domain.job_ids import new_job_id
from adapter.domain.jobs import Job, JobStatus, now_ms
from adapter.media.addresses import HostAllowList, is_public_ip, parse_ip
from adapter.media.fetch import Resolver, system_resolver
from adapter.stores.base import JobStore, OutboxItem, StoreError

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
_MAX_URL_CHARS = 2048
_GONE = 410  # Standard Webhooks: the receiver asks us to stop


# --- signing ----------------------------------------------------------------------------------


def signing_key(secret: str) -> bytes:
    """Standard Webhooks secrets are `whsec_<base64>`: the key is the decoded bytes. Any other
    string is used as-is (UTF-8), so a plain passphrase also works."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(key: bytes, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True if any `v1,` signature in the (space separated) header matches."""
    expected = sign(key, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, part) for part in header.split())


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


# Job.extra[HOOK_EVENTS] = FINAL_ONLY: the job's own webhook URL gets its final state only;
# FAILURE_ONLY: only a final state that is not SUCCESS (a job whose success is reported by
# another job, e.g. the last step of a task made of several)
HOOK_EVENTS = "hook_events"
FINAL_ONLY = "final"
FAILURE_ONLY = "failure"


def load_or_create_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, or one generated once and kept in `<data_dir>/webhook_secret`
    (mode 0600) so that no webhook is ever sent unsigned and receivers keep one key across
    restarts."""
    if configured:
        return configured
    path = data_dir / "webhook_secret"
    try:
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    secret = new_secret()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # exclusive: two dispatchers (or processes) that both found no file keep the first one's
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if existing := path.read_text(encoding="utf-8").strip():
            return existing
        # an empty file left by a writer that died: take it over
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    log.warning("no webhook_secret configured: generated one in %s (give it to your webhook receivers)", path)
    return secret


# --- retry policy -----------------------------------------------------------------------------


def backoff_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before the next try after `attempts` failures: base * 2^(attempts-1), capped,
    with "equal jitter" (half fixed, half random) so that a receiver coming back is not hit by
    every queued delivery in the same instant, and the delay still grows."""
    r = rng or random
    full = min(cap, base * (2 ** max(attempts - 1, 0)))
    return full / 2 + r.uniform(0, full / 2)


# --- addresses --------------------------------------------------------------------------------


def hook_url_problem(url: str, allow_hosts: tuple[str, ...] = ()) -> str | None:
    """Why a hook URL can never be delivered to (checked at submit time), or None. Host names
    are resolved only at delivery, where the address rules are applied again."""
    if len(url) > _MAX_URL_CHARS:
        return "is too long."
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "is not a valid URL."
    if parsed.scheme not in ("http", "https"):
        return "must be an http or https URL."
    if not parsed.host:
        return "has no host."
    if parsed.userinfo:
        return "must not carry credentials."
    allow = HostAllowList(allow_hosts)
    ip = parse_ip(parsed.host)
    if ip is not None and not is_public_ip(ip) and not allow.allows_ip(ip) and not allow.allows_host(parsed.host):
        return "points to a private or local address (the operator can allow it with webhook_allow_hosts)."
    return None


class HookError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class HookTransport:
    """POSTs a body to a hook URL at an address checked against the SSRF rules."""

    def __init__(
        self,
        *,
        allow_hosts: tuple[str, ...] = (),
        timeout: float = 10.0,
        resolver: Resolver | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._allow = HostAllowList(allow_hosts)
        self._resolver = resolver or system_resolver
        self._own_client = client is None
        # no env proxies (they would move the connection somewhere we did not check), no
        # redirects (each would need the same checks; a receiver answering 3xx simply failed),
        # no keep-alive (pools are keyed by the pinned IP, not by the name checked for TLS)
        self._client = client or httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def _addresses(self, url: httpx.URL) -> list[str]:
        host = url.host
        literal = parse_ip(host)
        if literal is not None:
            candidates = [literal]
        else:
            try:
                answers = await self._resolver(host, url.port or (443 if url.scheme == "https" else 80))
            except (OSError, UnicodeError, ValueError):
                raise HookError("the hook host name could not be resolved") from None
            candidates = [ip for ip in (parse_ip(a) for a in answers) if ip is not None]
            if not candidates:
                raise HookError("the hook host name could not be resolved")
        if not self._allow.allows_host(host):
            for ip in candidates:
                if not is_public_ip(ip) and not self._allow.allows_ip(ip):
                    raise HookError("the hook URL points to a private or local address that is not allow-listed", permanent=True)
        return [str(ip) for ip in candidates]

    async def post(self, raw_url: str, body: bytes, headers: dict[str, str]) -> int:
        """The receiver's HTTP status; HookError when nothing could be delivered."""
        try:
            url = httpx.URL(raw_url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise HookError("the hook URL is not valid", permanent=True) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise HookError("the hook URL must be http(s) with a host", permanent=True)
        for ip in await self._addresses(url):
            extensions: dict[str, object] = {}
            if url.scheme == "https" and parse_ip(url.host) is None:
                extensions["sni_hostname"] = url.host
            request = httpx.Request(
                "POST",
                url.copy_with(host=ip),
                headers={"Host": url.netloc.decode("ascii"), **headers},
                content=body,
                extensions=extensions,
            )
            try:
                # the receiver's body is never read: only its status matters
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError:
                continue
            except httpx.TimeoutException:
                raise HookError("the receiver did not answer in time") from None
            except httpx.HTTPError as exc:
                raise HookError(f"the delivery failed ({type(exc).__name__})") from None
            await response.aclose()
            return response.status_code
        raise HookError("could not connect to the receiver")


# --- the dispatcher ---------------------------------------------------------------------------


class WebhookOptions(msgspec.Struct, frozen=True, kw_only=True):
    global_url: str | None = None
    retry_seconds: float = 86400.0  # give up on an event this long after it happened
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 600.0
    timeout_seconds: float = 10.0
    allow_hosts: tuple[str, ...] = ()
    max_parallel: int = 8  # deliveries in flight at once (each to a different task queue)
    idle_poll_seconds: float = 1.0  # also picks up items other replicas added to a shared store
    # how long a replica holds an item for one delivery attempt; None: claim_seconds_for(timeout)
    claim_seconds: float | None = None

    def claim_time(self) -> float:
        return self.claim_seconds if self.claim_seconds is not None else claim_seconds_for(self.timeout_seconds)


def claim_seconds_for(timeout_seconds: float) -> float:
    """A claim comfortably longer than one delivery: the transport's timeout applies per phase
    (connect, write, read) and per address tried, and a slow store adds its own round trips;
    a delivery still running near the claim's end is cut off. Not longer than that: a replica
    that dies mid-delivery holds up that task's later events (kept in order) until it runs out."""
    return max(15.0, 2 * timeout_seconds + 10.0)


# a delivery is cut off this long (at most a quarter of the claim) before its claim ends, so no
# other replica can have taken the item over while this one is still sending it
_CLAIM_MARGIN_SECONDS = 10.0


def default_replica_id() -> str:
    """host:pid plus a few random characters (two dispatchers in one process stay distinct)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


Render = Callable[[Job], bytes]

_STOP_GRACE_SECONDS = 5.0  # how long close() keeps asking a task to stop before giving up on it


def _cancel_requested() -> bool:
    """True if the running task was asked to stop and has not handled it. A library may swallow
    a cancellation: on Python 3.11, `asyncio.wait_for` returns the inner result instead of
    raising when the cancel arrives just as the inner future finishes (CPython gh-86296), and
    redis-py sends every command through `wait_for(..., socket_timeout)`. A loop that relies on
    seeing CancelledError would then run on forever."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _stop_tasks(
    tasks: list[asyncio.Task[None]], what: str, *, report: bool = True, grace: float = _STOP_GRACE_SECONDS
) -> None:
    """Cancel `tasks` and wait for them, cancelling again while any is left (a cancellation can
    be lost, see `_cancel_requested`), but never longer than `grace`. Their outcome is
    retrieved (and logged if `report`), so nothing is reported as "never retrieved"."""
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + grace
    while pending:
        for t in pending:
            t.cancel()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            log.error("webhooks: %d %s task(s) did not stop within %.0f s", len(pending), what, grace)
            break
        _, pending = await asyncio.wait(pending, timeout=min(0.5, remaining))
    for t in tasks:
        if t.done() and not t.cancelled() and (exc := t.exception()) is not None and report:
            log.error("webhooks: %s task %s failed", what, t.get_name(), exc_info=exc)


def _own_hook_hears(job: Job) -> bool:
    mode = job.extra.get(HOOK_EVENTS)
    if mode == FAILURE_ONLY:
        return job.status.finished and job.status is not JobStatus.SUCCESS
    return mode != FINAL_ONLY or job.status.finished


class WebhookDispatcher:
    def __init__(
        self,
        store: JobStore,
        render: Render,
        options: WebhookOptions,
        secret: str | Callable[[], str],
        *,
        transport: HookTransport | None = None,
        rng: random.Random | None = None,
        replica_id: str | None = None,
    ) -> None:
        self.store = store
        # the owner of this dispatcher's outbox claims: unique per process (and per instance)
        self.replica_id = replica_id or default_replica_id()
        self._claim_ms = max(1, int(options.claim_time() * 1000))
        # a delivery must end before its claim does
        self._send_seconds = options.claim_time() - min(_CLAIM_MARGIN_SECONDS, options.claim_time() / 4)
        self.render = render
        self.options = options
        # a callable is asked once, on the first delivery (a generated secret is only made when
        # some webhook is actually sent)
        self._secret = secret
        self._key: bytes | None = None
        self._transport = transport or HookTransport(allow_hosts=options.allow_hosts, timeout=options.timeout_seconds)
        self._rng = rng or random.Random()
        self._incoming: asyncio.Queue[OutboxItem] = asyncio.Queue()
        self._last_body: dict[str, bytes] = {}  # job id -> the last body queued for it
        self._seq = 0
        self._wake = asyncio.Event()
        self._retries: list[int] = []  # heap of next_attempt_ms this process scheduled
        self._inflight: dict[str, asyncio.Task[None]] = {}
        # items this dispatcher holds a claim on and has not recorded an outcome for: id -> the
        # item as it was before the claim (released back to that at shutdown)
        self._held: dict[str, OutboxItem] = {}
        # deliveries that ended since the current outbox read began: that read may predate their
        # outcome (a store with several connections answers it concurrently), so it must not
        # start them again - a second POST of an item already delivered, possibly after the
        # next newer event of its task
        self._settled: set[str] = set()
        self._slots = asyncio.Semaphore(max(options.max_parallel, 1))
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.Task[None] | None = None
        self._closing = False  # no new events are accepted
        self._stopping = False  # the loops end at their next step (set after the last write)
        self._flush_seconds = 10.0  # close() waits this long for observed events to be written
        self.delivered = 0  # counters for tests and metrics
        self.failed_attempts = 0
        self.dead = 0

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="webhook-writer")
        self._loop = asyncio.create_task(self._deliver_loop(), name="webhook-delivery")

    async def close(self) -> None:
        """Write every event already observed to the outbox, then stop delivering. Anything not
        delivered stays pending in the store and goes out after the next start."""
        self._closing = True
        try:
            async with asyncio.timeout(self._flush_seconds):
                await self._incoming.join()
        except TimeoutError:
            log.warning("webhooks: %d events not written to the outbox at shutdown", self._incoming.qsize())
        # The flag stops a loop whose cancellation was lost inside a store call; the wake-up
        # ends the delivery loop's idle wait at once.
        self._stopping = True
        self._wake.set()
        await _stop_tasks([t for t in (self._writer, self._loop) if t is not None], "webhook loop")
        # deliveries under way may finish (and be recorded) for a moment; the rest are cut off
        # and stay pending, to be sent again after the next start
        inflight = list(self._inflight.values())
        if inflight:
            await asyncio.wait(inflight, timeout=2.0)
        await _stop_tasks(inflight, "webhook delivery", report=False)  # _done reported them
        await self._release_claims()
        await self._transport.aclose()

    async def _release_claims(self) -> None:
        """Give back the claims of deliveries cut off at shutdown, so another replica (or the
        next start) sends them at once instead of after the claim's end. Only claims still ours:
        an item whose outcome was recorded meanwhile, or that was taken over, is left alone."""
        held, self._held = list(self._held.values()), {}
        if not held:
            return
        try:
            async with asyncio.timeout(2.0):
                for item in held:
                    released = msgspec.structs.replace(item, claimed_by=None, claimed_until_ms=0)
                    await self.store.outbox_update(released, expect_owner=self.replica_id)
        except (TimeoutError, Exception) as exc:
            log.warning("webhooks: could not release every claim at shutdown (they expire): %s", exc)

    # --- observing (a JobBus listener: synchronous, never blocks) -----------------------------

    def observe(self, job: Job) -> None:
        # a front door whose callbacks carry only the result (the action-style API's
        # callback_url) marks its jobs; the operator's global URL still hears every event
        own = job.webhook_url if _own_hook_hears(job) else None
        urls = [u for u in dict.fromkeys((own, self.options.global_url)) if u]
        if not urls or self._closing:
            return
        try:
            body = self.render(job)
        except Exception:
            log.exception("webhooks: job %s could not be rendered", job.id)
            return
        if job.status.finished:
            previous = self._last_body.pop(job.id, None)
        else:
            previous = self._last_body.get(job.id)
            self._last_body[job.id] = body
        if previous == body:
            return  # the same state again (e.g. a save with nothing new): not an event
        created = now_ms()
        for url in urls:
            # a clock-based sequence keeps growing across restarts, so events made after a
            # restart queue behind the ones still pending from before it
            self._seq = max(self._seq + 1, created * 1000)
            self._incoming.put_nowait(
                OutboxItem(id=f"msg_{new_job_id()[2:]}", job_id=job.id, url=url, seq=self._seq, body=body, created_ms=created, next_attempt_ms=created)
            )

    async def _write_loop(self) -> None:
        # one writer, in observation order: an item is in the store before any later one
        while not self._stopping:
            item = await self._incoming.get()
            try:
                while not self._stopping:
                    try:
                        await self.store.outbox_add(item)
                        break
                    except StoreError as exc:
                        if "already exists" in str(exc):
                            break
                        log.warning("webhooks: outbox write failed, retrying: %s", exc)
                        await asyncio.sleep(0.5)
                self._wake.set()
            finally:
                self._incoming.task_done()
            if _cancel_requested():
                raise asyncio.CancelledError  # the store call swallowed it

    # --- delivering ---------------------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._settled.clear()
            now = now_ms()
            try:
                due = await self.store.outbox_due(now, limit=100)
            except Exception as exc:
                log.warning("webhooks: cannot read the outbox: %s", exc)
                due = []
            if _cancel_requested():
                raise asyncio.CancelledError  # the store call swallowed it
            if self._stopping:
                return
            while self._retries and self._retries[0] <= now:
                heapq.heappop(self._retries)
            # sleep until the next retry this process knows of, or poll now and then for the rest
            next_wait = self.options.idle_poll_seconds
            if self._retries:
                next_wait = min(next_wait, max(0.0, (self._retries[0] - now_ms()) / 1000))
            for item in due:
                # checked per item: a delivery may also end while this loop waits for a slot
                if item.id in self._inflight or item.id in self._settled:
                    continue
                await self._slots.acquire()
                if self._stopping:
                    self._slots.release()
                    return
                task = asyncio.create_task(self._deliver(item), name=f"webhook-{item.id}")
                self._inflight[item.id] = task
                task.add_done_callback(lambda t, i=item.id: self._done(i, t))
            try:
                async with asyncio.timeout(next_wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _done(self, item_id: str, task: asyncio.Task[None]) -> None:
        self._inflight.pop(item_id, None)
        self._settled.add(item_id)
        self._slots.release()
        self._wake.set()
        # retrieved here, so a crash outside _deliver's own handlers is logged, not lost
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("webhooks: delivery of %s failed", item_id, exc_info=exc)

    def key(self) -> bytes:
        if self._key is None:
            self._key = signing_key(self._secret() if callable(self._secret) else self._secret)
        return self._key

    def headers(self, item: OutboxItem, timestamp: int) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "user-agent": "mj-adapter-webhooks",
            "webhook-id": item.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.key(), item.id, timestamp, item.body),
        }

    async def _deliver(self, due: OutboxItem) -> None:
        if self._key is None and callable(self._secret):
            # a generated secret is read or written on disk: not on the event loop
            self._key = signing_key(await asyncio.to_thread(self._secret))
        # one replica per attempt: another one may have claimed (or delivered) it since the read
        now = now_ms()
        try:
            claimed = await self.store.outbox_claim(due.id, self.replica_id, now + self._claim_ms, now)
        except Exception as exc:
            log.warning("webhooks: cannot claim %s: %s", due.id, exc)
            return
        if claimed is None:
            return
        self._held[due.id] = due
        await self._attempt(claimed)
        self._held.pop(due.id, None)  # not reached when cut off: close() releases the claim

    async def _attempt(self, item: OutboxItem) -> None:
        status: int | None = None
        permanent = False
        try:
            async with asyncio.timeout(self._send_seconds):
                status = await self._transport.post(item.url, item.body, self.headers(item, int(time.time())))
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except HookError as exc:
            error, permanent = exc.message, exc.permanent
        except TimeoutError:
            error = "the delivery took longer than its claim"
        except Exception as exc:  # never let one delivery stop the loop
            log.exception("webhooks: delivery of %s crashed", item.id)
            error = f"internal error ({type(exc).__name__})"
        try:
            if error is None:
                self.delivered += 1
                await self.store.outbox_delete(item.id)
                return
            self.failed_attempts += 1
            item.attempts += 1
            item.last_error = error
            item.claimed_by, item.claimed_until_ms = None, 0  # the outcome ends the claim
            now = now_ms()
            delay_ms = int(backoff_delay(item.attempts, self.options.backoff_seconds, self.options.backoff_max_seconds, self._rng) * 1000)
            expired = now + delay_ms > item.created_ms + int(self.options.retry_seconds * 1000)
            if permanent or status == _GONE or expired:
                item.state = "dead"
                self.dead += 1
                log.warning("webhooks: giving up on %s for job %s after %d attempts: %s", item.id, item.job_id, item.attempts, error)
            else:
                item.next_attempt_ms = now + delay_ms
                heapq.heappush(self._retries, item.next_attempt_ms)
                log.info("webhooks: %s for job %s failed (%s); retry in %.1f s", item.id, item.job_id, error, delay_ms / 1000)
            if not await self.store.outbox_update(item, expect_owner=self.replica_id):
                log.info("webhooks: the outcome of %s was not recorded: delivered, deleted or taken over meanwhile", item.id)
        except Exception as exc:
            # the item stays as it was in the store, claimed: it is tried again (at least once)
            # when the claim ends
            log.warning("webhooks: cannot record the outcome of %s: %s", item.id, exc)
