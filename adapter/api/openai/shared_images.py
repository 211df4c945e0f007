"""One conversion per image and output format, shared by every request that watches the job.

Many requests may follow one job: streams attached with one Idempotency-Key, a chat UI that
reopens its stream, the Responses API beside the Images API. Each shows the same previews and the
same result, so the work is done once per (image, output format, compression), never per request:

- `encoded(ref, fmt, compression)`: the image's bytes in that format, with their base64 text
  (what a JSON answer or an SSE event carries), made once and kept a while;
- `stored(job_id, ref, fmt, compression)`: the converted copy put in the image store once; every
  request gets the same ref (the same URL).

Requests that ask while the work is running wait for that one run (single flight); a requester
that goes away does not cancel it for the others. Failures are not remembered.

Bounded: encoded bytes are dropped least recently used past `max_bytes`, `idle_seconds` after
their last use, and `grace_seconds` after their job ended (`job_ended`). Stored refs are small
(a key and a size) and are remembered longer, up to `max_refs`; they are what keeps one copy per
format however late another request for the job comes, within this process.

One instance serves every front door that writes to the same image store (`for_store`).
"""

from __future__ import annotations

import asyncio
import base64
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from adapter.domain.jobs import ImageRef
from adapter.media.fresh import FreshImages
from adapter.media.images import content_type_of, convert_async, normalize_format
from adapter.media.store import ImageStore, job_id_from_key, new_key

T = TypeVar("T")
Key = tuple[str, str, int | None]  # (image key, output format, compression)


