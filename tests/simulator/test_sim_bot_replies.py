"""What the simulated Midjourney bot answers, as public clients read it: slow commands (/info,
/settings, /shorten, /prefer) as a LOADING placeholder then its update, INTERACTION_SUCCESS after
modals and iframes, /settings' Reset, /prefer, the /info renewal date, emoji reactions (❌, ✉️)
and v7's Animate / draft Enhance buttons."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from adapter.domain import buttons as ids
from adapter.simulator import SimAccount, Simulator
from adapter.simulator.config import make_accounts

from .conftest import Client, close_client, connect_client, fast_config
from .harness import MJ_APP, button_id, buttons, custom_ids
from .test_sim_followups import job_hash, line, upscaled

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# trueai-org/midjourney-proxy's pattern for the seed DM
SEED_DM = re.compile(rf"\*\*Job ID\*\*:\s*(?P<job>{UUID})\s*\*\*seed\*\*\s*(?P<seed>\d+)")


def any_hash(message: dict[str, Any]) -> str:
    """The job hash of an image (.png) or video (.webp) result."""
    m = re.search(rf"({UUID})\.(?:png|webp)$", message["attachments"][0]["filename"])
    assert m, message["attachments"][0]["filename"]
    return m.group(1)


async def slow(client: Client, name: str, options: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(placeholder, update) of a slow command."""
    r, nonce = await client.rest.command(client.session_id, name, options)
    assert r.status_code == 204, r.text
    placeholder = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert placeholder["flags"] & 128 and placeholder["content"] == "" and placeholder["embeds"] == []
    update = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == placeholder["id"])
    assert "nonce" not in update and not update["flags"] & 128
    return placeholder, update


async def control(sim: Simulator, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.post(f"{sim.base_url}/_simulator/{path}", json=body)


async def answered(client: Client, message: dict[str, Any], custom_id: str) -> str:
    """Press and return the event Discord reported for the press (SUCCESS, MODAL_CREATE, ...)."""
    r, nonce = await client.rest.press(client.session_id, message, custom_id)
    assert r.status_code == 204, r.text
    frame = await client.gw.wait(
        lambda f: f.get("t") in ("INTERACTION_SUCCESS", "INTERACTION_FAILURE", "INTERACTION_MODAL_CREATE", "INTERACTION_IFRAME_MODAL_CREATE")
        and f["d"].get("nonce") == nonce
    )
    return str(frame["t"])


# --- /info ----------------------------------------------------------------------------------


def info_lines(description: str) -> dict[str, str]:
    """Parsed the way erictik/midjourney-api's formatInfo reads it: split at the first colon."""
    out = {}
    for text in description.split("\n"):
        if ":" in text:
            key, value = text.split(":", 1)
            out[key.strip().replace("**", "")] = value.strip()
    return out


async def test_info_is_deferred_and_carries_the_renewal_date(sim: Simulator, client: Client) -> None:
    placeholder, update = await slow(client, "info")
    assert placeholder["flags"] == 64 | 128 and placeholder["interaction"]["name"] == "info"
    assert update["flags"] == 64 and update["interaction_metadata"]["name"] == "info"
    embed = update["embeds"][0]
    assert embed["title"] == "Your info"
    lines = info_lines(embed["description"])
    assert lines["User ID"] == client.user_id
    m = re.fullmatch(r"([A-Za-z ]+) \(Active (monthly|yearly), renews next on <t:(\d+)>\)", lines["Subscription"])
    assert m, lines["Subscription"]
    renews = int(m.group(3))
    import time

    assert time.time() < renews < time.time() + 31 * 86400
    # novicezk-style parsing: each line split at "**: "
    for text in embed["description"].split("\n"):
        key, value = text.split("**: ")
        assert key.startswith("**") and value
    assert lines["Relaxed Usage"].endswith("hours)") and lines["Lifetime Usage"].startswith("0 images")

    # the newer layout: no User ID, values aligned to one column, a blank line before the queues
    assert (await control(sim, "settings", {"user_id": client.user_id, "info_layout": "aligned"})).status_code == 200
    _, update = await slow(client, "info")
    description = update["embeds"][0]["description"]
    assert "User ID" not in description and "\n\n**Queued Jobs (fast)**:" in description
    padded = [t for t in description.split("\n") if t]
    assert {t.index(v) for t, v in ((t, t.split(":", 1)[1].strip()) for t in padded)} == {32}
    assert info_lines(description)["Subscription"] == lines["Subscription"]
    accounts = (await httpx.AsyncClient().get(f"{sim.base_url}/_simulator/accounts")).json()
    assert next(a for a in accounts if a["user_id"] == client.user_id)["info_layout"] == "aligned"
    assert (await control(sim, "settings", {"info_layout": "sideways"})).status_code == 400


# --- /settings ------------------------------------------------------------------------------


async def test_settings_reset_button(client: Client) -> None:
    _, settings = await slow(client, "settings")
    assert settings["interaction"]["name"] == "settings" and settings["flags"] == 64
    reset = next(b for b in buttons(settings) if b.get("label") == "Reset Settings")
    assert reset["custom_id"] == "MJ::Settings::ResetSettings"
    labels = {b["label"]: b for b in buttons(settings)}
    assert labels["Remix mode"]["style"] == 2 and labels["Fast mode"]["style"] == 3

    await client.press(settings, "MJ::Settings::RemixMode")
    settings = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == settings["id"])
    await client.press(settings, "MJ::Settings::RelaxMode")
    settings = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == settings["id"])
    styles = {b["label"]: b["style"] for b in buttons(settings)}
    assert styles["Remix mode"] == 3 and styles["Relax mode"] == 3 and styles["Fast mode"] == 2
    assert (await client.imagine("relaxed now"))["content"].endswith("(relaxed)")

    await client.press(settings, "MJ::Settings::ResetSettings")
    settings = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == settings["id"])
    styles = {b["label"]: b["style"] for b in buttons(settings)}
    assert styles["Remix mode"] == 2 and styles["Fast mode"] == 3 and styles["Relax mode"] == 2
    assert (await client.imagine("fast again"))["content"].endswith("(fast)")


