"""Midjourney's button custom_id grammar: build the ids the bot expects and parse the ones it
sends, so every layer speaks of buttons as (Action, index, job hash) instead of raw strings.

Midjourney adds buttons over time (v7's "Animate (High motion)" / "(Low motion)", draft mode's
"Enhance", video upscales): an id this grammar does not know still parses, as Action.CUSTOM, so
it is shown and can be pressed like any other; it is never dropped."""

from __future__ import annotations

import re

import msgspec

from adapter.domain.actions import Action, PanDirection


class Button(msgspec.Struct, frozen=True, omit_defaults=True):
    """One button as Midjourney sent it. Link buttons (style 5) have a url and no custom_id."""

    custom_id: str | None = None
    label: str = ""
    emoji: str | None = None
    style: int = 2
    url: str | None = None


class ButtonAction(msgspec.Struct, frozen=True, omit_defaults=True):
    """What pressing a button does. `index` is the 1-4 image number where one applies."""

    action: Action
    job_hash: str
    index: int = 1
    pan: PanDirection | None = None
    zoom: float | None = None  # outpaint factor: 2.0 for "Zoom Out 2x", 1.5 for "1.5x"
    needs_modal: bool = False  # custom zoom, vary region: a prompt/mask must follow
    solo: bool = False  # acts on a single (upscaled) image rather than a grid
    motion: str | None = None  # ANIMATE: "high" | "low"
    extend: bool = False  # ANIMATE: extends an existing video instead of starting one
    verb: str | None = None  # CUSTOM: the id's verb when it has the MJ::JOB:: shape

    @property
    def known(self) -> bool:
        """False for ids this grammar only passes through (Action.CUSTOM)."""
        return self.action is not Action.CUSTOM


UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Outpaint's number is the percentage the old image keeps: 50 -> 2x, 75 -> 1.5x (4/3 rounded
# as Midjourney labels it).
_OUTPAINT_FACTORS = {50: 2.0, 75: 1.5}
_FACTOR_OUTPAINT = {v: k for k, v in _OUTPAINT_FACTORS.items()}

_JOB_RE = re.compile(rf"^MJ::JOB::(?P<verb>[a-z0-9_]+)::(?P<n>\d+)::(?P<h>{UUID_RE})(?P<solo>::SOLO)?$")
_INPAINT_RE = re.compile(rf"^MJ::Inpaint::(?P<n>\d+)::(?P<h>{UUID_RE})(::SOLO)?$")
_OUTPAINT_RE = re.compile(rf"^MJ::Outpaint::(?P<pct>\d+)::(?P<n>\d+)::(?P<h>{UUID_RE})(::SOLO)?$")
_CUSTOM_ZOOM_RE = re.compile(rf"^MJ::CustomZoom::(?:\d+::)?(?P<h>{UUID_RE})$")
_ANIMATE_VERB_RE = re.compile(r"^animate_(?P<motion>high|low)(?P<extend>_extend)?$")
_ANY_UUID_RE = re.compile(UUID_RE)
_INDEX_RE = re.compile(r"::(?P<n>\d{1,2})::")

_PAN = {f"pan_{d.value}": d for d in PanDirection}


def _upscale_variant(verb: str) -> Action | None:
    # upsample_v6_2x_subtle, upsample_v6r1_2x_creative, upsample_v7_2x_subtle, ...
    if verb.startswith("upsample_") and verb.endswith("_subtle"):
        return Action.UPSCALE_SUBTLE
    if verb.startswith("upsample_") and verb.endswith("_creative"):
        return Action.UPSCALE_CREATIVE
    return None


def parse_custom_id(custom_id: str) -> ButtonAction | None:
    """Map a custom_id to what it does. Ids the grammar does not know (draft mode's Enhance,
    video upscales, likes, describe picks, anything new) are Action.CUSTOM with whatever job
    hash and image number they carry; None only for an empty id (link buttons)."""
    if not custom_id:
        return None
    if m := _JOB_RE.match(custom_id):
        verb, n, h, solo = m["verb"], int(m["n"]), m["h"], bool(m["solo"])
        simple = {
            "upsample": Action.UPSCALE,
            "variation": Action.VARIATION,
            "reroll": Action.REROLL,
            "low_variation": Action.VARY_SUBTLE,
            "high_variation": Action.VARY_STRONG,
        }
        if verb in simple:
            return ButtonAction(simple[verb], h, index=max(n, 1), solo=solo)
        if verb in _PAN:
            return ButtonAction(Action.PAN, h, index=max(n, 1), pan=_PAN[verb], solo=solo)
        if action := _upscale_variant(verb):
            return ButtonAction(action, h, index=max(n, 1), solo=solo)
        if a := _ANIMATE_VERB_RE.match(verb):
            return ButtonAction(Action.ANIMATE, h, index=max(n, 1), solo=solo, motion=a["motion"], extend=bool(a["extend"]))
        return ButtonAction(Action.CUSTOM, h, index=max(n, 1), solo=solo, verb=verb)
    if m := _INPAINT_RE.match(custom_id):
        return ButtonAction(Action.VARY_REGION, m["h"], index=int(m["n"]), needs_modal=True, solo=True)
    if m := _OUTPAINT_RE.match(custom_id):
        factor = _OUTPAINT_FACTORS.get(int(m["pct"]), round(100 / int(m["pct"]), 2) if int(m["pct"]) else None)
        return ButtonAction(Action.ZOOM, m["h"], index=int(m["n"]), zoom=factor, solo=True)
    if m := _CUSTOM_ZOOM_RE.match(custom_id):
        return ButtonAction(Action.CUSTOM_ZOOM, m["h"], needs_modal=True, solo=True)
    # Unknown shape: keep what can be read (the job hash, an image number) and pass it through.
    h = _ANY_UUID_RE.search(custom_id)
    n = _INDEX_RE.search(custom_id)
    return ButtonAction(
        Action.CUSTOM,
        h.group(0) if h else "",
        index=max(int(n["n"]), 1) if n else 1,
        solo=custom_id.endswith("::SOLO"),
    )


