"""Every fault switch, through `sim.faults` and through the /_simulator control API; and
determinism under a seed."""

from __future__ import annotations

import re

import httpx

from adapter.domain.buttons import UUID_RE
from adapter.simulator import Simulator

from .conftest import Client, close_client, connect_client, fast_config
from .harness import Gateway


async def control(sim: Simulator, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{sim.base_url}/_simulator/{path}", json=body or {})
    assert r.status_code == 200, r.text
    return r.json()


async def test_control_api_reads(sim: Simulator, client: Client) -> None:
    await client.imagine("observed")
    async with httpx.AsyncClient() as http:
        accounts = (await http.get(f"{sim.base_url}/_simulator/accounts")).json()
        jobs = (await http.get(f"{sim.base_url}/_simulator/jobs")).json()
        info = (await http.get(f"{sim.base_url}/_simulator/info")).json()
        bad = await http.post(f"{sim.base_url}/_simulator/faults/rate-limit", json={"count": "many"})
    assert [a["token"] for a in accounts] == [a.token for a in sim.accounts]
    assert set(accounts[0]) >= {"token", "user_id", "guild_id", "channel_id"}
    assert jobs[0]["prompt"] == "observed" and jobs[0]["state"] == "done" and re.fullmatch(UUID_RE, jobs[0]["hash"])
    assert info["gateway_url"] == sim.gateway_url and info["inpaint_submit_url"] == sim.inpaint_submit_url
    assert bad.status_code == 400


async def test_drop_gateway_over_control_api(sim: Simulator, client: Client) -> None:
    result = await control(sim, "faults/drop-gateway", {"user_id": client.user_id})
    assert result["result"] == 1
    assert await client.gw.wait_closed() == 1006


async def test_refuse_next_resume_over_control_api(sim: Simulator, client: Client) -> None:
    await control(sim, "faults/refuse-next-resume")
    await control(sim, "faults/drop-gateway", {})
    gw = await Gateway.open(sim.gateway_url)
    await gw.op(10)
    await gw.send(6, {"token": client.account.token, "session_id": client.session_id, "seq": client.gw.last_seq})
    assert (await gw.op(9))["d"] is False
    await gw.close()


async def test_rate_limit_and_captcha_over_control_api(sim: Simulator, client: Client) -> None:
    await client.rest.command_version("imagine")
    await control(sim, "faults/rate-limit", {"count": 1, "retry_after": 0.25, "global": True})
    r = await client.rest.http.get("/users/@me")
    assert r.status_code == 429 and r.json()["global"] is True
    await control(sim, "faults/captcha-next-interaction", {"user_id": client.user_id})
    r, _ = await client.rest.imagine(client.session_id, "x")
    assert r.status_code == 400 and "captcha_sitekey" in r.json()


async def test_midjourney_captcha_iframe(sim: Simulator, client: Client) -> None:
    await control(sim, "faults/captcha-next-interaction", {"kind": "midjourney"})
    r, nonce = await client.rest.imagine(client.session_id, "a cat")
    assert r.status_code == 204
    iframe = await client.gw.event("INTERACTION_IFRAME_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert iframe["title"] == "Action required to continue"
    assert iframe["iframe_path"].startswith("/captcha/")
    await sim.wait_idle(5)
    assert not sim.context.runner.jobs
    assert sim.interaction_log[-1].outcome == "accepted"


async def test_moderate_running(sim: Simulator) -> None:
    slow = Simulator(fast_config(speed=50))
    await slow.start()
    client = await connect_client(slow)
    try:
        r, nonce = await client.rest.imagine(client.session_id, "a tame picture")
        progress = await client.gw.event("MESSAGE_UPDATE", lambda d: "%" in d["content"])
        result = await control(slow, "faults/moderate-running", {"user_id": client.user_id})
        assert result["result"] == 1
        await client.gw.event("MESSAGE_DELETE", lambda d: d["id"] == progress["id"])
        await slow.wait_idle(5)
        assert not [m for m in client.gw.dispatches("MESSAGE_CREATE") if m["d"]["attachments"]]
        assert [j.info()["state"] for j in slow.context.runner.jobs.values()] == ["moderated"]
    finally:
        await close_client(client)
        await slow.stop()


async def test_stall_next_job(sim: Simulator, client: Client) -> None:
    await control(sim, "faults/stall-next-job", {})
    r, nonce = await client.rest.imagine(client.session_id, "stuck")
    waiting = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert waiting["content"].endswith("(Waiting to start)")
    await sim.wait_idle(5)  # a stalled job does not count as running
    assert not [u for u in client.gw.dispatches("MESSAGE_UPDATE") if u["d"]["id"] == waiting["id"]]
    assert [j.info()["state"] for j in sim.context.runner.jobs.values()] == ["stalled"]
    # the next one runs normally
    assert (await client.imagine("not stuck"))["attachments"]


async def test_fail_next_job(sim: Simulator, client: Client) -> None:
    await control(sim, "faults/fail-next-job", {"title": "Sorry! Could not complete the job!"})
    r, nonce = await client.rest.imagine(client.session_id, "unlucky")
    iid = await client.interaction_id(nonce)
    waiting = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    error = await client.gw.event("MESSAGE_CREATE", lambda d: bool(d["embeds"]) and d["interaction_metadata"]["id"] == iid)
    assert error["embeds"][0]["title"] == "Sorry! Could not complete the job!" and error["embeds"][0]["color"] == 16711680
    await client.gw.event("MESSAGE_DELETE", lambda d: d["id"] == waiting["id"])
    sim.faults.fail_next_job("Request cancelled due to output filters")
    r, nonce = await client.rest.imagine(client.session_id, "filtered")
    iid = await client.interaction_id(nonce)
    error = await client.gw.event("MESSAGE_CREATE", lambda d: bool(d["embeds"]) and d["interaction_metadata"]["id"] == iid)
    assert error["embeds"][0]["title"] == "Request cancelled due to output filters"


async def test_revoke_token_over_control_api_and_reset(sim: Simulator, client: Client) -> None:
    await control(sim, "faults/revoke-token", {"token": client.account.token})
    assert await client.gw.wait_closed() == 4004
    assert (await client.rest.http.get("/users/@me")).status_code == 401
    await control(sim, "faults/reset")
    assert (await client.rest.http.get("/users/@me")).status_code == 200
    async with httpx.AsyncClient() as http:
        armed = (await http.get(f"{sim.base_url}/_simulator/faults")).json()
    assert armed["revoked_user_ids"] == [] and armed["rate_limited_calls"] == 0


async def test_reset_disarms_pending_switches(sim: Simulator, client: Client) -> None:
    sim.faults.stall_next_job()
    sim.faults.fail_next_job()
    sim.faults.captcha_next_interaction()
    sim.faults.rate_limit(count=3)
    sim.faults.refuse_next_resume()
    await control(sim, "faults/reset")
    assert (await client.imagine("clean"))["attachments"]


async def test_settings_and_command_bump_over_control_api(sim: Simulator, client: Client) -> None:
    await control(sim, "settings", {"user_id": client.user_id, "mode": "relax"})
    assert (await client.imagine("via settings"))["content"].endswith("(relaxed)")
    _, old = await client.rest.command_version("imagine")
    await control(sim, "faults/bump-command-versions", {"name": "imagine"})
    r, _ = await client.rest.imagine(client.session_id, "old version")
    assert r.status_code == 400 and r.json()["code"] == 50035


async def _hashes(seed: int) -> tuple[list[str], list[str]]:
    sim = Simulator(fast_config(seed=seed))
    await sim.start()
    client = await connect_client(sim)
    try:
        grid = await client.imagine("determinism")
        single = await client.result(await client.press(grid, grid["components"][0]["components"][0]["custom_id"]))
        var = await client.result(await client.press(grid, grid["components"][1]["components"][0]["custom_id"]))
        names = [m["attachments"][0]["filename"] for m in (grid, single, var)]
        return [re.search(UUID_RE, n).group(0) for n in names], [a.token for a in sim.accounts]
    finally:
        await close_client(client)
        await sim.stop()


async def test_same_seed_same_hashes() -> None:
    a, tokens_a = await _hashes(7)
    b, tokens_b = await _hashes(7)
    c, tokens_c = await _hashes(8)
    assert a == b and tokens_a == tokens_b
    assert len(set(a)) == 3
    assert not set(a) & set(c) and tokens_a != tokens_c
