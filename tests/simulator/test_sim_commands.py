"""describe, blend, shorten, info, show, and the picks on describe/shorten results."""

from __future__ import annotations

import io
import re

from PIL import Image

from adapter.simulator import Simulator

from .conftest import Client
from .harness import button_id, custom_ids
from .test_sim_followups import job_hash, line

KEYCAP = "\ufe0f\u20e3"


def png(colour: tuple[int, int, int], size: tuple[int, int] = (90, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


async def test_describe_an_uploaded_image(client: Client) -> None:
    uploaded = await client.rest.upload("photo.png", png((200, 10, 10)))
    r, nonce = await client.rest.command(
        client.session_id, "describe", [{"type": 11, "name": "image", "value": "0"}],
        attachments=[{"id": "0", "filename": "photo.png", "uploaded_filename": uploaded}],
    )
    assert r.status_code == 204, r.text
    first = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert first["interaction"]["name"] == "describe" and first["components"] == []
    assert first["embeds"][0]["image"]["url"]
    done = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == first["id"] and bool(d["components"]))
    description = done["embeds"][0]["description"]
    parts = description.split("\n\n")
    assert [p[:3] for p in parts] == [f"{n}{KEYCAP}" for n in "1234"]
    assert all(p.endswith("--ar 3:2") for p in parts)
    assert custom_ids(done) == [*(f"MJ::Job::PicReader::{i}" for i in range(1, 5)), "MJ::Picread::Retry", "MJ::Job::PicReader::all"]
    assert done["embeds"][0]["image"]["url"] == first["embeds"][0]["image"]["url"]

    # pick 2 -> an imagine of that prompt
    prompt2 = parts[1][len(f"2{KEYCAP} "):]
    iid = await client.press(done, "MJ::Job::PicReader::2")
    grid = await client.result(iid)
    assert line(grid) == f"**{prompt2}** - <@{client.user_id}> (fast)"
    assert grid["message_reference"]["message_id"] == done["id"]


async def test_describe_a_link_and_bad_inputs(sim: Simulator, client: Client) -> None:
    r, nonce = await client.rest.command(client.session_id, "describe", [{"type": 3, "name": "link", "value": "https://example.com/cat.jpg"}])
    first = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert first["embeds"][0]["image"]["url"] == "https://example.com/cat.jpg"
    await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == first["id"] and bool(d["components"]))

    r, nonce = await client.rest.command(client.session_id, "describe", [{"type": 3, "name": "link", "value": "not a link"}])
    err = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert err["embeds"][0]["title"] == "Invalid link" and err["flags"] & 64

    uploaded = await client.rest.upload("notes.txt", b"hello", "text/plain")
    r, nonce = await client.rest.command(
        client.session_id, "describe", [{"type": 11, "name": "image", "value": "0"}],
        attachments=[{"id": "0", "filename": "notes.txt", "uploaded_filename": uploaded}],
    )
    err = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert err["embeds"][0]["title"] == "Invalid parameter"

    # an attachment option pointing at nothing uploaded: Discord refuses it
    r, _ = await client.rest.command(
        client.session_id, "describe", [{"type": 11, "name": "image", "value": "0"}],
        attachments=[{"id": "0", "filename": "x.png", "uploaded_filename": "nope/x.png"}],
    )
    assert r.status_code == 400 and r.json()["code"] == 50035


async def test_blend(client: Client) -> None:
    ups = [await client.rest.upload(f"b{i}.png", png(c)) for i, c in enumerate([(250, 0, 0), (0, 0, 250)])]
    r, nonce = await client.rest.command(
        client.session_id, "blend",
        [{"type": 11, "name": "image1", "value": "0"}, {"type": 11, "name": "image2", "value": "1"}, {"type": 3, "name": "dimensions", "value": "--ar 3:2"}],
        attachments=[{"id": str(i), "filename": f"b{i}.png", "uploaded_filename": u} for i, u in enumerate(ups)],
    )
    assert r.status_code == 204, r.text
    final = await client.result(await client.interaction_id(nonce))
    assert re.fullmatch(rf"\*\*<https://s\.mj\.run/\w{{11}}> <https://s\.mj\.run/\w{{11}}> --ar 3:2\*\* - <@{client.user_id}> \(fast\)", line(final))
    att = final["attachments"][0]
    assert att["width"] > att["height"]

    same = [await client.rest.upload(f"s{i}.png", png((1, 2, 3))) for i in range(2)]
    r, nonce = await client.rest.command(
        client.session_id, "blend",
        [{"type": 11, "name": "image1", "value": "0"}, {"type": 11, "name": "image2", "value": "1"}],
        attachments=[{"id": str(i), "filename": f"s{i}.png", "uploaded_filename": u} for i, u in enumerate(same)],
    )
    err = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert err["embeds"][0]["title"] == "Duplicate images detected"

    r, _ = await client.rest.command(
        client.session_id, "blend", [{"type": 3, "name": "dimensions", "value": "--ar 5:1"}],
    )
    assert r.status_code == 400  # not one of the choices, and image1/image2 are required