# --- builders: the exact ids Midjourney uses -------------------------------------------------


def upsample(index: int, job_hash: str) -> str:
    return f"MJ::JOB::upsample::{index}::{job_hash}"


def variation(index: int, job_hash: str) -> str:
    return f"MJ::JOB::variation::{index}::{job_hash}"


def reroll(job_hash: str) -> str:
    return f"MJ::JOB::reroll::0::{job_hash}::SOLO"


def vary_subtle(job_hash: str) -> str:
    return f"MJ::JOB::low_variation::1::{job_hash}::SOLO"


def vary_strong(job_hash: str) -> str:
    return f"MJ::JOB::high_variation::1::{job_hash}::SOLO"


def vary_region(job_hash: str) -> str:
    return f"MJ::Inpaint::1::{job_hash}::SOLO"


def zoom_out(factor: float, job_hash: str) -> str:
    pct = _FACTOR_OUTPAINT.get(factor)
    if pct is None:
        raise ValueError(f"zoom out factor must be one of {sorted(_FACTOR_OUTPAINT)}")
    return f"MJ::Outpaint::{pct}::1::{job_hash}::SOLO"


def custom_zoom(job_hash: str) -> str:
    return f"MJ::CustomZoom::{job_hash}"


def pan(direction: PanDirection, job_hash: str) -> str:
    return f"MJ::JOB::pan_{direction.value}::1::{job_hash}::SOLO"


def upscale_subtle(job_hash: str, model: str = "v6") -> str:
    return f"MJ::JOB::upsample_{model}_2x_subtle::1::{job_hash}::SOLO"


def upscale_creative(job_hash: str, model: str = "v6") -> str:
    return f"MJ::JOB::upsample_{model}_2x_creative::1::{job_hash}::SOLO"


def animate(motion: str, job_hash: str, index: int = 1) -> str:
    """v7 "Animate (High motion)" / "Animate (Low motion)" under an upscaled image."""
    if motion not in ("high", "low"):
        raise ValueError("motion must be 'high' or 'low'")
    return f"MJ::JOB::animate_{motion}::{index}::{job_hash}::SOLO"


def animate_extend(motion: str, job_hash: str, index: int = 1) -> str:
    """Extend video `index` (1-4) of an animate result."""
    if motion not in ("high", "low"):
        raise ValueError("motion must be 'high' or 'low'")
    return f"MJ::JOB::animate_{motion}_extend::{index}::{job_hash}"


# --- modal ids (PROTOCOL.md section 2) --------------------------------------------------------

CUSTOM_ZOOM_MODAL_PREFIX = "MJ::OutpaintCustomZoomModal::"
CUSTOM_ZOOM_FIELD = "MJ::OutpaintCustomZoomModal::prompt"
REMIX_MODAL_PREFIX = "MJ::RemixModal::"
REMIX_FIELD = "MJ::RemixModal::new_prompt"
IMAGINE_MODAL_PREFIX = "MJ::ImagineModal::"
IMAGINE_MODAL_FIELD = "MJ::ImagineModal::new_prompt"
PAN_MODAL_PREFIX = "MJ::PanModal::"
PAN_MODAL_FIELD = "MJ::PanModal::prompt"
ANIMATE_MODAL_PREFIX = "MJ::AnimateModal::"  # remix on: MJ::AnimateModal::<h>::<i>::<high|low>::<0|1>
ANIMATE_MODAL_FIELD = "MJ::AnimateModal::prompt"
IFRAME_PREFIX = "MJ::iframe::"


def modal_prompt_field(modal_custom_id: str) -> str | None:
    """The text-input custom_id that carries the prompt in a given Midjourney modal."""
    for prefix, field in (
        (CUSTOM_ZOOM_MODAL_PREFIX, CUSTOM_ZOOM_FIELD),
        (REMIX_MODAL_PREFIX, REMIX_FIELD),
        (IMAGINE_MODAL_PREFIX, IMAGINE_MODAL_FIELD),
        (PAN_MODAL_PREFIX, PAN_MODAL_FIELD),
        (ANIMATE_MODAL_PREFIX, ANIMATE_MODAL_FIELD),
    ):
        if modal_custom_id.startswith(prefix):
            return field
    return None
