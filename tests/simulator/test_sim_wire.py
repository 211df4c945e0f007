"""Discord wire and REST fidelity: where the nonce travels, which session gets INTERACTION_*
events, both API versions, Discord's 404s and form errors, channel objects and command indexes,
history paging (`around`), DM channels, REST 5xx on interactions and the logged 429s.

What each behaviour is confirmed by is in adapter/simulator/README.md ("Confirmed in public
sources")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapter.simulator import Simulator, SimAccount

from .conftest import Client, close_client, connect_client, fast_config
from .harness import MJ_APP, NIJI_APP, Gateway, Rest

FIXED_SESSION = "8bb7f5b79c7a49f7d0824ab4b8773a81"  # a constant public clients ship


def _imagine_body(rest: Rest, cid: str, version: str, session_id: Any, nonce: str, prompt: str, *, channel_id: str | None = None,
                  guild_id: str | None = "default") -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": 2, "application_id": MJ_APP, "channel_id": channel_id or rest.account.channel_id, "session_id": session_id, "nonce": nonce,
        "data": {"version": version, "id": cid, "name": "imagine", "type": 1, "options": [{"type": 3, "name": "prompt", "value": prompt}], "attachments": []},
    }
    if guild_id == "default":
        body["guild_id"] = rest.account.guild_id
    elif guild_id is not None:
        body["guild_id"] = guild_id
    return body


def _interaction_events(gw: Gateway) -> list[dict[str, Any]]:
    return [f for f in gw.dispatches() if f["t"].startswith("INTERACTION_")]


# --- the nonce -------------------------------------------------------------------------------


async def test_nonce_rides_on_message_create_only(sim: Simulator, client: Client) -> None:
    r, nonce = await client.rest.imagine(client.session_id, "nonce travel")
    assert r.status_code == 204
    iid = await client.interaction_id(nonce)
    final = await client.result(iid)
    first = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert first["content"].endswith("(Waiting to start)")
    updates = client.gw.dispatches("MESSAGE_UPDATE")
    assert updates, "the progress message is edited"
    assert all("nonce" not in u["d"] for u in updates)
    # REST reads do not keep it (Discord stores no nonce with the message)
    history = (await client.rest.http.get(f"/channels/{client.account.channel_id}/messages", params={"limit": 50})).json()
    assert history and all("nonce" not in m for m in history)
    one = (await client.rest.http.get(f"/channels/{client.account.channel_id}/messages/{final['id']}")).json()
    assert "nonce" not in one
    # ...but the answer to POST /messages echoes the sender's nonce
    r = await client.rest.http.post(f"/channels/{client.account.channel_id}/messages", json={"content": "hello", "nonce": "777"})
    assert r.status_code == 200 and r.json()["nonce"] == "777"


async def test_describe_update_has_no_nonce(client: Client) -> None:
    grid = await client.imagine("describe me")
    r, nonce = await client.rest.command(client.session_id, "describe", [{"type": 3, "name": "link", "value": grid["attachments"][0]["url"]}])
    assert r.status_code == 204
    created = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    update = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == created["id"] and "1️⃣" in (d["embeds"][0].get("description") or ""))
    assert "nonce" not in update


# --- session ids -----------------------------------------------------------------------------


async def test_any_well_formed_session_id_is_taken_but_events_go_to_the_named_session_only(sim: Simulator, client: Client) -> None:
    cid, version = await client.rest.command_version("imagine")
    other = await connect_client(sim, 1)
    try:
        for sid in (FIXED_SESSION, "Ab3dE5gH9jK1mN0p", other.session_id):  # constant, random 16-char, another user's live one
            nonce = client.rest.nonce()
            r = await client.rest.http.post("/interactions", json=_imagine_body(client.rest, cid, version, sid, nonce, f"fixed {sid[:4]}"))
            assert r.status_code == 204, r.text
            await client.gw.event("MESSAGE_CREATE", lambda d, n=nonce: d.get("nonce") == n)
        await sim.wait_idle(10)
        assert _interaction_events(client.gw) == []
        assert _interaction_events(other.gw) == []
        assert [rec.outcome for rec in sim.interaction_log[-3:]] == ["accepted"] * 3
        assert [rec.status for rec in sim.interaction_log[-3:]] == [204] * 3
    finally:
        await close_client(other)


async def test_fallback_sends_interaction_events_to_every_live_session(sim: Simulator, client: Client) -> None:
    second = await connect_client(sim, 0)  # the same user on a second socket
    try:
        async with httpx.AsyncClient(base_url=sim.base_url) as control:
            r = await control.post("/_simulator/behaviour", json={"user_id": client.user_id, "interaction_events_fallback": True})
            assert r.json() == {"ok": True, "result": 1}
            accounts = (await control.get("/_simulator/accounts")).json()
            assert accounts[0]["interaction_events_fallback"] is True and accounts[1]["interaction_events_fallback"] is False
        cid, version = await client.rest.command_version("imagine")
        nonce = client.rest.nonce()
        r = await client.rest.http.post("/interactions", json=_imagine_body(client.rest, cid, version, FIXED_SESSION, nonce, "fallback"))
        assert r.status_code == 204
        for gw in (client.gw, second.gw):
            await gw.event("INTERACTION_CREATE", lambda d: d["nonce"] == nonce)
            await gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
        # a live session named: that one only, fallback or not
        r, nonce = await client.rest.imagine(client.session_id, "named")
        await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
        await sim.wait_idle(10)
        assert not [f for f in _interaction_events(second.gw) if f["d"]["nonce"] == nonce]
    finally:
        await close_client(second)


async def test_fallback_is_a_config_field_too() -> None:
    base = fast_config(accounts=1)
    sim0 = Simulator(base)
    account = sim0.accounts[0]
    async with Simulator(fast_config(accounts=[SimAccount(account.token, account.user_id, account.guild_id, account.channel_id, interaction_events_fallback=True)])) as sim:
        c = await connect_client(sim)
        try:
            cid, version = await c.rest.command_version("imagine")
            nonce = c.rest.nonce()
            r = await c.rest.http.post("/interactions", json=_imagine_body(c.rest, cid, version, FIXED_SESSION, nonce, "configured"))
            assert r.status_code == 204
            await c.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
        finally:
            await close_client(c)


# --- versions, 404s, channels, command indexes ----------------------------------------------


async def test_v10_serves_the_same_routes_and_unknown_routes_are_json_404(sim: Simulator, client: Client) -> None:
    token = client.account.token
    async with httpx.AsyncClient(base_url=sim.base_url, headers={"Authorization": token}) as http:
        for v in (9, 10):
            me = await http.get(f"/api/v{v}/users/@me")
            assert me.status_code == 200 and me.json()["id"] == client.user_id
            assert "x-ratelimit-bucket" in me.headers
            page = await http.get(f"/api/v{v}/channels/{client.account.channel_id}/messages", params={"limit": 5})
            assert page.status_code == 200 and isinstance(page.json(), list)
        a = await http.get("/api/v9/users/@me")
        b = await http.get("/api/v10/users/@me")
        assert a.headers["x-ratelimit-bucket"] == b.headers["x-ratelimit-bucket"]  # one bucket per route
        for path in ("/api/v10/no/such/route", "/api/v8/users/@me", "/nothing-here", "/api/v9/channels/1/messages/2/nope"):
            r = await http.get(path)
            assert r.status_code == 404 and r.headers["content-type"].startswith("application/json"), path
            assert r.json() == {"message": "404: Not Found", "code": 0}
        r = await http.delete("/api/v9/users/@me")
        assert r.status_code == 405 and r.json() == {"message": "405: Method Not Allowed", "code": 0}
        info = (await http.get("/_simulator/info")).json()
        assert info["rest_base_v10"] == f"{sim.base_url}/api/v10"


async def test_gateway_v10_ready(sim: Simulator) -> None:
    gw = await Gateway.open(sim.gateway_url, query="v=10&encoding=json")
    try:
        ready = await gw.identify(sim.accounts[0].token)
        assert ready["v"] == 10
        assert ready["private_channels"] == [
            {"id": sim.accounts[0].dm_channel_id, "type": 1, "last_message_id": None, "flags": 0, "recipient_ids": [MJ_APP]}
        ]
    finally:
        await gw.close()


async def test_channel_objects(sim: Simulator, client: Client) -> None:
    account = client.account
    guild_channel = (await client.rest.http.get(f"/channels/{account.channel_id}")).json()
    assert guild_channel["id"] == account.channel_id and guild_channel["type"] == 0
    assert guild_channel["guild_id"] == account.guild_id and guild_channel["name"].startswith("midjourney")
    dm = (await client.rest.http.get(f"/channels/{account.dm_channel_id}")).json()
    assert dm["type"] == 1 and "guild_id" not in dm and dm["recipients"][0]["id"] == MJ_APP and dm["recipients"][0]["bot"] is True
    r = await client.rest.http.get(f"/channels/{sim.accounts[1].channel_id}")
    assert r.status_code == 403 and r.json()["code"] == 50001
    r = await client.rest.http.get(f"/channels/{sim.accounts[1].dm_channel_id}")
    assert r.status_code == 403 and r.json()["code"] == 50001
    r = await client.rest.http.get("/channels/1234567890123456789")
    assert r.status_code == 404 and r.json()["code"] == 10003
    # the user's DMs, and opening one (the same channel again for Midjourney, a new one for Niji)
    dms = (await client.rest.http.get("/users/@me/channels")).json()
    assert [d["id"] for d in dms] == [account.dm_channel_id]
    again = (await client.rest.http.post("/users/@me/channels", json={"recipients": [MJ_APP]})).json()
    assert again["id"] == account.dm_channel_id
    niji = (await client.rest.http.post("/users/@me/channels", json={"recipient_id": NIJI_APP})).json()
    assert niji["type"] == 1 and niji["recipients"][0]["id"] == NIJI_APP and niji["id"] != account.dm_channel_id
    r = await client.rest.http.post("/users/@me/channels", json={"recipients": ["42"]})
    assert r.status_code == 400 and r.json()["code"] == 50033


async def test_command_indexes(sim: Simulator, client: Client) -> None:
    account = client.account
    guild = (await client.rest.http.get(f"/guilds/{account.guild_id}/application-command-index")).json()
    in_channel = (await client.rest.http.get(f"/channels/{account.channel_id}/application-command-index")).json()
    assert in_channel["application_commands"] == guild["application_commands"]
    dm = (await client.rest.http.get(f"/channels/{account.dm_channel_id}/application-command-index")).json()
    assert {a["id"] for a in dm["applications"]} == {MJ_APP}
    assert dm["application_commands"] and {c["application_id"] for c in dm["application_commands"]} == {MJ_APP}
    mine = (await client.rest.http.get("/users/@me/application-command-index")).json()
    assert {a["id"] for a in mine["applications"]} == {MJ_APP, NIJI_APP}
    # a DM channel id is no guild
    r = await client.rest.http.get(f"/guilds/{account.dm_channel_id}/application-command-index")
    assert r.status_code == 404 and r.json()["code"] == 10004
    r = await client.rest.http.get(f"/channels/{sim.accounts[1].dm_channel_id}/application-command-index")
    assert r.status_code == 403


# --- history ---------------------------------------------------------------------------------


async def test_history_around_before_after_and_limits(client: Client) -> None:
    channel = client.account.channel_id
    ids = []
    for i in range(9):
        r = await client.rest.http.post(f"/channels/{channel}/messages", json={"content": f"m{i}"})
        ids.append(r.json()["id"])

    async def page(**params: Any) -> list[str]:
        r = await client.rest.http.get(f"/channels/{channel}/messages", params=params)
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()]

    newest_first = list(reversed(ids))
    assert await page() == newest_first
    assert await page(limit=3) == newest_first[:3]
    assert await page(before=ids[5], limit=2) == [ids[4], ids[3]]
    assert await page(after=ids[2], limit=2) == [ids[4], ids[3]]  # the oldest after it, newest first
    # around: limit // 2 on each side plus the message itself
    assert await page(around=ids[4], limit=1) == [ids[4]]
    assert await page(around=ids[4], limit=3) == [ids[5], ids[4], ids[3]]
    assert await page(around=ids[4], limit=4) == [ids[6], ids[5], ids[4], ids[3], ids[2]]
    assert await page(around=ids[0], limit=5) == [ids[2], ids[1], ids[0]]
    assert await page(around=ids[8], limit=5) == [ids[8], ids[7], ids[6]]
    assert await page(around=ids[4], before=ids[1], limit=3) == [ids[5], ids[4], ids[3]]  # around wins
    missing = str(int(ids[4]) + 1)  # between two messages: no middle one
    assert await page(around=missing, limit=2) == [ids[5], ids[4]]

    async def error(**params: Any) -> dict[str, Any]:
        r = await client.rest.http.get(f"/channels/{channel}/messages", params=params)
        assert r.status_code == 400 and r.json()["code"] == 50035
        return r.json()["errors"]

    assert (await error(limit=101))["limit"]["_errors"][0] == {"code": "NUMBER_TYPE_MAX", "message": "int value should be less than or equal to 100."}
    assert (await error(limit=0))["limit"]["_errors"][0]["code"] == "NUMBER_TYPE_MIN"
    assert (await error(limit="ten"))["limit"]["_errors"][0]["code"] == "NUMBER_TYPE_COERCE"
    assert (await error(around="abc"))["around"]["_errors"][0]["message"] == 'Value "abc" is not snowflake.'
    assert "before" in await error(before="12x")


# --- DM channels -----------------------------------------------------------------------------


async def test_midjourney_in_the_dm_channel(sim: Simulator, client: Client) -> None:
    dm = client.account.dm_channel_id
    other = await connect_client(sim, 1)
    try:
        async with httpx.AsyncClient() as http:
            accounts = (await http.get(f"{sim.base_url}/_simulator/accounts")).json()
        assert accounts[0]["dm_channel_id"] == dm and accounts[1]["dm_channel_id"] == sim.accounts[1].dm_channel_id != dm
        cid, version = await client.rest.command_version("imagine")
        # a DM interaction has no guild_id; naming one is a form error
        nonce = client.rest.nonce()
        bad = _imagine_body(client.rest, cid, version, client.session_id, nonce, "x", channel_id=dm, guild_id=client.account.guild_id)
        r = await client.rest.http.post("/interactions", json=bad)
        assert r.status_code == 400 and "guild_id" in r.json()["errors"]
        nonce = client.rest.nonce()
        r = await client.rest.http.post("/interactions", json=_imagine_body(client.rest, cid, version, client.session_id, nonce, "a dm cat", channel_id=dm, guild_id=None))
        assert r.status_code == 204, r.text
        iid = await client.interaction_id(nonce)
        grid = await client.result(iid)
        assert grid["channel_id"] == dm and "guild_id" not in grid
        assert grid["interaction_metadata"]["authorizing_integration_owners"]["0"] == "0"
        # follow-ups work in the DM too
        u1 = next(b["custom_id"] for row in grid["components"] for b in row["components"] if b.get("label") == "U1")
        body = {"type": 3, "nonce": client.rest.nonce(), "channel_id": dm, "message_flags": 0, "message_id": grid["id"],
                "application_id": MJ_APP, "session_id": client.session_id, "data": {"component_type": 2, "custom_id": u1}}
        r = await client.rest.http.post("/interactions", json=body)
        assert r.status_code == 204, r.text
        upscale = await client.gw.event("MESSAGE_CREATE", lambda d: d["channel_id"] == dm and "Image #1" in d["content"])
        assert upscale["message_reference"]["channel_id"] == dm and "guild_id" not in upscale["message_reference"]
        await sim.wait_idle(10)
        # the DM's history, and nobody else sees it
        history = (await client.rest.http.get(f"/channels/{dm}/messages")).json()
        assert {grid["id"], upscale["id"]} <= {m["id"] for m in history}
        assert not [f for f in other.gw.dispatches() if f["d"].get("channel_id") == dm]
        r = await other.rest.http.get(f"/channels/{dm}/messages")
        assert r.status_code == 403
        deletes = client.gw.dispatches("MESSAGE_DELETE")
        assert deletes and all("guild_id" not in f["d"] for f in deletes if f["d"]["channel_id"] == dm)
        # uploads in the DM, and a user message there
        r = await client.rest.http.post(f"/channels/{dm}/attachments", json={"files": [{"filename": "a.png", "file_size": 3, "id": "0"}]})
        assert r.status_code == 200 and r.json()["attachments"][0]["upload_url"]
        r = await client.rest.http.post(f"/channels/{dm}/messages", json={"content": "hi bot"})
        assert r.status_code == 200 and "guild_id" not in r.json()
        channel = (await client.rest.http.get(f"/channels/{dm}")).json()
        assert channel["last_message_id"] == r.json()["id"]
    finally:
        await close_client(other)


# --- 5xx and 429 on POST /interactions -------------------------------------------------------


async def test_interaction_5xx_accepted_runs_the_job(sim: Simulator, client: Client) -> None:
    sim.faults.interaction_5xx(status=500, accepted=True)
    r, nonce = await client.rest.imagine(client.session_id, "ambiguous yes")
    assert r.status_code == 500 and r.json() == {"message": "500: Internal Server Error", "code": 0}
    iid = await client.interaction_id(nonce)
    await client.result(iid)
    rec = sim.interaction_log[-1]
    assert (rec.outcome, rec.status, rec.nonce, rec.interaction_id) == ("server_error_accepted", 500, nonce, iid)


async def test_interaction_5xx_dropped_does_nothing(sim: Simulator, client: Client) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        r = await control.post("/_simulator/faults/interaction-5xx", json={"count": 2, "status": 502, "accepted": False, "user_id": client.user_id})
        assert r.json()["ok"] is True
        assert len((await control.get("/_simulator/faults")).json()["interaction_5xx"]) == 2
        assert (await control.post("/_simulator/faults/interaction-5xx", json={"status": 404})).status_code == 400
    r, nonce = await client.rest.imagine(client.session_id, "ambiguous no")
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html") and "502 Bad Gateway" in r.text
    r2, nonce2 = await client.rest.imagine(client.session_id, "ambiguous no again")
    assert r2.status_code == 502
    await sim.wait_idle(5)
    assert not [f for f in client.gw.dispatches() if f["d"].get("nonce") in (nonce, nonce2)]
    assert [(rec.outcome, rec.status) for rec in sim.interaction_log[-2:]] == [("server_error", 502)] * 2
    assert [j for j in sim.context.runner.jobs.values() if "ambiguous" in j.prompt] == []
    # the next one is normal again
    r, nonce = await client.rest.imagine(client.session_id, "after the storm")
    assert r.status_code == 204


async def test_interaction_503_text_and_user_targeting(sim: Simulator, client: Client) -> None:
    other = await connect_client(sim, 1)
    try:
        sim.faults.interaction_5xx(status=503, accepted=False, user_id=other.user_id)
        r, _ = await client.rest.imagine(client.session_id, "not me")
        assert r.status_code == 204
        r, _ = await other.rest.imagine(other.session_id, "me")
        assert r.status_code == 503 and r.text.startswith("upstream connect error or disconnect/reset before headers")
    finally:
        await close_client(other)
    with pytest.raises(ValueError):
        sim.faults.interaction_5xx(status=504)


async def test_rate_limited_interactions_are_logged_with_429(sim: Simulator, client: Client) -> None:
    await client.rest.command_version("imagine")  # the index is read before the 429s are armed
    sim.faults.rate_limit(count=2, retry_after=0.25)
    r1, n1 = await client.rest.imagine(client.session_id, "too fast 1")
    r2, n2 = await client.rest.imagine(client.session_id, "too fast 2")
    assert r1.status_code == r2.status_code == 429
    limited = [rec for rec in sim.interaction_log if rec.status == 429]
    assert [(rec.outcome, rec.nonce, rec.name, rec.user_id) for rec in limited] == [
        ("rate_limited", n1, "imagine", client.user_id),
        ("rate_limited", n2, "imagine", client.user_id),
    ]
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        logged = (await control.get("/_simulator/interactions")).json()
    assert sum(1 for rec in logged if rec["status"] == 429) == 2



async def test_guild_apps_shape_the_command_indexes(sim: Simulator, client: Client) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        r = await control.post("/_simulator/guild-apps", json={"user_id": client.user_id, "apps": [MJ_APP]})
        assert r.json() == {"ok": True, "result": 1}
        assert (await control.post("/_simulator/guild-apps", json={"apps": ["42"]})).status_code == 400
    account = client.account
    for path in (f"/guilds/{account.guild_id}/application-command-index", f"/channels/{account.channel_id}/application-command-index",
                 f"/channels/{account.channel_id}/application-commands/search"):
        body = (await client.rest.http.get(path)).json()
        assert {c["application_id"] for c in body["application_commands"]} == {MJ_APP}, path
    # the other guild still has both bots; the user's own index always lists both
    other = Rest(sim, sim.accounts[1])
    try:
        body = (await other.http.get(f"/guilds/{sim.accounts[1].guild_id}/application-command-index")).json()
        assert {c["application_id"] for c in body["application_commands"]} == {MJ_APP, NIJI_APP}
    finally:
        await other.aclose()
    sim.faults.set_guild_apps([NIJI_APP])  # every guild
    body = (await client.rest.http.get(f"/guilds/{account.guild_id}/application-command-index")).json()
    assert {c["application_id"] for c in body["application_commands"]} == {NIJI_APP}


async def test_final_message_nonce_is_one_of_two_behaviours(sim: Simulator, client: Client) -> None:
    r, nonce = await client.rest.imagine(client.session_id, "old style")
    final = await client.result(await client.interaction_id(nonce))
    assert "nonce" not in final  # default: the result has none
    async with httpx.AsyncClient(base_url=sim.base_url) as control:
        r = await control.post("/_simulator/behaviour", json={"user_id": client.user_id, "final_message_nonce": True})
        assert r.json()["result"] == 1
        accounts = (await control.get("/_simulator/accounts")).json()
        assert accounts[0]["final_message_nonce"] is True and accounts[1]["final_message_nonce"] is False
    r, nonce = await client.rest.imagine(client.session_id, "new style")
    final = await client.result(await client.interaction_id(nonce))
    assert final["nonce"] == nonce  # the nonce of the interaction that started the job
    u1 = next(b["custom_id"] for row in final["components"] for b in row["components"] if b.get("label") == "U1")
    r, press_nonce = await client.rest.press(client.session_id, final, u1)
    upscale = await client.gw.event("MESSAGE_CREATE", lambda d: "Image #1" in d["content"])
    assert upscale["nonce"] == press_nonce
    history = (await client.rest.http.get(f"/channels/{client.account.channel_id}/messages")).json()
    assert all("nonce" not in m for m in history)  # REST reads still have none
