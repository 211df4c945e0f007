"""Hand-written Midjourney bot messages, shaped after PROTOCOL.md section 3 (Discord message
objects as a gateway MESSAGE_CREATE / MESSAGE_UPDATE `d` carries them). Builders, not captures:
every id, hash and URL here is made up."""

from __future__ import annotations

from typing import Any

MJ_BOT = "936929561302675456"
NIJI_BOT = "1022952195194359889"
SOMEONE = "555000000000000001"  # a human in the channel
USER = "1100000000000000001"  # the account that drives the bot
CHANNEL = "1200000000000000001"
GUILD = "1300000000000000001"
NONCE = "1310000000000000042"
INTERACTION = "1320000000000000007"
SOURCE_MESSAGE = "1330000000000000099"

HASH = "3f2a9c1e-7b4d-4e8f-9a1b-2c3d4e5f6a7b"
HASH2 = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"

SIGNED = "?ex=67a1b2c3&is=67a06143&hm=0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f&"

_ids = iter(range(1400000000000000000, 1500000000000000000, 7))


def next_id() -> str:
    return str(next(_ids))


def attachment(
    filename: str,
    *,
    url: str | None = None,
    signed: bool = True,
    width: int | None = 2048,
    height: int | None = 2048,
) -> dict[str, Any]:
    if url is None:
        url = f"https://cdn.discordapp.com/attachments/{CHANNEL}/{next_id()}/{filename}"
        if signed:
            url += SIGNED
    out: dict[str, Any] = {
        "id": next_id(),
        "filename": filename,
        "size": 6_543_210,
        "url": url,
        "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
        "content_type": "image/webp" if filename.endswith(".webp") else "image/png",
    }
    if width is not None:
        out["width"] = width
    if height is not None:
        out["height"] = height
    return out