@pytest.fixture
async def stateful() -> AsyncIterator[tuple[Simulator, Client]]:
    account = make_accounts(1, 5)[0]
    sim = Simulator(fast_config(accounts=[SimAccount(**{**_fields(account), "settings_ids": "stateful"})]))
    await sim.start()
    client = await connect_client(sim)
    try:
        yield sim, client
    finally:
        await close_client(client)
        await sim.stop()


def _fields(account: SimAccount) -> dict[str, Any]:
    return {f: getattr(account, f) for f in account.__struct_fields__}


async def test_settings_stateful_ids(stateful: tuple[Simulator, Client]) -> None:
    """The other shape public clients use: the speed toggles say what pressing them does."""
    _, client = stateful
    _, settings = await slow(client, "settings")
    ids_now = {b["label"]: b["custom_id"] for b in buttons(settings)}
    assert ids_now["Fast mode"] == "MJ::Settings::FastMode::off" and ids_now["Relax mode"] == "MJ::Settings::RelaxMode::on"
    assert ids_now["Remix mode"] == "MJ::Settings::RemixMode"
    await client.press(settings, "MJ::Settings::RelaxMode::on")
    settings = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == settings["id"])
    ids_now = {b["label"]: b["custom_id"] for b in buttons(settings)}
    assert ids_now["Relax mode"] == "MJ::Settings::RelaxMode::off" and ids_now["Fast mode"] == "MJ::Settings::FastMode::on"
    await client.press(settings, "MJ::Settings::RelaxMode::off")  # relax off: back to fast
    settings = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == settings["id"])
    assert {b["label"]: b["style"] for b in buttons(settings)}["Fast mode"] == 3


# --- /prefer --------------------------------------------------------------------------------


