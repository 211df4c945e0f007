"""FreshImages (adapter/media/fresh.py): images just stored, handed to their first reader in
memory; bounded in bytes and in time, whether or not anyone asks."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapter.media.fresh import FreshImages
from adapter.media.store import LocalImageStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_taken_once() -> None:
    fresh = FreshImages()
    fresh.offer("j/a-1.png", b"one", "image/png")
    got = fresh.take("j/a-1.png")
    assert got is not None and (got.data, got.content_type) == (b"one", "image/png")
    assert fresh.take("j/a-1.png") is None  # the first taker keeps it by its own bounds
    assert fresh.take("j/never-offered.png") is None
    assert (fresh.taken, fresh.held_bytes) == (1, 0)


async def test_bounded_in_bytes_oldest_dropped_first() -> None:
    fresh = FreshImages(max_bytes=10)
    fresh.offer("j/a.png", b"aaaa", "image/png")
    fresh.offer("j/b.png", b"bbbb", "image/png")
    fresh.offer("j/c.png", b"cccc", "image/png")
    fresh.offer("j/huge.png", b"x" * 11, "image/png")  # more than the bound: never held
    assert fresh.held_bytes == 8
    assert fresh.take("j/a.png") is None and fresh.take("j/huge.png") is None
    assert fresh.take("j/b.png") is not None and fresh.take("j/c.png") is not None


async def test_nothing_held_past_max_age() -> None:
    clock = Clock()
    fresh = FreshImages(max_age=5.0, clock=clock)
    fresh.offer("j/a.png", b"aaaa", "image/png")
    clock.now += 3
    fresh.offer("j/b.png", b"bbbb", "image/png")
    clock.now += 2.5
    assert fresh.take("j/a.png") is None  # 5.5 s old
    assert fresh.take("j/b.png") is not None


async def test_an_idle_holder_empties_on_its_own() -> None:
    """No offer or take comes after the last job: a timer drops what nobody took."""
    fresh = FreshImages(max_age=0.3)
    fresh.offer("j/a.png", b"aaaa", "image/png")
    await asyncio.sleep(0.15)
    fresh.offer("j/b.png", b"bbbb", "image/png")
    await asyncio.sleep(0.225)
    assert fresh.held_bytes == 4  # a went at its time (0.3 s), b is still within its own (0.45 s)
    await asyncio.sleep(0.225)
    assert fresh.held_bytes == 0


def test_each_event_loop_gets_its_timer() -> None:
    """An instance outlives an event loop (one per store): offers in the next loop still expire."""
    fresh = FreshImages(max_age=0.02)

    async def offer_and_wait(key: str) -> int:
        fresh.offer(key, b"data", "image/png")
        await asyncio.sleep(0.06)
        return fresh.held_bytes

    assert asyncio.run(offer_and_wait("j/a.png")) == 0
    assert asyncio.run(offer_and_wait("j/b.png")) == 0


def test_one_instance_per_store(tmp_path: Path) -> None:
    a, b = LocalImageStore(tmp_path / "a"), LocalImageStore(tmp_path / "b")
    assert FreshImages.for_store(a) is FreshImages.for_store(a)
    assert FreshImages.for_store(a) is not FreshImages.for_store(b)
