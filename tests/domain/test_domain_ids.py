"""Job ids (opaque, sortable by creation time) and Discord snowflakes (monotonic nonces)."""

from __future__ import annotations

import itertools
import threading

import pytest

from adapter.domain import ids as ids_module
from adapter.domain import job_ids as job_ids_module
from adapter.domain.ids import DISCORD_EPOCH_MS, SnowflakeGenerator, new_snowflake, snowflake_time_ms
from adapter.domain.job_ids import JOB_ID_RE, is_job_id, new_job_id

T0 = 1_760_000_000.0  # a fixed wall clock (seconds) for the tests that control time


class FakeClock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


# --- job ids ----------------------------------------------------------------------------------


def test_job_ids_are_unique() -> None:
    made = [new_job_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)


def test_job_id_format() -> None:
    for _ in range(1000):
        job_id = new_job_id()
        assert JOB_ID_RE.match(job_id), job_id
        assert is_job_id(job_id)
        assert len(job_id) == 22 and job_id.startswith("j_")
        assert job_id == job_id.lower()


@pytest.mark.parametrize("bad", ["", "j_", "j_short", "x_" + "a" * 20, "j_" + "A" * 20, "j_" + "a" * 21, "j_" + "a" * 19, "j_" + "-" * 20])
def test_is_job_id_rejects(bad: str) -> None:
    assert not is_job_id(bad)


def test_job_ids_sort_by_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # every millisecond for 2 s: all 32 values of every base32 digit of the time part occur,
    # so an alphabet that is not in ASCII order shows up as a misordered pair
    clock = FakeClock(T0)
    monkeypatch.setattr(job_ids_module.time, "time", clock)
    made = []
    for ms in range(2000):
        clock.seconds = T0 + ms / 1000
        made.append(new_job_id())
    assert made == sorted(made)


def test_job_ids_sort_across_seconds_minutes_and_days(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(T0)
    monkeypatch.setattr(job_ids_module.time, "time", clock)
    made = []
    for step in itertools.chain(range(0, 100_000, 997), range(100_000, 10_000_000, 99_991)):
        clock.seconds = T0 + step / 1000
        made.append(new_job_id())
    assert made == sorted(made)


def test_job_ids_in_one_millisecond_share_the_time_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_ids_module.time, "time", FakeClock(T0))
    made = {new_job_id() for _ in range(1000)}
    assert len(made) == 1000
    assert len({m[:10] for m in made}) == 1  # "j_" + 8 characters = the 40 time bits


# --- snowflakes -------------------------------------------------------------------------------


def test_snowflakes_are_strictly_increasing() -> None:
    gen = SnowflakeGenerator(worker=3)
    made = [int(gen.next()) for _ in range(10_000)]
    assert all(b > a for a, b in zip(made, made[1:]))


def test_snowflakes_increase_with_a_frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids_module.time, "time", FakeClock(T0))
    gen = SnowflakeGenerator()
    made = [int(gen.next()) for _ in range(5000)]
    assert all(b > a for a, b in zip(made, made[1:]))


def test_snowflakes_never_go_back_when_the_clock_does(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(T0)
    monkeypatch.setattr(ids_module.time, "time", clock)
    gen = SnowflakeGenerator()
    first = int(gen.next())
    clock.seconds = T0 - 5  # NTP step backwards
    second = int(gen.next())
    assert second > first


def test_snowflakes_increase_when_the_increment_wraps(monkeypatch: pytest.MonkeyPatch) -> None:
    # The 17-bit increment wraps every 131072 ids; the ids made around the wrap (in the same
    # millisecond) must still grow. Start the counter just before the wrap instead of making
    # 131072 ids.
    monkeypatch.setattr(ids_module.time, "time", FakeClock(T0))
    gen = SnowflakeGenerator()
    gen._counter = itertools.count(0x1FFFC)
    made = [int(gen.next()) for _ in range(10)]
    assert all(b > a for a, b in zip(made, made[1:])), [m & 0x1FFFF for m in made]


def test_snowflakes_are_unique_across_threads() -> None:
    gen = SnowflakeGenerator()
    out: list[list[str]] = [[] for _ in range(8)]

    def work(bucket: list[str]) -> None:
        for _ in range(2000):
            bucket.append(gen.next())

    threads = [threading.Thread(target=work, args=(b,)) for b in out]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    every = [s for b in out for s in b]
    assert len(every) == 16_000
    assert len(set(every)) == len(every)
    for bucket in out:  # each thread sees its own ids increasing
        ints = [int(s) for s in bucket]
        assert ints == sorted(ints)


def test_snowflake_layout_and_time_inverse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids_module.time, "time", FakeClock(T0))
    gen = SnowflakeGenerator(worker=7)
    s = gen.next()
    assert s.isdigit()
    assert snowflake_time_ms(s) == int(T0 * 1000)
    assert snowflake_time_ms(int(s)) == int(T0 * 1000)
    assert (int(s) >> 17) & 0x1F == 7


def test_snowflake_worker_is_masked_to_five_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids_module.time, "time", FakeClock(T0))
    s = int(SnowflakeGenerator(worker=32 + 5).next())
    assert (s >> 17) & 0x1F == 5
    assert snowflake_time_ms(s) == int(T0 * 1000)


def test_snowflake_time_of_known_discord_ids() -> None:
    assert snowflake_time_ms(0) == DISCORD_EPOCH_MS
    # (ms since the Discord epoch) << 22 with any low bits
    assert snowflake_time_ms(str((123_456_789 << 22) | 0x3FFFFF)) == DISCORD_EPOCH_MS + 123_456_789


def test_new_snowflake_is_close_to_now() -> None:
    import time

    before = int(time.time() * 1000)
    s = new_snowflake()
    after = int(time.time() * 1000)
    # the default generator may run a millisecond ahead after an increment wrap
    assert before <= snowflake_time_ms(s) <= after + 1