async def test_prefer_remix_suffix_and_options(client: Client) -> None:
    index = await client.rest.command_index()
    prefer = next(c for c in index["application_commands"] if c["name"] == "prefer" and c["application_id"] == MJ_APP)
    assert {o["name"]: o["type"] for o in prefer["options"]} == {"remix": 1, "suffix": 1, "option": 2}

    # erictik/midjourney-api's payload: options [{type 1, name "remix", options []}]
    placeholder, update = await slow(client, "prefer", [{"type": 1, "name": "remix", "options": []}])
    assert placeholder["flags"] == 64 | 128
    assert update["content"].startswith("Remix mode turned on")
    assert update["interaction"]["name"] == "prefer remix" and update["interaction_metadata"]["name"] == "prefer remix"
    grid = await client.imagine("a boat")
    r, nonce = await client.rest.press(client.session_id, grid, ids.variation(1, job_hash(grid)))
    await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    _, update = await slow(client, "prefer", [{"type": 1, "name": "remix", "options": []}])
    assert update["content"].startswith("Remix mode turned off")

    _, update = await slow(client, "prefer", [{"type": 1, "name": "suffix", "options": [{"type": 3, "name": "new_value", "value": "--ar 16:9"}]}])
    assert "--ar 16:9" in update["content"]
    wide = await client.imagine("a beach")
    assert line(wide) == f"**a beach --ar 16:9** - <@{client.user_id}> (fast)"
    assert wide["attachments"][0]["width"] > wide["attachments"][0]["height"]
    await slow(client, "prefer", [{"type": 1, "name": "suffix", "options": []}])  # cleared

    option = [{"type": 2, "name": "option", "options": [
        {"type": 1, "name": "set", "options": [{"type": 3, "name": "option", "value": "oil"}, {"type": 3, "name": "value", "value": "oil painting, thick brush strokes"}]},
    ]}]
    _, update = await slow(client, "prefer", option)
    assert update["interaction"]["name"] == "prefer option set" and "--oil" in update["content"]
    painted = await client.imagine("a harbour --oil")
    assert line(painted) == f"**a harbour oil painting, thick brush strokes** - <@{client.user_id}> (fast)"
    _, update = await slow(client, "prefer", [{"type": 2, "name": "option", "options": [{"type": 1, "name": "list", "options": []}]}])
    assert "`--oil`: oil painting, thick brush strokes" in update["content"]

    # Discord refuses a command with subcommands but none chosen, and an unknown subcommand
    r, _ = await client.rest.command(client.session_id, "prefer", [])
    assert r.status_code == 400 and r.json()["code"] == 50035
    r, _ = await client.rest.command(client.session_id, "prefer", [{"type": 1, "name": "colour", "options": []}])
    assert r.status_code == 400 and r.json()["code"] == 50035


# --- modals and iframes ---------------------------------------------------------------------


async def test_iframe_press_succeeds_after_the_iframe(client: Client) -> None:
    _, single = await upscaled(client, "a pond")
    r, nonce = await client.rest.press(client.session_id, single, ids.vary_region(job_hash(single)))
    iframe = await client.gw.event("INTERACTION_IFRAME_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    success = await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
    assert success["id"] == iframe["id"]
    kinds = [f["t"] for f in client.gw.dispatches() if f["t"].startswith("INTERACTION") and f["d"].get("nonce") == nonce]
    assert kinds == ["INTERACTION_CREATE", "INTERACTION_IFRAME_MODAL_CREATE", "INTERACTION_SUCCESS"]


# --- reactions ------------------------------------------------------------------------------


async def react(client: Client, channel_id: str, message_id: str, emoji: str) -> httpx.Response:
    return await client.rest.http.put(f"/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me")


async def test_envelope_sends_the_job_to_dms(sim: Simulator, client: Client) -> None:
    grid = await client.imagine("a lantern --seed 4242")
    h = job_hash(grid)
    dm = client.account.dm_channel_id
    r = await react(client, client.account.channel_id, grid["id"], "%E2%9C%89%EF%B8%8F")  # ✉️, as trueai sends it
    assert r.status_code == 204
    sent = await client.gw.event("MESSAGE_CREATE", lambda d: d["channel_id"] == dm)
    assert sent["author"]["id"] == MJ_APP and "guild_id" not in sent
    m = SEED_DM.search(sent["content"])
    assert m and m["job"] == h and m["seed"] == "4242"
    assert sent["content"].startswith("**a lantern --seed 4242**\n")
    attachment = sent["attachments"][0]
    assert h in attachment["filename"] and f"/attachments/{dm}/" in attachment["url"]
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(attachment["url"])).status_code == 200
    history = (await client.rest.http.get(f"/channels/{dm}/messages")).json()
    assert history[0]["id"] == sent["id"]

    # without --seed the seed is the job's own, stable for the job
    other = await client.imagine("a kite")
    await react(client, client.account.channel_id, other["id"], "%E2%9C%89")
    again = await client.gw.event("MESSAGE_CREATE", lambda d: d["channel_id"] == dm and job_hash(other) in d["content"])
    assert int(SEED_DM.search(again["content"])["seed"]) < 2**32  # type: ignore[index]


