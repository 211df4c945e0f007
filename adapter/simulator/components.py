"""The button rows the simulated bot attaches to its messages. Every job custom_id comes from
`adapter.domain.buttons`, so the simulator and the client share one grammar."""

from __future__ import annotations

from adapter.domain import buttons as ids
from adapter.domain.actions import PanDirection
from adapter.simulator.wire import ActionRow, button, row

BOOKMARK_PREFIX = "MJ::BOOKMARK::"
PICREADER_PREFIX = "MJ::Job::PicReader::"
PICREAD_RETRY = "MJ::Picread::Retry"
PICREADER_ALL = "MJ::Job::PicReader::all"
SHORTEN_PREFIX = "MJ::Job::PromptAnalyzer::"
SETTINGS_PREFIX = "MJ::Settings::"
SETTINGS_TOGGLES = {"RemixMode": "Remix mode", "FastMode": "Fast mode", "RelaxMode": "Relax mode", "TurboMode": "Turbo mode"}

_PAN_EMOJI = {PanDirection.LEFT: "⬅️", PanDirection.RIGHT: "➡️", PanDirection.UP: "⬆️", PanDirection.DOWN: "⬇️"}


def web_url(job_hash: str, index: int | None = None) -> str:
    base = f"https://www.midjourney.com/jobs/{job_hash}"
    return base if index is None else f"{base}?index={index - 1}"


def upscale_model(version_flag: str | None) -> str:
    """The model tag in upscale custom_ids: v6, v6r1 (6.1) or v7."""
    v = (version_flag or "").strip()
    if v.startswith("7"):
        return "v7"
    if v in ("6.1", "6r1"):
        return "v6r1"
    return "v6"


def grid_rows(job_hash: str) -> list[ActionRow]:
    return [
        row(*[button(label=f"U{i}", custom_id=ids.upsample(i, job_hash)) for i in range(1, 5)],
            button(emoji="🔄", custom_id=ids.reroll(job_hash))),
        row(*[button(label=f"V{i}", custom_id=ids.variation(i, job_hash)) for i in range(1, 5)]),
    ]


def _single_common(job_hash: str) -> list[ActionRow]:
    return [
        row(
            button(label="Vary (Subtle)", emoji="🪄", custom_id=ids.vary_subtle(job_hash)),
            button(label="Vary (Strong)", emoji="🪄", custom_id=ids.vary_strong(job_hash)),
            button(label="Vary (Region)", emoji="🖌️", custom_id=ids.vary_region(job_hash)),
        ),
        row(
            button(label="Zoom Out 2x", emoji="🔍", custom_id=ids.zoom_out(2.0, job_hash)),
            button(label="Zoom Out 1.5x", emoji="🔍", custom_id=ids.zoom_out(1.5, job_hash)),
            button(label="Custom Zoom", emoji="🔍", custom_id=ids.custom_zoom(job_hash)),
        ),
        row(*[button(emoji=_PAN_EMOJI[d], custom_id=ids.pan(d, job_hash)) for d in PanDirection]),
    ]


def upscaled_rows(job_hash: str, index: int, model: str) -> list[ActionRow]:
    """Under an `Image #n` result: [Upscale (Subtle) (Creative)] [Vary...] [Zoom...] [pans] [❤️ Web]."""
    return [
        row(
            button(label="Upscale (Subtle)", custom_id=ids.upscale_subtle(job_hash, model)),
            button(label="Upscale (Creative)", custom_id=ids.upscale_creative(job_hash, model)),
        ),
        *_single_common(job_hash),
        row(
            button(emoji="❤️", custom_id=f"{BOOKMARK_PREFIX}{job_hash}"),
            button(label="Web", emoji="🌐", style=5, url=web_url(job_hash, index)),
        ),
    ]


def upscaled_again_rows(job_hash: str) -> list[ActionRow]:
    """Under an `Upscaled (Subtle|Creative)` result: no further upscale buttons."""
    return [
        *_single_common(job_hash),
        row(
            button(emoji="❤️", custom_id=f"{BOOKMARK_PREFIX}{job_hash}"),
            button(label="Web", emoji="🌐", style=5, url=web_url(job_hash)),
        ),
    ]


def describe_rows() -> list[ActionRow]:
    return [
        row(*[button(label=str(i), custom_id=f"{PICREADER_PREFIX}{i}") for i in range(1, 5)],
            button(emoji="🔄", custom_id=PICREAD_RETRY)),
        row(button(label="Imagine all", emoji="🎉", custom_id=PICREADER_ALL)),
    ]


def shorten_rows() -> list[ActionRow]:
    return [row(*[button(label=str(i), custom_id=f"{SHORTEN_PREFIX}{i}") for i in range(1, 6)])]


def settings_rows(*, remix: bool, mode: str) -> list[ActionRow]:
    on = {"RemixMode": remix, "FastMode": mode == "fast", "RelaxMode": mode == "relax", "TurboMode": mode == "turbo"}
    return [
        row(*[
            button(label=label, custom_id=f"{SETTINGS_PREFIX}{key}", style=3 if on[key] else 2)
            for key, label in SETTINGS_TOGGLES.items()
        ])
    ]