class Encoded:
    """An image in one output format. `b64` (ASCII bytes) is made on first use, once."""

    __slots__ = ("_b64", "content_type", "data")

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data = data
        self.content_type = content_type
        self._b64: bytes | None = None

    @property
    def b64(self) -> bytes:
        if self._b64 is None:
            self._b64 = base64.b64encode(self.data)
        return self._b64

    @property
    def b64_text(self) -> str:
        return self.b64.decode("ascii")

    @property
    def held(self) -> int:
        """The memory it holds once its base64 text is made (4/3 of the bytes more)."""
        return len(self.data) + -(-len(self.data) // 3) * 4


class _Entry:
    __slots__ = ("expires", "job_id", "value")

    def __init__(self, value: Encoded, job_id: str | None, expires: float) -> None:
        self.value = value
        self.job_id = job_id
        self.expires = expires


class SingleFlight:
    """At most one run per key at a time; callers asking meanwhile share its outcome. The run is
    its own task, so a caller that is cancelled (its client went away) leaves it running for
    the others."""

    def __init__(self) -> None:
        self._running: dict[Any, asyncio.Task[Any]] = {}
        self.runs = 0  # how many times work actually ran (tests and metrics)

    async def do(self, key: Any, work: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            self.runs += 1
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda t, k=key: self._done(k, t))
        return await asyncio.shield(task)

    def _done(self, key: Any, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited any more is not "never retrieved"

    def running(self) -> int:
        return len(self._running)


_BY_STORE: weakref.WeakKeyDictionary[Any, SharedImages] = weakref.WeakKeyDictionary()


class SharedImages:
    def __init__(
        self,
        store: ImageStore,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        idle_seconds: float = 600.0,
        grace_seconds: float = 60.0,
        max_refs: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.grace_seconds = grace_seconds
        self.max_refs = max_refs
        self._clock = clock
        self._bytes: OrderedDict[Key, _Entry] = OrderedDict()
        self._size = 0
        self._ended: dict[str, float] = {}  # job id -> when its entries go
        self._refs: OrderedDict[Key, ImageRef] = OrderedDict()
        self._encode = SingleFlight()
        self._store = SingleFlight()
        self._next_sweep = 0.0

    @classmethod
    def for_store(cls, store: ImageStore) -> SharedImages:
        """The one instance for this image store (created on first use)."""
        shared = _BY_STORE.get(store)
        if shared is None:
            shared = _BY_STORE[store] = cls(store)
        return shared

    # --- figures --------------------------------------------------------------------------------

    @property
    def conversions(self) -> int:
        """Images read (and converted where needed) so far."""
        return self._encode.runs

    @property
    def copies_stored(self) -> int:
        return self._store.runs

    @property
    def cached_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._bytes)

    # --- the work -------------------------------------------------------------------------------

    async def encoded(self, ref: ImageRef, fmt: str, compression: int | None = None) -> Encoded | None:
        """`ref` in `fmt` (None: gone from the store)."""
        key: Key = (ref.key, normalize_format(fmt), compression)
        now = self._clock()
        self._sweep(now)
        entry = self._bytes.get(key)
        if entry is not None:
            self._bytes.move_to_end(key)
            entry.expires = self._expiry(entry.job_id, now)
            return entry.value
        return await self._encode.do(key, lambda: self._make(key))

    async def _make(self, key: Key) -> Encoded | None:
        image_key, fmt, compression = key
        # a result the ingester has just stored is still in memory: no read back
        stored = FreshImages.for_store(self.store).take(image_key)
        if stored is None:
            stored = await self.store.get(image_key)
        if stored is None:
            return None
        wanted = content_type_of(fmt)
        if stored.content_type == wanted and compression is None:
            value = Encoded(stored.data, wanted)
        else:
            value = Encoded(await convert_async(stored.data, fmt, compression), wanted)
        if value.held <= self.max_bytes // 4:  # one huge image must not flush the rest
            job_id = job_id_from_key(image_key)
            self._bytes[key] = _Entry(value, job_id, self._expiry(job_id, self._clock()))
            self._size += value.held
            self._evict()
        return value

    async def stored(self, job_id: str, ref: ImageRef, fmt: str, compression: int | None = None) -> ImageRef | None:
        """`ref` converted to `fmt` and put in the image store, once: the same ref for everyone.
        `ref` itself when it already is in that format (and no compression is asked)."""
        fmt = normalize_format(fmt)
        if ref.content_type == content_type_of(fmt) and compression is None:
            return ref
        key: Key = (ref.key, fmt, compression)
        known = self._refs.get(key)
        if known is not None:
            self._refs.move_to_end(key)
            return known
        return await self._store.do(key, lambda: self._put(job_id, ref, key))

    async def _put(self, job_id: str, ref: ImageRef, key: Key) -> ImageRef | None:
        # named after the original's token, so a converted copy is recognised as that image
        # (result_lookup.classify); its own token is derived from the original's key, so every
        # process (a restart, another replica) arrives at the same key and the copy exists once
        stem = ref.key.rsplit("/", 1)[-1].split(".")[0]
        name, seed = f"{stem}-{key[1]}", f"converted|{ref.key}|{key[1]}|{key[2]}"
        converted = await self._already_stored(job_id, ref, name, content_type_of(key[1]), seed)
        if converted is None:
            value = await self.encoded(ref, key[1], key[2])
            if value is None:
                return None
            converted = await self.store.put(value.data, value.content_type, job_id=job_id, name=name, seed=seed)
        self._refs[key] = converted
        while len(self._refs) > self.max_refs:
            self._refs.popitem(last=False)
        return converted

    async def _already_stored(self, job_id: str, ref: ImageRef, name: str, content_type: str, seed: str) -> ImageRef | None:
        try:
            key = new_key(job_id, name, content_type, seed=seed)
        except ValueError:
            return None
        opened = await self.store.open(key)
        if opened is None:
            return None
        close = getattr(opened.chunks, "aclose", None)
        if close is not None:
            await close()
        # a conversion keeps the picture's size
        return ImageRef(key=key, width=ref.width, height=ref.height, content_type=opened.content_type or content_type, size=opened.size)

    # --- lifetime -------------------------------------------------------------------------------

    def job_ended(self, job_id: str) -> None:
        """The job has finished: its encoded images go `grace_seconds` from now (late watchers
        of the final event still find them meanwhile)."""
        now = self._clock()
        until = now + self.grace_seconds
        if job_id in self._ended:
            return
        self._ended[job_id] = until
        for entry in self._bytes.values():
            if entry.job_id == job_id:
                entry.expires = min(entry.expires, until)

    def _expiry(self, job_id: str | None, now: float) -> float:
        idle = now + self.idle_seconds
        ended = self._ended.get(job_id) if job_id is not None else None
        return idle if ended is None else min(idle, max(ended, now + 1.0))

    def _drop(self, key: Key) -> None:
        entry = self._bytes.pop(key)
        self._size -= entry.value.held

    def _evict(self) -> None:
        while self._size > self.max_bytes and self._bytes:
            self._drop(next(iter(self._bytes)))

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for key in [k for k, e in self._bytes.items() if e.expires <= now]:
            self._drop(key)
        for job_id in [j for j, until in self._ended.items() if until + self.idle_seconds <= now]:
            del self._ended[job_id]


# --- SSE frames around shared base64 ----------------------------------------------------------------

# stands where an image's base64 goes; a NUL, which no prompt or caller text may hold (refused at
# the door), so only placeholders put there on purpose match
B64_SLOT = "\x00b64\x00"
_SLOT_JSON = msgspec.json.encode(B64_SLOT)


def sse_frame(event: str, payload: msgspec.Struct, field: str, b64: bytes) -> bytes:
    """The SSE event `event: <event>` / `data: <payload as JSON>` with `payload.<field>` set to
    the base64 text `b64`, as the bytes sent on the wire. `field` must come before any field a
    caller controls (see `spliced_frame`)."""
    return spliced_frame(event, msgspec.structs.replace(payload, **{field: B64_SLOT}), (b64,))


def spliced_frame(event: str, payload: msgspec.Struct, b64s: Sequence[bytes]) -> bytes:
    """The SSE event `event: <event>` / `data: <payload as JSON>`, as the bytes sent on the wire,
    where `payload` holds `B64_SLOT` in place of each image, in the order of `b64s`: the payload
    is encoded with the short placeholders and the shared base64 is spliced in, so per stream
    only the small rest of the event is encoded, not the images. The first occurrences are the
    ones replaced: the slots must come before any text a caller controls."""
    parts = msgspec.json.encode(payload).split(_SLOT_JSON, len(b64s))
    if len(parts) != len(b64s) + 1:
        raise ValueError(f"{type(payload).__name__} holds {len(parts) - 1} image slots, not {len(b64s)}")
    out = [b"event: ", event.encode(), b"\r\ndata: ", parts[0]]
    for b64, rest in zip(b64s, parts[1:]):
        out += (b'"', b64, b'"', rest)
    out.append(b"\r\n\r\n")
    return b"".join(out)