async def test_envelope_on_a_show_in_the_dm(client: Client) -> None:
    """trueai-org/midjourney-proxy's seed flow: /show <job id> in the DM channel with the bot,
    then ✉️ on the shown message there."""
    grid = await client.imagine("a windmill")
    h = job_hash(grid)
    dm = client.account.dm_channel_id
    cid, version = await client.rest.command_version("show")
    nonce = client.rest.nonce()
    body = {
        "type": 2, "application_id": MJ_APP, "channel_id": dm, "session_id": client.session_id, "nonce": nonce,
        "data": {"version": version, "id": cid, "name": "show", "type": 1, "options": [{"type": 3, "name": "job_id", "value": h}], "attachments": []},
    }
    r = await client.rest.http.post("/interactions", json=body)
    assert r.status_code == 204, r.text
    shown = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert shown["channel_id"] == dm and h in shown["attachments"][0]["filename"]
    await react(client, dm, shown["id"], "%E2%9C%89%EF%B8%8F")
    seed = await client.gw.event("MESSAGE_CREATE", lambda d: d["channel_id"] == dm and "**Job ID**" in d["content"])
    assert SEED_DM.search(seed["content"])["job"] == h  # type: ignore[index]


async def test_cross_deletes_a_finished_result(sim: Simulator, client: Client) -> None:
    grid = await client.imagine("a chair")
    r = await react(client, client.account.channel_id, grid["id"], "%E2%9D%8C")
    assert r.status_code == 204
    deleted = await client.gw.event("MESSAGE_DELETE", lambda d: d["id"] == grid["id"])
    assert deleted["channel_id"] == client.account.channel_id
    history = (await client.rest.http.get(f"/channels/{client.account.channel_id}/messages")).json()
    assert all(m["id"] != grid["id"] for m in history)
    # the job itself stays known: /show brings it back
    r, nonce = await client.rest.command(client.session_id, "show", [{"type": 3, "name": "job_id", "value": job_hash(grid)}])
    shown = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert shown["attachments"]

    # ❌ on a message that is no result (the shown copy is one, a plain user post is not)
    post = (await client.rest.http.post(f"/channels/{client.account.channel_id}/messages", json={"content": "hello"})).json()
    r = await react(client, client.account.channel_id, post["id"], "%E2%9D%8C")
    assert r.status_code == 204
    assert not [f for f in client.gw.dispatches("MESSAGE_DELETE") if f["d"]["id"] == post["id"]]


async def test_bookmark_rates_the_job(client: Client) -> None:
    _, single = await upscaled(client, "a vase")
    iid = await client.press(single, f"MJ::BOOKMARK::{job_hash(single)}")
    rated = await client.gw.event("MESSAGE_CREATE", lambda d: (d.get("interaction_metadata") or {}).get("id") == iid)
    assert rated["content"].startswith("You have successfully rated [this job](")
    assert rated["content"].endswith(f"/{single['id']}) with 😍")
    assert rated["message_reference"]["message_id"] == single["id"]


# --- v7: Animate, video upscale and extend, draft Enhance -----------------------------------