async def test_shorten(client: Client) -> None:
    prompt = "a very detailed photograph of an ancient stone lighthouse standing on a windswept cliff --ar 16:9"
    r, nonce = await client.rest.command(client.session_id, "shorten", [{"type": 3, "name": "prompt", "value": prompt}])
    placeholder = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert placeholder["flags"] == 128 and placeholder["embeds"] == [] and placeholder["interaction"]["name"] == "shorten"
    msg = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == placeholder["id"])
    assert "nonce" not in msg and msg["flags"] == 0
    embed = msg["embeds"][0]
    assert embed["footer"]["text"] == "Click on a button to imagine one of the shortened prompts"
    options = re.findall(rf"([1-5]){KEYCAP} (.+)", embed["description"])
    assert [n for n, _ in options] == ["1", "2", "3", "4", "5"]
    assert all(text.endswith("--ar 16:9") for _, text in options)
    lengths = [len(text) for _, text in options]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] < len(prompt)
    iid = await client.press(msg, custom_ids(msg)[2])
    grid = await client.result(iid)
    assert line(grid).startswith(f"**{options[2][1]}** - ")


async def info(client: Client) -> dict:
    """/info the slow-command way: a LOADING placeholder with the nonce, then its update."""
    r, nonce = await client.rest.command(client.session_id, "info")
    assert r.status_code == 204, r.text
    placeholder = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert placeholder["flags"] == 64 | 128 and placeholder["embeds"] == [] and placeholder["content"] == ""
    msg = await client.gw.event("MESSAGE_UPDATE", lambda d: d["id"] == placeholder["id"])
    assert "nonce" not in msg and msg["flags"] == 64
    return msg


async def test_info_reports_mode_and_queues(client: Client) -> None:
    msg = await info(client)
    embed = msg["embeds"][0]
    assert embed["title"] == "Your info" and msg["flags"] & 64
    lines = dict(re.findall(r"\*\*(.+?)\*\*: (.*)", embed["description"]))
    assert lines["Job Mode"] == "Fast"
    assert lines["Queued Jobs (fast)"] == "0" and lines["Queued Jobs (relax)"] == "0" and lines["Running Jobs"] == "None"
    assert "Subscription" in lines and "hours" in lines["Fast Time Remaining"]
    r, nonce = await client.rest.command(client.session_id, "turbo")
    assert (await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce))["content"] == "Done!"
    msg = await info(client)
    assert "**Job Mode**: Turbo" in msg["embeds"][0]["description"]
    # ephemeral: not in the channel's history
    history = (await client.rest.http.get(f"/channels/{client.account.channel_id}/messages")).json()
    assert all(m["id"] != msg["id"] for m in history)


async def test_show_reposts_a_finished_job(client: Client) -> None:
    grid = await client.imagine("show me again")
    h = job_hash(grid)
    r, nonce = await client.rest.command(client.session_id, "show", [{"type": 3, "name": "job_id", "value": h}])
    shown = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert shown["content"] == grid["content"] and custom_ids(shown) == custom_ids(grid)
    assert shown["attachments"][0]["filename"] == grid["attachments"][0]["filename"]
    iid = await client.press(shown, button_id(shown, label="U4"))
    assert "Image #4" in (await client.result(iid))["content"]
    r, nonce = await client.rest.command(client.session_id, "show", [{"type": 3, "name": "job_id", "value": "00000000-0000-4000-8000-000000000000"}])
    err = await client.gw.event("MESSAGE_CREATE", lambda d: d.get("nonce") == nonce)
    assert err["embeds"][0]["color"] == 16711680
