"""Reading Midjourney's seed DM, and the placeholder answers of slow commands."""

from __future__ import annotations

import asyncio

import pytest

from adapter.backends.discord.messages import classify
from adapter.backends.discord.seeds import ENVELOPE, SeedReply, SeedWaiters, parse_seed_reply
from tests.backends.discord.fixtures_messages import HASH, HASH2, MJ_BOT, NIJI_BOT, NONCE, SOMEONE, attachment, embed, grid_name, message

# --- the seed DM -----------------------------------------------------------------------------


def dm(content: str, **kw: object) -> dict[str, object]:
    msg = message(content, interaction_id=None, **kw)  # type: ignore[arg-type]
    msg.pop("guild_id")
    msg["channel_id"] = "1600000000000000001"
    return msg


def test_envelope_is_the_emoji_clients_send() -> None:
    # what midjourney-proxy Plus puts in the reaction URL: %E2%9C%89%EF%B8%8F
    assert ENVELOPE.encode() == b"\xe2\x9c\x89\xef\xb8\x8f"


@pytest.mark.parametrize(
    "content",
    [
        f"**a red fox in the snow --v 7**\n**Job ID**: {HASH}\n**seed** 1259687673",
        f"**a red fox**\n**Job ID:** {HASH}\n**Seed**: 1259687673",
        f"**Job ID**: {HASH.upper()}\n**seed** 1259687673",
    ],
)
def test_seed_dm_variants(content: str) -> None:
    got = parse_seed_reply(dm(content, id="42"))
    assert got == SeedReply(job_hash=HASH, seed="1259687673", message_id="42", channel_id="1600000000000000001")


def test_seed_dm_from_niji() -> None:
    got = parse_seed_reply(dm(f"**x**\n**Job ID**: {HASH}\n**seed** 7", author=NIJI_BOT))
    assert got is not None and got.seed == "7"


def test_seed_dm_in_an_embed() -> None:
    msg = dm("", embeds=[embed(None, f"**Job ID**: {HASH2}\n**seed** 99")])
    assert parse_seed_reply(msg) == SeedReply(job_hash=HASH2, seed="99", message_id=msg["id"], channel_id=msg["channel_id"])  # type: ignore[arg-type]


def test_seed_dm_without_job_id_takes_the_hash_of_its_image() -> None:
    got = parse_seed_reply(dm("**a red fox**\n**seed** 123", attachments=[attachment(grid_name(HASH2))]))
    assert got is not None and (got.job_hash, got.seed) == (HASH2, "123")


@pytest.mark.parametrize(
    "msg",
    [
        dm(f"**Job ID**: {HASH}\n**seed** 1", author=SOMEONE),  # not the bot
        dm(f"**a prompt** - <@1> (fast)"),  # a job line
        dm(f"**Job ID**: {HASH}"),  # no seed
        dm("**seed** 99999999999"),  # out of range
        dm("seed 123"),  # not the bot's wording
        dm("**a **seed** 5 prompt** - <@1100000000000000001> (fast)"),  # a job line, not a DM
        None,
        "junk",
        {"author": "x"},
    ],
)
def test_not_a_seed_dm(msg: object) -> None:
    assert parse_seed_reply(msg) is None


async def test_waiters_match_by_hash_and_share_one_future() -> None:
    w = SeedWaiters()
    a = w.wait_for(HASH)
    assert w.wait_for(HASH) is a  # a second caller shares the first one's wait
    b = w.wait_for(HASH2)
    assert not w.deliver(SeedReply(job_hash="00000000-0000-0000-0000-000000000000", seed="1"))
    assert w.deliver(SeedReply(job_hash=HASH2, seed="5"))
    assert b.result() == "5" and not a.done()
    assert w.deliver(SeedReply(job_hash=HASH, seed="6")) and a.result() == "6"
    assert not w.deliver(SeedReply(job_hash=HASH, seed="6"))  # late duplicate
    w.discard(HASH, a)
    assert w.get(HASH) is None


async def test_a_dm_naming_no_job_goes_only_to_a_single_waiter() -> None:
    w = SeedWaiters()
    a = w.wait_for(HASH)
    w.wait_for(HASH2)
    assert not w.deliver(SeedReply(job_hash=None, seed="1"))
    w2 = SeedWaiters()
    c = w2.wait_for(HASH)
    assert w2.deliver(SeedReply(job_hash=None, seed="8")) and c.result() == "8"
    assert not a.done()
    await asyncio.sleep(0)


# --- placeholders: the nonce is on the first message only ------------------------------------


@pytest.mark.parametrize("name", ["info", "settings", "shorten", "describe", "show"])
def test_a_deferred_placeholder_is_waiting(name: str) -> None:
    m = classify(message("", nonce=NONCE, flags=128, interaction_name=name))
    assert m.kind == "waiting" and m.nonce == NONCE and m.message_id


def test_an_empty_first_answer_without_the_loading_flag_is_waiting_too() -> None:
    m = classify(message("", nonce=NONCE, interaction_name="info"))
    assert m.kind == "waiting"


def test_the_edit_of_a_placeholder_carries_the_result_without_a_nonce() -> None:
    placeholder = message("", nonce=NONCE, flags=128, interaction_name="info", id="77")
    edit = {**placeholder, "flags": 0, "embeds": [embed("Your info - driver", "**Job Mode**: Fast\n**Queued Jobs (fast)**: 0")]}
    edit.pop("nonce")
    m = classify(edit)
    assert m.kind == "info" and m.nonce is None and m.message_id == "77" and m.info["Job Mode"] == "Fast"


def test_a_placeholder_of_someone_else_is_other() -> None:
    assert classify(message("", nonce=NONCE, flags=128, author=SOMEONE)).kind == "other"


def test_a_plain_bot_text_is_still_other() -> None:
    # e.g. "You have successfully rated this job with 😍" after the like button
    m = classify(message("You have successfully rated [this job](https://discord.com/channels/1/2/3) with 😍", interaction_name=None))
    assert m.kind == "other" and m.author_id == MJ_BOT
