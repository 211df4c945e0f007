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
SETTINGS_RESET = "MJ::Settings::ResetSettings"
# v7 buttons Midjourney added later (README, "Bot replies confirmed in public clients")
ANIMATE_VERBS = ("animate_high", "animate_low")  # MJ::JOB::animate_<motion>::<n>::<h>::SOLO
EXTEND_VERBS = ("animate_high_extend", "animate_low_extend")  # MJ::JOB::animate_<motion>_extend::<n>::<h>
VIDEO_UPSCALE_VERB = "video_virtual_upscale"  # MJ::JOB::video_virtual_upscale::<n>::<h>
ENHANCE_VERB = "enhance"  # unverified shape: MJ::JOB::enhance::1::<h>::SOLO
ANIMATE_LABELS = {"high": "Animate (High motion)", "low": "Animate (Low motion)"}
EXTEND_LABELS = {"high": "Extend (High motion)", "low": "Extend (Low motion)"}

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


def video_upscale_custom_id(index: int, job_hash: str) -> str:
    return f"MJ::JOB::{VIDEO_UPSCALE_VERB}::{index}::{job_hash}"


def enhance_custom_id(job_hash: str) -> str:
    return f"MJ::JOB::{ENHANCE_VERB}::1::{job_hash}::SOLO"


def _animate_row(job_hash: str) -> ActionRow:
    return row(*[button(label=ANIMATE_LABELS[m], emoji="🎞️", custom_id=ids.animate(m, job_hash)) for m in ("high", "low")])


def upscaled_rows(job_hash: str, index: int, model: str, *, draft: bool = False) -> list[ActionRow]:
    """Under an `Image #n` result: [Upscale (Subtle) (Creative)] [Vary...] [Zoom...] [pans]
    [Animate (High) (Low)] (v7) [❤️ Web]. A v7 draft image offers [Enhance] instead of the
    upscalers."""
    first = (
        row(button(label="Enhance", emoji="🪄", custom_id=enhance_custom_id(job_hash)))
        if draft
        else row(
            button(label="Upscale (Subtle)", custom_id=ids.upscale_subtle(job_hash, model)),
            button(label="Upscale (Creative)", custom_id=ids.upscale_creative(job_hash, model)),
        )
    )
    return [
        first,
        *_single_common(job_hash),
        *([_animate_row(job_hash)] if model == "v7" else []),
        row(
            button(emoji="❤️", custom_id=f"{BOOKMARK_PREFIX}{job_hash}"),
            button(label="Web", emoji="🌐", style=5, url=web_url(job_hash, index)),
        ),
    ]


def upscaled_again_rows(job_hash: str, model: str = "v6") -> list[ActionRow]:
    """Under an `Upscaled (Subtle|Creative)` result: no further upscale buttons."""
    return [
        *_single_common(job_hash),
        *([_animate_row(job_hash)] if model == "v7" else []),
        row(
            button(emoji="❤️", custom_id=f"{BOOKMARK_PREFIX}{job_hash}"),
            button(label="Web", emoji="🌐", style=5, url=web_url(job_hash)),
        ),
    ]


def video_grid_rows(job_hash: str, count: int = 4) -> list[ActionRow]:
    """Under an Animate result (a grid of `count` videos, 4 unless `--bs`): [U1..U<count> 🔄] [Web]."""
    return [
        row(*[button(label=f"U{i}", custom_id=video_upscale_custom_id(i, job_hash)) for i in range(1, count + 1)],
            button(emoji="🔄", custom_id=ids.reroll(job_hash))),
        row(button(label="Web", emoji="🌐", style=5, url=web_url(job_hash))),
    ]


def video_single_rows(grid_hash: str, index: int) -> list[ActionRow]:
    """Under one video of an Animate grid: [Extend (High motion) (Low motion)] [Web]; the extend
    ids name the grid's job and the video's place in it."""
    return [
        row(*[button(label=EXTEND_LABELS[m], emoji="🎞️", custom_id=ids.animate_extend(m, grid_hash, index)) for m in ("high", "low")]),
        row(button(label="Web", emoji="🌐", style=5, url=web_url(grid_hash, index))),
    ]


def describe_rows() -> list[ActionRow]:
    return [
        row(*[button(label=str(i), custom_id=f"{PICREADER_PREFIX}{i}") for i in range(1, 5)],
            button(emoji="🔄", custom_id=PICREAD_RETRY)),
        row(button(label="Imagine all", emoji="🎉", custom_id=PICREADER_ALL)),
    ]


def shorten_rows() -> list[ActionRow]:
    return [row(*[button(label=str(i), custom_id=f"{SHORTEN_PREFIX}{i}") for i in range(1, 6)])]


def settings_custom_id(key: str, on: bool, style: str = "plain") -> str:
    """`plain`: MJ::Settings::<Key>; `stateful`: the speed toggles say what pressing them does,
    MJ::Settings::RelaxMode::on while relax is off and ::off while it is on (README)."""
    if style == "stateful" and key in ("FastMode", "RelaxMode", "TurboMode"):
        return f"{SETTINGS_PREFIX}{key}::{'off' if on else 'on'}"
    return f"{SETTINGS_PREFIX}{key}"


def parse_settings_custom_id(custom_id: str) -> tuple[str, bool | None]:
    """(key, wanted state): `MJ::Settings::RelaxMode::on` -> ("RelaxMode", True); a plain id has
    no wanted state (None: toggle)."""
    tail = custom_id[len(SETTINGS_PREFIX):]
    key, _, arg = tail.partition("::")
    return key, {"on": True, "off": False}.get(arg)


def settings_rows(*, remix: bool, mode: str, style: str = "plain") -> list[ActionRow]:
    on = {"RemixMode": remix, "FastMode": mode == "fast", "RelaxMode": mode == "relax", "TurboMode": mode == "turbo"}
    return [
        row(*[
            button(label=label, custom_id=settings_custom_id(key, on[key], style), style=3 if on[key] else 2)
            for key, label in SETTINGS_TOGGLES.items()
        ]),
        row(button(label="Reset Settings", custom_id=SETTINGS_RESET, style=4)),
    ]
