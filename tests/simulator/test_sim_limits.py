"""Refusals: the plan's running limit and queue, banned words, invalid parameters."""

from __future__ import annotations

import pytest

from adapter.simulator import SimAccount, Simulator
from adapter.simulator.config import make_accounts

from .conftest import close_client, connect_client, fast_config


async def test_job_queued_then_queue_full_then_the_queue_drains() -> None:
    base = make_accounts(1, 0)[0]
    account = SimAccount(base.token, base.user_id, base.guild_id, base.channel_id, plan_concurrency=1, plan_queue=1)
    sim = Simulator(fast_config(accounts=[account]))
    await sim.start()
    client = await connect_client(sim)
    try:
        sim.faults.stall_next_job()
        r, n1 = await client.rest.imagine(client.session_id, "first holds the slot")
        waiting = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == n1)
        assert waiting["content"].endswith("(Waiting to start)")

        r, n2 = await client.rest.imagine(client.session_id, "second waits")
        queued = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == n2)
        embed = queued["embeds"][0]
        assert embed["title"] == "Job queued" and embed["color"] == 16776960 and queued["flags"] & 64

        r, n3 = await client.rest.imagine(client.session_id, "third is refused")
        full = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == n3)
        assert full["embeds"][0]["title"] == "Queue full" and full["embeds"][0]["color"] == 16711680

        r, nonce = await client.rest.command(client.session_id, "info")
        placeholder = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
        info = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == placeholder["id"])
        assert "**Queued Jobs (fast)**: 1" in info["embeds"][0]["description"]

        # cancel the stalled job with ❌: the queued one starts and finishes
        r = await client.rest.http.put(f"/channels/{client.account.channel_id}/messages/{waiting['id']}/reactions/%E2%9D%8C/@me")
        assert r.status_code == 204
        await client.gw.event("MESSAGE_DELETE", lambda d: d["id"] == waiting["id"])
        second_iid = await client.interaction_id(n2)
        await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == n2 and d["content"].endswith("(Waiting to start)"))
        final = await client.result(second_iid)
        assert final["content"].startswith("**second waits** - ")
        await sim.wait_idle(5)
        states = {j["prompt"]: j["state"] for j in (j.info() for j in sim.context.runner.jobs.values())}
        assert states == {"first holds the slot": "cancelled", "second waits": "done", "third is refused": "refused"}
    finally:
        await close_client(client)
        await sim.stop()


@pytest.mark.parametrize(
    ("prompt", "title"),
    [
        ("a NSFW scene", "Banned prompt detected"),
        ("gore, everywhere", "Banned prompt detected"),
        ("a cat --ar 0:0", "Invalid parameter"),
        ("a cat --ar x", "Invalid parameter"),
        ("a cat --v 99", "Invalid parameter"),
        ("a cat --zoom 2", "Invalid parameter"),
        ("a cat --nosuchflag 1", "Invalid parameter"),
        ("--ar 1:1", "Invalid prompt"),
    ],
)
async def test_refused_prompts(sim: Simulator, prompt: str, title: str) -> None:
    client = await connect_client(sim)
    try:
        r, nonce = await client.rest.imagine(client.session_id, prompt)
        assert r.status_code == 204
        await client.interaction_id(nonce)
        msg = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
        embed = msg["embeds"][0]
        assert embed["title"] == title and embed["color"] == 16711680
        assert msg["interaction_metadata"]["id"] and msg["flags"] & 64
        await sim.wait_idle(5)
        assert not sim.context.runner.jobs
    finally:
        await close_client(client)


async def test_banned_words_are_whole_words_and_configurable() -> None:
    sim = Simulator(fast_config(banned_words=("kraken",)))
    await sim.start()
    client = await connect_client(sim)
    try:
        final = await client.imagine("a krakenish nsfw-free sea")  # "kraken" only as part of a word
        assert final["attachments"]
        r, nonce = await client.rest.imagine(client.session_id, "release the Kraken")
        msg = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
        assert msg["embeds"][0]["title"] == "Banned prompt detected"
    finally:
        await close_client(client)
        await sim.stop()


async def test_accepted_flags(sim: Simulator) -> None:
    client = await connect_client(sim)
    try:
        final = await client.imagine("a cat --ar 21:9 --v 6.1 --s 250 --c 10 --no text, people --style raw --q 2 --seed 42 --tile")
        assert final["attachments"][0]["width"] > final["attachments"][0]["height"]
        assert any("upsample" in c["custom_id"] for row in final["components"] for c in row["components"])
    finally:
        await close_client(client)


async def test_a_dead_link_to_our_cdn_is_an_invalid_link(sim: Simulator) -> None:
    client = await connect_client(sim)
    try:
        dead = f"{sim.base_url}/attachments/1/2/x.png?ex=1&is=1&hm=00&"
        r, nonce = await client.rest.imagine(client.session_id, f"{dead} a cat")
        msg = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
        assert msg["embeds"][0]["title"] == "Invalid link"
    finally:
        await close_client(client)
