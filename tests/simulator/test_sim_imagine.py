"""/imagine end to end: event order, exact message shapes, the grid image."""

from __future__ import annotations

import io
import re

import httpx
from PIL import Image

from adapter.domain import buttons as ids
from adapter.domain.buttons import UUID_RE
from adapter.simulator import Simulator

from .conftest import Client, close_client, connect_client, fast_config
from .harness import MJ_APP, custom_ids


async def test_imagine_lifecycle_in_order(sim: Simulator, client: Client) -> None:
    uid = client.user_id
    r, nonce = await client.rest.imagine(client.session_id, "a  red   cat — ar 16:9 --ar 16:9")
    assert r.status_code == 204 and r.content == b""
    await client.gw.event("MESSAGE_DELETE")
    events = [f for f in client.gw.dispatches() if f["t"] not in ("READY", "READY_SUPPLEMENTAL")]
    kinds = [f["t"] for f in events]
    assert kinds[:3] == ["INTERACTION_CREATE", "INTERACTION_SUCCESS", "MESSAGE_CREATE"]
    assert kinds[-2:] == ["MESSAGE_CREATE", "MESSAGE_DELETE"]
    assert set(kinds[3:-2]) == {"MESSAGE_UPDATE"}

    created, success = events[0]["d"], events[1]["d"]
    assert created["nonce"] == nonce and success["nonce"] == nonce and created["id"] == success["id"]
    iid = created["id"]
    prompt = "a red cat -- ar 16:9 --ar 16:9"

    waiting = events[2]["d"]
    assert waiting["content"] == f"**{prompt}** - <@{uid}> (Waiting to start)"
    assert waiting["nonce"] == nonce and waiting["author"]["id"] == MJ_APP
    assert waiting["channel_id"] == client.account.channel_id
    assert waiting["interaction"]["id"] == iid and waiting["interaction"]["name"] == "imagine"
    assert waiting["interaction_metadata"]["id"] == iid
    assert waiting["components"] == [] and waiting["attachments"] == []

    updates = [f["d"] for f in events[3:-2]]
    percents = [int(re.search(r"\((\d+)%\)", u["content"]).group(1)) for u in updates]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 93
    for u, pct in zip(updates, percents, strict=True):
        assert u["id"] == waiting["id"]
        assert u["content"] == f"**{prompt}** - <@{uid}> ({pct}%) (fast)"
        if pct:
            name = u["attachments"][0]["filename"]
            assert re.fullmatch(rf"{UUID_RE}_grid_0\.webp", name)

    final = events[-2]["d"]
    delete = events[-1]["d"]
    assert delete == {"id": waiting["id"], "channel_id": waiting["channel_id"], "guild_id": client.account.guild_id}
    assert final["id"] != waiting["id"] and "nonce" not in final
    assert final["interaction_metadata"]["id"] == iid
    h = re.fullmatch(rf"simuser1_a_red_cat_ar_16_9_({UUID_RE})\.png", final["attachments"][0]["filename"]).group(1)
    assert updates[-1]["attachments"][0]["filename"].startswith(h)
    assert final["content"] in (
        f"**{prompt}** - <@{uid}> (fast)",
        f"**{prompt}** - <@{uid}> [(Open on website for full quality)](<https://midjourney.com/jobs/{h}>) (fast)",
    )
    rows = [[c.get("custom_id") or c["emoji"]["name"] for c in row["components"]] for row in final["components"]]
    assert rows == [
        [ids.upsample(1, h), ids.upsample(2, h), ids.upsample(3, h), ids.upsample(4, h), ids.reroll(h)],
        [ids.variation(i, h) for i in range(1, 5)],
    ]
    assert [c.get("label") for c in final["components"][0]["components"][:4]] == ["U1", "U2", "U3", "U4"]
    assert final["components"][0]["components"][4]["emoji"]["name"] == "🔄"

    # history has the final result, not the deleted progress message
    history = (await client.rest.http.get(f"/channels/{client.account.channel_id}/messages")).json()
    assert history[0]["id"] == final["id"] and all(m["id"] != waiting["id"] for m in history)


async def test_grid_image_is_a_png_with_the_right_aspect(client: Client) -> None:
    final = await client.imagine("wide landscape --ar 16:9")
    att = final["attachments"][0]
    async with httpx.AsyncClient() as http:
        r = await http.get(att["url"])
    assert r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG"
    assert (image.width, image.height) == (att["width"], att["height"]) == (128, 72)
    # four distinct quadrant colours
    w, h = image.size
    corners = {image.getpixel((x, y)) for x, y in ((3, 3), (w // 2 + 3, 3), (3, h // 2 + 3), (w // 2 + 3, h // 2 + 3))}
    assert len(corners) == 4

    tall = await client.imagine("tall --ar 2:3")
    assert (tall["attachments"][0]["width"], tall["attachments"][0]["height"]) == (86, 128)


async def test_preview_is_webp(sim: Simulator, client: Client) -> None:
    r, nonce = await client.rest.imagine(client.session_id, "preview")
    update = await client.gw.event("MESSAGE_UPDATE", lambda d: bool(d["attachments"]))
    async with httpx.AsyncClient() as http:
        got = await http.get(update["attachments"][0]["url"])
    assert got.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(got.content)).format == "WEBP"
    await sim.wait_idle(5)


async def test_mode_from_flag_and_from_account(sim: Simulator, client: Client) -> None:
    relaxed = await client.imagine("slow one --relax")
    assert relaxed["content"].endswith("(relaxed)")
    turbo = await client.imagine("quick one --turbo")
    assert turbo["content"].endswith("(turbo)")
    r, nonce = await client.rest.command(client.session_id, "relax")
    assert r.status_code == 204
    done = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert done["content"] == "Done!" and done["flags"] & 64
    plain = await client.imagine("no flag")
    assert plain["content"].endswith("(relaxed)")
    updates = client.gw.dispatches("MESSAGE_UPDATE")
    assert any(u["d"]["content"].endswith("(relaxed)") and "%)" in u["d"]["content"] for u in updates)


async def test_links_are_shortened(client: Client) -> None:
    final = await client.imagine("https://example.com/a.png   a cat <https://example.com/b.png>")
    prompt = final["content"].split("** - ")[0][2:]
    assert re.fullmatch(r"<https://s\.mj\.run/\w{11}> a cat <https://s\.mj\.run/\w{11}>", prompt)


async def test_web_link_variant_appears_for_some_seeds() -> None:
    sim = Simulator(fast_config(website_link_ratio=1.0))
    await sim.start()
    c = await connect_client(sim)
    try:
        final = await c.imagine("linked")
        h = final["attachments"][0]["filename"].rsplit("_", 1)[1][:-4]
        assert f"[(Open on website for full quality)](<https://midjourney.com/jobs/{h}>) (fast)" in final["content"]
    finally:
        await close_client(c)
        await sim.stop()


async def test_niji_bot_answers_as_itself(client: Client) -> None:
    from .harness import NIJI_APP

    r, nonce = await client.rest.command(client.session_id, "imagine", [{"type": 3, "name": "prompt", "value": "anime cat"}], app=NIJI_APP)
    assert r.status_code == 204, r.text
    iid = await client.interaction_id(nonce)
    final = await client.result(iid)
    assert final["author"]["id"] == NIJI_APP
    assert custom_ids(final)[0].startswith("MJ::JOB::upsample::1::")