def button(
    custom_id: str | None, label: str = "", *, emoji: str | None = None, style: int = 2, url: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": 2, "style": style}
    if custom_id is not None:
        out["custom_id"] = custom_id
    if label:
        out["label"] = label
    if emoji is not None:
        out["emoji"] = {"name": emoji}
    if url is not None:
        out["url"] = url
    return out


def row(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(buttons)}


def grid_rows(h: str = HASH) -> list[dict[str, Any]]:
    return [
        row(
            *(button(f"MJ::JOB::upsample::{i}::{h}", f"U{i}") for i in range(1, 5)),
            button(f"MJ::JOB::reroll::0::{h}::SOLO", emoji="🔄"),
        ),
        row(*(button(f"MJ::JOB::variation::{i}::{h}", f"V{i}") for i in range(1, 5))),
    ]


def upscale_rows(h: str = HASH) -> list[dict[str, Any]]:
    return [
        row(
            button(f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO", "Upscale (Subtle)"),
            button(f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO", "Upscale (Creative)"),
        ),
        row(
            button(f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)", emoji="🪄"),
            button(f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)", emoji="🪄"),
            button(f"MJ::Inpaint::1::{h}::SOLO", "Vary (Region)", emoji="🖌️"),
        ),
        row(
            button(f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x", emoji="🔍"),
            button(f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x", emoji="🔍"),
            button(f"MJ::CustomZoom::{h}", "Custom Zoom", emoji="🔍"),
        ),
        row(
            button(f"MJ::JOB::pan_left::1::{h}::SOLO", emoji="⬅️"),
            button(f"MJ::JOB::pan_right::1::{h}::SOLO", emoji="➡️"),
            button(f"MJ::JOB::pan_up::1::{h}::SOLO", emoji="⬆️"),
            button(f"MJ::JOB::pan_down::1::{h}::SOLO", emoji="⬇️"),
        ),
        row(
            button(f"MJ::BOOKMARK::{h}", emoji="❤️"),
            button(None, "Web", emoji="🌐", style=5, url=f"https://www.midjourney.com/jobs/{h}?index=0"),
        ),
    ]


def embed(
    title: str | None = None,
    description: str | None = None,
    *,
    color: int | None = None,
    footer: str | None = None,
    image_url: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "rich"}
    if title is not None:
        out["title"] = title
    if description is not None:
        out["description"] = description
    if color is not None:
        out["color"] = color
    if footer is not None:
        out["footer"] = {"text": footer}
    if image_url is not None:
        out["image"] = {"url": image_url, "width": 1024, "height": 1536}
    return out


def message(
    content: str = "",
    *,
    id: str | None = None,
    author: str = MJ_BOT,
    nonce: str | None = None,
    flags: int = 0,
    attachments: list[dict[str, Any]] | None = None,
    components: list[dict[str, Any]] | None = None,
    embeds: list[dict[str, Any]] | None = None,
    interaction_name: str | None = "imagine",
    interaction_id: str | None = INTERACTION,
    reference: str | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": 20 if interaction_id else 0,
        "id": id or next_id(),
        "channel_id": CHANNEL,
        "guild_id": GUILD,
        "author": {"id": author, "username": "Midjourney Bot" if author == MJ_BOT else "someone", "bot": True},
        "content": content,
        "flags": flags,
        "attachments": attachments or [],
        "components": components or [],
        "embeds": embeds or [],
        "mentions": [{"id": USER, "username": "driver"}],
        "timestamp": "2025-01-02T03:04:05.678000+00:00",
        "edited_timestamp": None,
        "tts": False,
        "pinned": False,
        "mention_everyone": False,
    }
    if nonce is not None:
        msg["nonce"] = nonce
    if interaction_id is not None:
        msg["interaction_metadata"] = {"id": interaction_id, "type": 2, "user": {"id": USER}}
        if interaction_name is not None:
            msg["interaction"] = {"id": interaction_id, "type": 2, "name": interaction_name, "user": {"id": USER}}
    if reference is not None:
        msg["message_reference"] = {"channel_id": CHANNEL, "guild_id": GUILD, "message_id": reference}
        msg["referenced_message"] = {"id": reference, "channel_id": CHANNEL, "content": "**older** - <@1> (fast)"}
    return msg


def grid_name(h: str = HASH, ext: str = "png") -> str:
    return f"driver_a_red_fox_in_the_snow_{h}.{ext}"


def imagine_done(
    prompt: str = "a red fox in the snow --ar 3:2", *, mode: str = "fast", h: str = HASH
) -> dict[str, Any]:
    return message(
        f"**{prompt}** - <@{USER}> ({mode})",
        attachments=[attachment(grid_name(h))],
        components=grid_rows(h),
    )


DESCRIBE_TEXT = (
    "1\ufe0f\u20e3 a watercolor fox sitting in a snowy forest, soft light, muted blues --ar 2:3\n\n"
    "2\ufe0f\u20e3 red fox portrait, winter, in the style of japanese woodblock prints --ar 2:3\n\n"
    "3\ufe0f\u20e3 a fox made of paper, origami art, white background --ar 2:3\n\n"
    "4\ufe0f\u20e3 minimalist illustration of a fox, flat colors, snow falling --ar 2:3"
)
DESCRIBE_PROMPTS = (
    "a watercolor fox sitting in a snowy forest, soft light, muted blues --ar 2:3",
    "red fox portrait, winter, in the style of japanese woodblock prints --ar 2:3",
    "a fox made of paper, origami art, white background --ar 2:3",
    "minimalist illustration of a fox, flat colors, snow falling --ar 2:3",
)

SHORTEN_TEXT = (
    "**Important tokens**\n"
    "fox, snow, ~~very~~, ~~beautiful~~, cinematic\n\n"
    "**Shortened prompts**\n"
    "1\ufe0f\u20e3 fox, snow, cinematic lighting\n"
    "2\ufe0f\u20e3 fox in snow, cinematic\n"
    "3\ufe0f\u20e3 fox snow\n"
    "4\ufe0f\u20e3 a fox\n"
    "5\ufe0f\u20e3 cinematic fox"
)
SHORTEN_FOOTER = "Click on a button to imagine one of the shortened prompts"

INFO_TEXT = (
    "**User ID**: 1100000000000000001\n"
    "**Subscription**: Standard (Active monthly, renews next on <t:1767225600>)\n"
    "**Visibility Mode**: Public\n"
    "**Fast Time Remaining**: 12.34/15.0 hours (82.27%)\n"
    "**Lifetime Usage**: 1234 images (98.76 hours)\n"
    "**Relaxed Usage**: 56 images (4.20 hours)\n"
    "**Queued Jobs (fast)**: 0\n"
    "**Queued Jobs (relax)**: 1\n"
    "**Running Jobs**: None\n"
    "**Job Mode:** Fast"
)
