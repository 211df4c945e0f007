"""What a simulator is made of: its accounts and the knobs that shape its Midjourney bot."""

from __future__ import annotations

import base64
import os
import random
import string

import msgspec

# Words the simulated bot refuses (whole words, case-insensitive). Small on purpose: enough to
# exercise the "Banned prompt detected" path without tripping ordinary test prompts.
DEFAULT_BANNED_WORDS: tuple[str, ...] = ("gore", "nsfw", "nude", "bloodbath", "forbidden")


class SimAccount(msgspec.Struct, frozen=True):
    """One Discord user account of the simulated world, with its private guild and channel, and
    its direct-message channel with the Midjourney bot (`dm_channel_id`; derived from the user id
    and the seed when left empty).

    `interaction_events_fallback` picks one of two Discord behaviours (README, "Two behaviours"):
    False (default, what Discord does): INTERACTION_* events go only to the gateway session named
    in the interaction, so an interaction sent with a session id that is not live gets none;
    True: they then go to every live session of the user instead.

    `final_message_nonce` picks the other: False (default), the job's final result MESSAGE_CREATE
    has no nonce (Discord until early 2025); True, it carries the nonce of the interaction that
    started the job (public clients report it since May 2025)."""

    token: str
    user_id: str
    guild_id: str
    channel_id: str
    plan_concurrency: int = 3
    plan_queue: int = 10
    dm_channel_id: str = ""
    interaction_events_fallback: bool = False
    final_message_nonce: bool = False
    # The bot's two behaviours where public clients saw two (README, "Bot replies confirmed in
    # public clients"); `POST /_simulator/settings` flips them at run time.
    info_layout: str = "classic"  # /info: "classic" (User ID line) | "aligned" (newer, padded)
    settings_ids: str = "plain"  # /settings speed toggles: "plain" | "stateful" (`...::on`/`::off`)
    # "[(Open on website for full quality)](<…>)" in result content: "random" (default, the
    # simulator's `website_link_ratio`), "never" or "always" (README, "Bot replies confirmed").
    website_link: str = "random"

    def __repr__(self) -> str:
        # The token is fake, but code that prints accounts should never learn to print tokens.
        return (
            f"SimAccount(token='***', user_id={self.user_id!r}, guild_id={self.guild_id!r}, "
            f"channel_id={self.channel_id!r}, plan_concurrency={self.plan_concurrency}, "
            f"plan_queue={self.plan_queue}, dm_channel_id={self.dm_channel_id!r})"
        )

    __str__ = __repr__


class SimulatorConfig(msgspec.Struct):
    speed: float = 1.0  # 1 = realistic timing; tests use hundreds
    seed: int = 0
    accounts: int | list[SimAccount] = 1
    banned_words: tuple[str, ...] = DEFAULT_BANNED_WORDS
    compress_supported: bool = True  # honour `compress=zlib-stream`; False sends plain text
    heartbeat_interval_ms: int = 41250
    remix: bool = False  # remix mode on for every account at start
    # --- beyond the core knobs: sizes and gateway bookkeeping
    grid_long_side: int = 1024  # pixels of the 2x2 grid's long side (a quadrant is half)
    # Photo-like pictures (colour fields, texture, grain: ~2:1 as PNG, like Midjourney's) instead
    # of flat labelled panels. With grid_long_side=2048 a grid is a real-size ~7 MB PNG: what the
    # CPU benchmark uses (tests/bench/bench_job_cpu.py). Off by default: tests stay fast.
    photo_images: bool = False
    preview_long_side: int = 256  # progress previews are small and blurred
    session_ttl_seconds: float = 300.0  # how long a dropped gateway session stays resumable
    history_size: int = 1000  # dispatches kept per session for RESUME replays
    website_link_ratio: float = 0.5  # share of final messages with the "Open on website" link


_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"


# Snowflakes from 2021-2023 (ms since Discord's epoch): realistic, and well inside int64.
_SNOWFLAKE_MS = (189_000_000_000, 283_000_000_000)


def _snowflake(rng: random.Random) -> str:
    return str((rng.randrange(*_SNOWFLAKE_MS) << 22) | rng.randrange(1 << 22))


def make_accounts(count: int, seed: int) -> list[SimAccount]:
    """`count` accounts, the same for the same seed (so a standalone simulator prints the same
    tokens every run), each in its own guild and channel. Tokens look like Discord user tokens
    (base64 user id . 6 chars . 38 chars) but are fabricated."""
    rng = random.Random(f"mj-sim-accounts:{seed}")
    accounts: list[SimAccount] = []
    for _ in range(count):
        user_id, guild_id, channel_id = (_snowflake(rng) for _ in range(3))
        head = base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
        mid = "".join(rng.choice(_TOKEN_ALPHABET) for _ in range(6))
        tail = "".join(rng.choice(_TOKEN_ALPHABET) for _ in range(38))
        accounts.append(SimAccount(token=f"{head}.{mid}.{tail}", user_id=user_id, guild_id=guild_id, channel_id=channel_id))
    return accounts


# Where Discord or Midjourney behave in two ways, generated accounts take the first by default;
# MJ_SIMULATOR_BEHAVIOUR=alternate gives them the other everywhere (in-process simulators and
# standalone ones alike), so a whole test suite can run against either world.
BEHAVIOUR_ENV = "MJ_SIMULATOR_BEHAVIOUR"
ALTERNATE_BEHAVIOUR: dict[str, object] = {
    "interaction_events_fallback": True,
    "final_message_nonce": True,
    "info_layout": "aligned",
    "settings_ids": "stateful",
}


def behaviour_overrides() -> dict[str, object]:
    value = os.environ.get(BEHAVIOUR_ENV, "").strip().lower()
    if value in ("", "default", "classic"):
        return {}
    if value == "alternate":
        return dict(ALTERNATE_BEHAVIOUR)
    raise ValueError(f"{BEHAVIOUR_ENV} must be 'default' or 'alternate', not {value!r}")


def resolve_accounts(config: SimulatorConfig) -> list[SimAccount]:
    accounts = make_accounts(max(config.accounts, 0), config.seed) if isinstance(config.accounts, int) else list(config.accounts)
    if isinstance(config.accounts, int) and (overrides := behaviour_overrides()):
        accounts = [msgspec.structs.replace(a, **overrides) for a in accounts]
    # A DM channel id of its own generator per user, so adding DMs changed no other id.
    return [
        a if a.dm_channel_id else msgspec.structs.replace(a, dm_channel_id=_snowflake(random.Random(f"mj-sim-dm:{config.seed}:{a.user_id}")))
        for a in accounts
    ]