async def test_v7_single_offers_animate_and_runs_a_video(client: Client) -> None:
    _, single = await upscaled(client, "a fox --v 7")
    h = job_hash(single)
    animate = {b["label"]: b for b in buttons(single) if (b.get("custom_id") or "").startswith("MJ::JOB::animate_")}
    assert {k: v["custom_id"] for k, v in animate.items()} == {
        "Animate (High motion)": f"MJ::JOB::animate_high::1::{h}::SOLO",
        "Animate (Low motion)": f"MJ::JOB::animate_low::1::{h}::SOLO",
    }
    assert ids.upscale_subtle(h, "v7") in custom_ids(single)

    iid = await client.press(single, f"MJ::JOB::animate_high::1::{h}::SOLO")
    video = await client.result(iid)
    vh = any_hash(video)
    assert vh != h
    assert line(video) == f"**a fox --motion high --video 1 --aspect 1:1** - <@{client.user_id}> (fast)"
    assert video["message_reference"]["message_id"] == single["id"]
    attachment = video["attachments"][0]
    assert attachment["filename"].endswith(f"_{vh}.webp") and attachment["content_type"] == "image/webp"
    async with httpx.AsyncClient(timeout=5) as http:
        data = (await http.get(attachment["url"])).content
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "WEBP" and getattr(im, "n_frames", 1) > 1
    assert custom_ids(video) == [*(f"MJ::JOB::video_virtual_upscale::{i}::{vh}" for i in range(1, 5)), ids.reroll(vh)]
    progress = [u["d"]["content"] for u in client.gw.dispatches("MESSAGE_UPDATE")]
    assert any(re.fullmatch(rf"\*\*a fox --motion high --video 1 --aspect 1:1\*\* - <@{client.user_id}> \(\d+%\) \(fast\)", c) for c in progress)

    # U2 of the video grid: one video, with Extend buttons naming the grid and the video's place
    one = await client.result(await client.press(video, f"MJ::JOB::video_virtual_upscale::2::{vh}"))
    assert one["attachments"][0]["content_type"] == "video/mp4" and one["attachments"][0]["filename"] == f"{vh}_2_720_N.mp4"
    assert custom_ids(one) == [f"MJ::JOB::animate_high_extend::2::{vh}", f"MJ::JOB::animate_low_extend::2::{vh}"]
    extended = await client.result(await client.press(one, f"MJ::JOB::animate_low_extend::2::{vh}"), timeout=10)
    assert "--motion low --video 1" in line(extended) and "video_virtual_upscale" in custom_ids(extended)[0]

    # reroll of a video grid: another video grid
    rerolled = await client.result(await client.press(video, ids.reroll(vh)), timeout=10)
    assert rerolled["attachments"][0]["filename"].endswith(".webp") and "video_virtual_upscale" in custom_ids(rerolled)[0]


async def test_animate_opens_its_modal_with_remix_on(sim: Simulator, client: Client) -> None:
    _, single = await upscaled(client, "a heron --v 7")
    h = job_hash(single)
    sim.faults.set_settings(client.user_id, remix=True)
    r, nonce = await client.rest.press(client.session_id, single, f"MJ::JOB::animate_low::1::{h}::SOLO")
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert modal["custom_id"] == f"MJ::AnimateModal::{h}::1::low::0"
    field = modal["components"][0]["components"][0]
    assert field["custom_id"] == "MJ::AnimateModal::prompt" and "--motion low --video 1" in field["value"]
    assert (await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce))["id"] == modal["id"]
    r, n2 = await client.rest.submit_modal(client.session_id, modal, {"MJ::AnimateModal::prompt": "a heron taking off --motion low --video 1"})
    video = await client.result((await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == n2))["id"])
    assert line(video).startswith("**a heron taking off --motion low --video 1** - ")
    assert video["attachments"][0]["filename"].endswith(".webp")


