"""Discord REST: auth, the command index, interaction validation, uploads, messages, the CDN,
rate-limit headers."""

from __future__ import annotations

import io
import json
import time
from urllib.parse import urlsplit

import httpx
from PIL import Image

from adapter.simulator import Simulator
from adapter.simulator.commands import MIDJOURNEY_COMMAND_IDS

from .conftest import Client
from .harness import MJ_APP, NIJI_APP


def png_bytes(colour: tuple[int, int, int] = (10, 200, 30), size: tuple[int, int] = (60, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


async def test_auth_and_error_shapes(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_base) as http:
        r = await http.get(f"/guilds/{sim.accounts[0].guild_id}/application-command-index")
        assert r.status_code == 401 and r.json() == {"message": "401: Unauthorized", "code": 0}
        r = await http.get("/users/@me", headers={"Authorization": "Bot " + sim.accounts[0].token})
        assert r.status_code == 401
        r = await http.get("/gateway")
        assert r.json() == {"url": sim.gateway_url}
        r = await http.get("/no/such/route", headers={"Authorization": sim.accounts[0].token})
        assert r.status_code == 404 and r.json()["code"] == 0


async def test_rate_limit_headers_on_every_answer(client: Client) -> None:
    for r in (await client.rest.http.get("/gateway"), await client.rest.http.get("/users/@me")):
        for header in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-reset-after", "x-ratelimit-bucket"):
            assert header in r.headers
    a = await client.rest.http.get("/users/@me")
    b = await client.rest.http.get("/users/@me")
    assert int(b.headers["x-ratelimit-remaining"]) <= int(a.headers["x-ratelimit-remaining"])


async def test_command_index_has_midjourney_ids(client: Client) -> None:
    index = await client.rest.command_index()
    mj = {c["name"]: c for c in index["application_commands"] if c["application_id"] == MJ_APP}
    # the real ids (public clients and a captured command index; README "Command versions")
    assert {name: c["id"] for name, c in mj.items()} == MIDJOURNEY_COMMAND_IDS
    assert all(c["version"].isdigit() for c in mj.values())
    assert mj["imagine"]["options"][0] == {"type": 3, "name": "prompt", "description": "The prompt to imagine", "required": True}
    assert {a["id"] for a in index["applications"]} == {MJ_APP, NIJI_APP}
    # not a member of another account's guild
    other = client.sim.accounts[1]
    r = await client.rest.http.get(f"/guilds/{other.guild_id}/application-command-index")
    assert r.status_code == 403 and r.json()["code"] == 50001


async def test_stale_command_version_is_50035(sim: Simulator, client: Client) -> None:
    _, old = await client.rest.command_version("imagine")
    changed = sim.faults.bump_command_versions("imagine")
    assert changed[f"{MJ_APP}:imagine"] != old
    r, _ = await client.rest.imagine(client.session_id, "a cat", version=old)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 50035 and body["message"] == "Invalid Form Body"
    assert body["errors"]["data"]["_errors"][0]["code"] == "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION"
    await client.rest.command_version("imagine", refresh=True)
    r, _ = await client.rest.imagine(client.session_id, "a cat")  # the refreshed version works
    assert r.status_code == 204
    outcomes = [rec.outcome for rec in sim.interaction_log]
    assert outcomes[-2:] == ["invalid_version", "accepted"]


async def test_interaction_validation(sim: Simulator, client: Client) -> None:
    for bad in (None, "", 42, "not a session", "x" * 200):  # missing or garbled: a form error
        r, _ = await client.rest.imagine(bad, "x")  # type: ignore[arg-type]
        assert r.status_code == 400 and r.json()["code"] == 50035, bad
        assert "session_id" in r.json()["errors"]
    body = {"type": 2, "application_id": "123", "channel_id": client.account.channel_id, "session_id": client.session_id, "data": {}}
    r = await client.rest.http.post("/interactions", json=body)
    assert r.status_code == 404 and r.json()["code"] == 10002
    body["application_id"] = MJ_APP
    body["channel_id"] = sim.accounts[1].channel_id
    r = await client.rest.http.post("/interactions", json=body)
    assert r.status_code == 404 and r.json()["code"] == 10003
    r = await client.rest.http.post("/interactions", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == 50035
    r, _ = await client.rest.command(client.session_id, "imagine", [])  # missing required prompt
    assert r.status_code == 400 and r.json()["code"] == 50035
    outcomes = {rec.outcome for rec in sim.interaction_log}
    assert {"invalid_session", "unknown_application", "unknown_channel", "invalid_form_body"} <= outcomes


async def test_buttons_need_the_message_and_the_custom_id(client: Client) -> None:
    grid = await client.imagine("button checks")
    fake = {**grid, "id": "1234567890123456789"}
    r, _ = await client.rest.press(client.session_id, fake, grid["components"][0]["components"][0]["custom_id"])
    assert r.status_code == 404 and r.json()["code"] == 10008
    r, _ = await client.rest.press(client.session_id, grid, "MJ::JOB::upsample::9::00000000-0000-4000-8000-000000000000")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 50035 and body["errors"]["data"]["custom_id"]["_errors"][0]["code"] == "COMPONENT_VALIDATION_FAILED"


async def test_upload_message_and_cdn(client: Client) -> None:
    data = png_bytes()
    uploaded = await client.rest.upload("in put.png", data)
    r = await client.rest.http.post(
        f"/channels/{client.account.channel_id}/messages",
        json={"content": "", "nonce": "777", "attachments": [{"id": "0", "filename": "in.png", "uploaded_filename": uploaded}]},
    )
    assert r.status_code == 200, r.text
    message = r.json()
    assert message["author"]["id"] == client.user_id and message["nonce"] == "777"
    url = message["attachments"][0]["url"]
    assert (message["attachments"][0]["width"], message["attachments"][0]["height"]) == (60, 40)
    assert set(dict(q.split("=") for q in urlsplit(url).query.rstrip("&").split("&"))) == {"ex", "is", "hm"}
    created = await client.gw.event("MESSAGE_CREATE", lambda d: d["id"] == message["id"])
    assert created["attachments"][0]["url"] == url
    async with httpx.AsyncClient() as http:
        got = await http.get(url)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png" and got.content == data
        tampered = url.replace("hm=", "hm=0")
        assert (await http.get(tampered)).status_code == 404
        assert (await http.get(url.split("?")[0])).status_code == 404
        path = urlsplit(url).path
        expired = client.sim.context.cdn.signed_url(path, now=time.time() - 2 * 86400)
        assert (await http.get(expired)).status_code == 404
        fresh = client.sim.context.cdn.signed_url(path)
        assert (await http.get(fresh)).status_code == 200


async def test_upload_rules(client: Client) -> None:
    r = await client.rest.http.post(f"/channels/{client.account.channel_id}/attachments", json={"files": [{"filename": "a.png", "file_size": 3, "id": "0"}]})
    slot = r.json()["attachments"][0]
    assert slot["id"] == "0" and slot["upload_filename"].endswith("/a.png")
    async with httpx.AsyncClient() as http:
        assert (await http.put(slot["upload_url"], content=b"toolong")).status_code == 400
        assert (await http.put(slot["upload_url"] + "x", content=b"abc")).status_code == 404
    # a message cannot reference a file that was never uploaded
    r = await client.rest.http.post(
        f"/channels/{client.account.channel_id}/messages",
        json={"attachments": [{"id": "0", "filename": "a.png", "uploaded_filename": slot["upload_filename"]}]},
    )
    assert r.status_code == 400 and r.json()["code"] == 50035
    r = await client.rest.http.post(f"/channels/{client.account.channel_id}/messages", json={"content": ""})
    assert r.status_code == 400 and r.json()["code"] == 50006


async def test_history_newest_first_with_paging(client: Client) -> None:
    ids = []
    for i in range(5):
        r = await client.rest.http.post(f"/channels/{client.account.channel_id}/messages", json={"content": f"m{i}"})
        ids.append(r.json()["id"])
    r = await client.rest.http.get(f"/channels/{client.account.channel_id}/messages", params={"limit": 3})
    assert [m["id"] for m in r.json()] == ids[::-1][:3]
    r = await client.rest.http.get(f"/channels/{client.account.channel_id}/messages", params={"limit": 3, "before": ids[2]})
    assert [m["id"] for m in r.json()] == [ids[1], ids[0]]
    r = await client.rest.http.get(f"/channels/{client.account.channel_id}/messages/{ids[0]}")
    assert r.json()["content"] == "m0"
    r = await client.rest.http.get(f"/channels/{client.sim.accounts[1].channel_id}/messages")
    assert r.status_code == 403


async def test_rate_limit_fault(sim: Simulator, client: Client) -> None:
    await client.rest.command_version("imagine")  # index cached before the 429s
    sim.faults.rate_limit(count=2, retry_after=1.5, is_global=False)
    r1 = await client.rest.http.get("/users/@me")
    r2, _ = await client.rest.imagine(client.session_id, "limited")
    for r in (r1, r2):
        assert r.status_code == 429
        assert r.json() == {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}
        assert r.headers["retry-after"] == "2"
        assert r.headers["x-ratelimit-remaining"] == "0"
        assert float(r.headers["x-ratelimit-reset-after"]) == 1.5
    assert sim.interaction_log[-1].outcome == "rate_limited"
    assert (await client.rest.http.get("/users/@me")).status_code == 200
    sim.faults.rate_limit(count=1, retry_after=0.5, is_global=True)
    r = await client.rest.http.get("/users/@me")
    assert r.status_code == 429 and r.json()["global"] is True and r.headers["x-ratelimit-global"] == "true"


async def test_captcha_on_interaction(sim: Simulator, client: Client) -> None:
    sim.faults.captcha_next_interaction(client.user_id)
    r, nonce = await client.rest.imagine(client.session_id, "please")
    assert r.status_code == 400
    body = r.json()
    assert body["captcha_key"] == ["captcha-required"] and body["captcha_service"] == "hcaptcha" and body["captcha_sitekey"]
    record = sim.interaction_log[-1]
    assert (record.outcome, record.nonce, record.name, record.type) == ("captcha", nonce, "imagine", 2)
    r, _ = await client.rest.imagine(client.session_id, "please")
    assert r.status_code == 204


async def test_interaction_log_over_control_api(sim: Simulator, client: Client) -> None:
    r, nonce = await client.rest.imagine(client.session_id, "logged")
    async with httpx.AsyncClient() as http:
        log = (await http.get(f"{sim.base_url}/_simulator/interactions")).json()
    assert log[-1]["nonce"] == nonce and log[-1]["outcome"] == "accepted" and log[-1]["user_id"] == client.user_id
    assert log[-1]["name"] == "imagine" and log[-1]["interaction_id"]


async def test_multipart_interaction_with_a_file(client: Client) -> None:
    cid, version = await client.rest.command_version("describe")
    nonce = client.rest.nonce()
    payload = {
        "type": 2, "application_id": MJ_APP, "guild_id": client.account.guild_id, "channel_id": client.account.channel_id,
        "session_id": client.session_id, "nonce": nonce,
        "data": {"version": version, "id": cid, "name": "describe", "type": 1,
                 "options": [{"type": 11, "name": "image", "value": "0"}], "attachments": [{"id": "0", "filename": "p.png"}]},
    }
    r = await client.rest.http.post(
        "/interactions",
        data={"payload_json": json.dumps(payload)},
        files={"files[0]": ("p.png", png_bytes(size=(40, 40)), "image/png")},
    )
    assert r.status_code == 204, r.text
    first = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    done = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == first["id"] and bool(d["components"]))
    assert done["embeds"][0]["description"].count("--ar 1:1") == 4


async def test_command_search_endpoint(client: Client) -> None:
    r = await client.rest.http.get(f"/channels/{client.account.channel_id}/application-commands/search", params={"type": 1})
    assert r.status_code == 200
    names = {c["name"] for c in r.json()["application_commands"]}
    assert {"imagine", "describe", "blend", "shorten", "info", "fast", "relax", "turbo", "settings", "show"} <= names
