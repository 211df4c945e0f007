"""Buttons on results: upscale, variations, reroll, vary, pan, zoom, custom zoom and remix modals,
vary region through the iframe."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import httpx
from PIL import Image

from adapter.domain import buttons as ids
from adapter.domain.actions import PanDirection
from adapter.domain.buttons import UUID_RE
from adapter.simulator import Simulator

from .conftest import Client
from .harness import buttons, custom_ids


def job_hash(message: dict[str, Any]) -> str:
    return re.search(rf"({UUID_RE})\.png", message["attachments"][0]["filename"]).group(1)


def line(message: dict[str, Any]) -> str:
    """The content without the optional website link."""
    return re.sub(r" \[\(Open on website for full quality\)\]\(<[^>]+>\)", "", message["content"])


async def upscaled(client: Client, prompt: str = "a lighthouse", n: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    grid = await client.imagine(prompt)
    iid = await client.press(grid, ids.upsample(n, job_hash(grid)))
    return grid, await client.result(iid)


def mask_b64() -> str:
    img = Image.new("L", (64, 64), 0)
    img.paste(255, (0, 0, 32, 32))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def test_upscale(client: Client) -> None:
    grid, single = await upscaled(client, "a lighthouse --ar 3:2", 2)
    uid = client.user_id
    assert line(single) == f"**a lighthouse --ar 3:2** - Image #2 <@{uid}>"
    assert single["message_reference"]["message_id"] == grid["id"]
    assert single["referenced_message"]["id"] == grid["id"]
    assert single["interaction_metadata"]["type"] == 3
    assert (single["attachments"][0]["width"], single["attachments"][0]["height"]) == (grid["attachments"][0]["width"] // 2, grid["attachments"][0]["height"] // 2)
    h = job_hash(single)
    assert h != job_hash(grid)
    rows = [[b.get("label") or b["emoji"]["name"] for b in row["components"]] for row in single["components"]]
    assert rows == [
        ["Upscale (Subtle)", "Upscale (Creative)"],
        ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"],
        ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
        ["⬅️", "➡️", "⬆️", "⬇️"],
        ["❤️", "Web"],
    ]
    assert set(custom_ids(single)) >= {
        ids.upscale_subtle(h), ids.upscale_creative(h), ids.vary_subtle(h), ids.vary_strong(h), ids.vary_region(h),
        ids.zoom_out(2.0, h), ids.zoom_out(1.5, h), ids.custom_zoom(h), *(ids.pan(d, h) for d in PanDirection),
    }
    web = buttons(single)[-1]
    assert web["style"] == 5 and "custom_id" not in web and h in web["url"]


async def test_variation_reroll_and_their_wording(client: Client) -> None:
    grid = await client.imagine("a fox")
    h, uid = job_hash(grid), client.user_id
    var = await client.result(await client.press(grid, ids.variation(3, h)))
    assert line(var) == f"**a fox** - Variations (Strong) by <@{uid}> (fast)"
    assert var["message_reference"]["message_id"] == grid["id"]
    assert custom_ids(var)[0] == ids.upsample(1, job_hash(var))
    reroll = await client.result(await client.press(grid, ids.reroll(h)))
    assert line(reroll) == f"**a fox** - <@{uid}> (fast)"
    assert job_hash(reroll) not in (h, job_hash(var))
    # progress of a follow-up says what it is
    progress = [u["d"]["content"] for u in client.gw.dispatches("MESSAGE_UPDATE")]
    assert any(re.fullmatch(rf"\*\*a fox\*\* - Variations \(Strong\) by <@{uid}> \(\d+%\) \(fast\)", c) for c in progress)


async def test_vary_pan_zoom_upscale_on_a_single(client: Client) -> None:
    _, single = await upscaled(client, "a ship", 1)
    h, uid = job_hash(single), client.user_id
    expected = {
        ids.vary_subtle(h): f"**a ship** - Variations (Subtle) by <@{uid}> (fast)",
        ids.vary_strong(h): f"**a ship** - Variations (Strong) by <@{uid}> (fast)",
        ids.pan(PanDirection.LEFT, h): f"**a ship** - Pan Left by <@{uid}> (fast)",
        ids.pan(PanDirection.UP, h): f"**a ship** - Pan Up by <@{uid}> (fast)",
        ids.zoom_out(2.0, h): f"**a ship** - Zoom Out by <@{uid}> (fast)",
        ids.zoom_out(1.5, h): f"**a ship** - Zoom Out by <@{uid}> (fast)",
        ids.upscale_subtle(h): f"**a ship** - Upscaled (Subtle) by <@{uid}> (fast)",
        ids.upscale_creative(h): f"**a ship** - Upscaled (Creative) by <@{uid}> (fast)",
    }
    results = {}
    for custom_id, content in expected.items():
        result = await client.result(await client.press(single, custom_id))
        assert line(result) == content, custom_id
        assert result["message_reference"]["message_id"] == single["id"]
        results[custom_id] = result
    left = results[ids.pan(PanDirection.LEFT, h)]["attachments"][0]
    assert left["width"] > left["height"]  # panned sideways: wider than the square source
    up = results[ids.pan(PanDirection.UP, h)]["attachments"][0]
    assert up["height"] > up["width"]
    subtle = results[ids.upscale_subtle(h)]
    assert subtle["attachments"][0]["width"] == 2 * single["attachments"][0]["width"]
    assert ids.upscale_subtle(job_hash(subtle)) not in custom_ids(subtle)  # no upscale of an upscale
    progress = [u["d"]["content"] for u in client.gw.dispatches("MESSAGE_UPDATE")]
    assert any(re.fullmatch(rf"\*\*a ship\*\* - Upscaling by <@{uid}> \(\d+%\) \(fast\)", c) for c in progress)


async def test_custom_zoom_modal(client: Client) -> None:
    _, single = await upscaled(client, "a tower --ar 1:1")
    h = job_hash(single)
    r, nonce = await client.rest.press(client.session_id, single, ids.custom_zoom(h))
    assert r.status_code == 204
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert modal["custom_id"] == f"MJ::OutpaintCustomZoomModal::{h}"
    field = modal["components"][0]["components"][0]
    assert field["type"] == 4 and field["custom_id"] == ids.CUSTOM_ZOOM_FIELD
    assert field["value"] == "a tower --ar 1:1 --zoom 2"
    # then the button press succeeds: its INTERACTION_SUCCESS (same id) is what clients wait for
    success = await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == nonce)
    assert success["id"] == modal["id"]
    kinds = [f["t"] for f in client.gw.dispatches() if f["t"].startswith("INTERACTION") and f["d"].get("nonce") == nonce]
    assert kinds == ["INTERACTION_CREATE", "INTERACTION_MODAL_CREATE", "INTERACTION_SUCCESS"]

    # --zoom 3 is out of range: an "Invalid parameter" embed, no job
    r, bad_nonce = await client.rest.submit_modal(client.session_id, modal, {ids.CUSTOM_ZOOM_FIELD: "a tower --zoom 3"})
    assert r.status_code == 204
    error = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == bad_nonce)
    assert error["embeds"][0]["title"] == "Invalid parameter" and error["embeds"][0]["color"] == 16711680
    # the modal was used up: submitting it again is refused by Discord
    r, _ = await client.rest.submit_modal(client.session_id, modal, {ids.CUSTOM_ZOOM_FIELD: "a tower --zoom 1.5"})
    assert r.status_code == 404 and r.json()["code"] == 10062

    r, nonce = await client.rest.press(client.session_id, single, ids.custom_zoom(h))
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    r, submit_nonce = await client.rest.submit_modal(client.session_id, modal, {ids.CUSTOM_ZOOM_FIELD: "a tower --ar 16:9 --zoom 1.5"})
    assert r.status_code == 204
    submit_iid = (await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == submit_nonce))["id"]
    result = await client.result(submit_iid)
    assert line(result) == f"**a tower --ar 16:9 --zoom 1.5** - Zoom Out by <@{client.user_id}> (fast)"
    meta = result["interaction_metadata"]
    assert meta["type"] == 5 and meta["triggering_interaction_metadata"]["id"] == modal["id"]
    assert result["attachments"][0]["width"] > result["attachments"][0]["height"]


async def test_missing_zoom_is_invalid(client: Client) -> None:
    _, single = await upscaled(client, "a hill")
    r, nonce = await client.rest.press(client.session_id, single, ids.custom_zoom(job_hash(single)))
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    r, bad = await client.rest.submit_modal(client.session_id, modal, {ids.CUSTOM_ZOOM_FIELD: "a hill"})
    error = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == bad)
    assert error["embeds"][0]["title"] == "Invalid parameter"


async def test_remix_modals(sim: Simulator, client: Client) -> None:
    grid = await client.imagine("a cabin")
    h = job_hash(grid)
    sim.faults.set_settings(client.user_id, remix=True)
    uid = client.user_id

    r, nonce = await client.rest.press(client.session_id, grid, ids.variation(2, h))
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert modal["custom_id"] == f"MJ::RemixModal::{h}::2::1"
    assert modal["components"][0]["components"][0]["custom_id"] == ids.REMIX_FIELD
    assert modal["components"][0]["components"][0]["value"] == "a cabin"
    r, n2 = await client.rest.submit_modal(client.session_id, modal, {ids.REMIX_FIELD: "a cabin in snow"})
    result = await client.result((await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == n2))["id"])
    assert line(result) == f"**a cabin in snow** - Remix (Strong) by <@{uid}> (fast)"

    r, nonce = await client.rest.press(client.session_id, grid, ids.reroll(h))
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert modal["custom_id"] == f"MJ::ImagineModal::{grid['id']}"
    r, n3 = await client.rest.submit_modal(client.session_id, modal, {ids.IMAGINE_MODAL_FIELD: "a cabin at night"})
    result = await client.result((await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == n3))["id"])
    assert line(result) == f"**a cabin at night** - <@{uid}> (fast)"

    single = await client.result(await client.press(grid, ids.upsample(1, h)))  # U never opens a modal
    sh = job_hash(single)
    r, nonce = await client.rest.press(client.session_id, single, ids.pan(PanDirection.RIGHT, sh))
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert modal["custom_id"] == f"MJ::PanModal::right::{sh}::1"
    r, n4 = await client.rest.submit_modal(client.session_id, modal, {ids.PAN_MODAL_FIELD: "a cabin, wide"})
    result = await client.result((await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == n4))["id"])
    assert line(result) == f"**a cabin, wide** - Pan Right by <@{uid}> (fast)"

    r, nonce = await client.rest.press(client.session_id, single, ids.vary_subtle(sh))
    modal = await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert modal["custom_id"] == f"MJ::RemixModal::{sh}::1::0"
    r, n5 = await client.rest.submit_modal(client.session_id, modal, {ids.REMIX_FIELD: "a cabin, subtle"})
    result = await client.result((await client.gw.event("INTERACTION_SUCCESS", lambda d: d["nonce"] == n5))["id"])
    assert line(result) == f"**a cabin, subtle** - Remix (Subtle) by <@{uid}> (fast)"


async def test_remix_through_the_settings_command(client: Client) -> None:
    r, nonce = await client.rest.command(client.session_id, "settings")
    placeholder = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert placeholder["flags"] == 64 | 128 and placeholder["components"] == []
    settings = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == placeholder["id"])
    assert settings["flags"] == 64 and settings["content"].startswith("Adjust your settings here.")
    remix = next(b for b in buttons(settings) if b["custom_id"] == "MJ::Settings::RemixMode")
    assert remix["style"] == 2
    await client.press(settings, "MJ::Settings::RemixMode")
    updated = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == settings["id"])
    assert next(b for b in buttons(updated) if b["custom_id"] == "MJ::Settings::RemixMode")["style"] == 3
    grid = await client.imagine("remixed")
    r, nonce = await client.rest.press(client.session_id, grid, ids.variation(1, job_hash(grid)))
    await client.gw.event("INTERACTION_MODAL_CREATE", lambda d: d["nonce"] == nonce)


async def test_vary_region_through_the_iframe(sim: Simulator, client: Client) -> None:
    _, single = await upscaled(client, "a garden")
    h = job_hash(single)
    r, nonce = await client.rest.press(client.session_id, single, ids.vary_region(h))
    iframe = await client.gw.event("INTERACTION_IFRAME_MODAL_CREATE", lambda d: d["nonce"] == nonce)
    assert iframe["custom_id"].startswith(ids.IFRAME_PREFIX)
    assert iframe["iframe_path"].startswith("/inpaint/")
    token = iframe["custom_id"][len(ids.IFRAME_PREFIX):]
    async with httpx.AsyncClient() as http:
        bad = await http.post(sim.inpaint_submit_url, json={"customId": token, "mask": base64.b64encode(b"not a png").decode(), "prompt": "x", "userId": "0", "username": "0"})
        assert bad.status_code == 400
        unknown = await http.post(sim.inpaint_submit_url, json={"customId": "nope", "mask": mask_b64(), "prompt": "x", "userId": "0", "username": "0"})
        assert unknown.status_code == 404
        ok = await http.post(sim.inpaint_submit_url, json={"customId": token, "mask": mask_b64(), "prompt": "a garden with a pond", "userId": "0", "username": "0"})
        assert ok.status_code == 200 and ok.json()["success"] is True
        again = await http.post(sim.inpaint_submit_url, json={"customId": token, "mask": mask_b64(), "prompt": "x", "userId": "0", "username": "0"})
        assert again.status_code == 404  # single use
        page = await http.get(sim.base_url + iframe["iframe_path"])
        assert page.status_code == 200
    result = await client.result(iframe["id"])
    assert line(result) == f"**a garden with a pond** - Variations (Region) by <@{client.user_id}> (fast)"
    assert result["message_reference"]["message_id"] == single["id"]


async def test_button_of_an_unknown_job_fails_the_interaction(sim: Simulator, client: Client) -> None:
    grid = await client.imagine("forgotten")
    sim.context.runner.jobs.pop(job_hash(grid))  # the bot lost track of it
    r, nonce = await client.rest.press(client.session_id, grid, ids.upsample(1, job_hash(grid)))
    assert r.status_code == 204
    failure = await client.gw.event("INTERACTION_FAILURE", lambda d: d["nonce"] == nonce)
    assert failure["id"]