async def test_draft_offers_enhance(client: Client) -> None:
    _, single = await upscaled(client, "a lamp --v 7 --draft")
    h = job_hash(single)
    enhance = button_id(single, label="Enhance")
    assert enhance == f"MJ::JOB::enhance::1::{h}::SOLO"
    assert not [c for c in custom_ids(single) if "upsample_" in c]  # drafts are enhanced, not upscaled
    grid = await client.result(await client.press(single, enhance))
    assert line(grid) == f"**a lamp --v 7** - <@{client.user_id}> (fast)"
    assert custom_ids(grid)[:4] == [ids.upsample(i, job_hash(grid)) for i in range(1, 5)]

    # v6 singles have neither Animate nor Enhance
    _, old = await upscaled(client, "a lamp --v 6")
    assert not [c for c in custom_ids(old) if "animate" in c or "enhance" in c]


async def test_every_offered_button_answers(sim: Simulator, client: Client) -> None:
    """Pressing any button the bot put on a v7 result is answered (success, a modal or an
    iframe), never with INTERACTION_FAILURE."""
    grid, single = await upscaled(client, "a map --v 7")
    video = await client.result(await client.press(single, f"MJ::JOB::animate_high::1::{job_hash(single)}::SOLO"))
    one = await client.result(await client.press(video, f"MJ::JOB::video_virtual_upscale::1::{any_hash(video)}"))
    draft = (await upscaled(client, "a map --v 7 --draft"))[1]
    for message in (grid, single, video, one, draft):
        for custom_id in custom_ids(message):
            assert await answered(client, message, custom_id) != "INTERACTION_FAILURE", custom_id
    await sim.wait_idle(20)


async def test_imagine_with_video_runs_a_video_grid(client: Client) -> None:
    """`/imagine <image link> [text] --video --motion ... --bs ...` (a prompt video): a video grid
    like Animate's, echoed `<link> <text> --motion <m> --bs <n> --video 1 --aspect W:H`, one U
    per video; a U gives `<grid hash>_<n>_720_N.mp4`; Extend drops the start link."""
    _, single = await upscaled(client, "a kite --v 7")
    url = single["attachments"][0]["url"]
    video = await client.imagine(f"{url} a kite rising --video --motion high --bs 2")
    vh = any_hash(video)
    assert re.fullmatch(rf"\*\*<https://s\.mj\.run/\w+> a kite rising --motion high --bs 2 --video 1 --aspect 1:1\*\* - <@{client.user_id}> \(fast\)",
                        line(video))
    assert video["attachments"][0]["content_type"] == "image/webp" and video["attachments"][0]["filename"].endswith(f"_{vh}.webp")
    assert custom_ids(video) == [f"MJ::JOB::video_virtual_upscale::{i}::{vh}" for i in (1, 2)] + [ids.reroll(vh)]
    one = await client.result(await client.press(video, f"MJ::JOB::video_virtual_upscale::1::{vh}"))
    assert one["attachments"][0]["filename"] == f"{vh}_1_720_N.mp4" and one["attachments"][0]["content_type"] == "video/mp4"
    assert one["message_reference"]["message_id"] == video["id"]
    extended = await client.result(await client.press(one, f"MJ::JOB::animate_low_extend::1::{vh}"), timeout=10)
    assert line(extended).startswith("**a kite rising --motion low --bs 2 --video 1 --aspect 1:1** - ")
    assert extended["message_reference"]["message_id"] == one["id"]


async def test_imagine_video_defaults_and_refusals(client: Client) -> None:
    video = await client.imagine("https://example.com/a.png --video --loop")
    assert line(video).startswith("**<https://s.mj.run/") and "--motion low --loop --video 1 --aspect 1:1** - " in line(video)
    assert len([c for c in custom_ids(video) if "video_virtual_upscale" in c]) == 4
    for bad in ("a kite --video", "https://example.com/a.png --video --bs 3"):
        r, nonce = await client.rest.imagine(client.session_id, bad)
        err = await client.gw.event("MESSAGE_CREATE", lambda d, nonce=nonce: d.get("nonce") == nonce)
        assert err["embeds"][0]["title"] == "Invalid parameter" and err["flags"] & 64
