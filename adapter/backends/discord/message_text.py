"""The text Midjourney writes into its messages: the job status line, numbered prompt lists,
`**Key**: value` info lines, error titles and job hashes inside URLs.

Pure string functions with no knowledge of Discord's message shape; `messages.py` decides what a
whole message is. Midjourney rewords these lines from time to time, so every parser here accepts
variants and returns None / empty rather than guessing.
"""

from __future__ import annotations

import re

import msgspec

from adapter.domain.actions import Mode, PanDirection
from adapter.domain.buttons import UUID_RE
from adapter.domain.errors import ErrorCategory

_UUID = re.compile(UUID_RE, re.IGNORECASE)
_MENTION = re.compile(r"<@!?(\d+)>")
# `[(Open on website for full quality)](<https://midjourney.com/jobs/<uuid>>)`: the link text
# is itself in parentheses, so links are cut out before the status parentheses are read.
# Brackets are excluded inside the text so a run of `[` cannot make the search quadratic.
_MD_LINK = re.compile(r"\[[^\[\]\n]*\]\(<?[^()<>\s]*>?\)")
_PAREN = re.compile(r"\(([^()]*)\)")
_PERCENT = re.compile(r"^(\d{1,3})\s*%$")
# Keycap digits: `1️⃣` is "1" + VARIATION SELECTOR-16 + COMBINING ENCLOSING KEYCAP; the selector
# is sometimes dropped.
_KEYCAP = re.compile("([1-9])\ufe0f?\u20e3")
# `**Key**: value`, and the `**Key:** value` spelling.
_INFO_LINE = re.compile(r"^\s*\*\*([^*]+?)(?::\*\*|\*\*\s*:)(.*)$")
_LEADING_NON_WORD = re.compile(r"^[\W_]+")
_SPACES = re.compile(r"\s+")
_URL_TOKEN = re.compile(r"^<?https?://\S+?>?$")
_PREVIEW_NAME = re.compile(r"grid_\d+\.(?:webp|png|jpe?g)$", re.IGNORECASE)

# The separator between the echoed prompt and the status: `**<prompt>** - <status>`.
_SEPARATOR = "** - "

_MODE_WORDS: dict[str, Mode] = {
    "fast": Mode.FAST,
    "relaxed": Mode.RELAX,
    "relax": Mode.RELAX,
    "turbo": Mode.TURBO,
}

# --- embeds: titles, colours ----------------------------------------------------------------

RED = 16711680
WARNING_COLOURS = frozenset({16776960, 16239475})
ERROR_COLOURS = frozenset({RED}) | WARNING_COLOURS

# Prefixes, compared case-insensitively after `normalize_title`. PROTOCOL.md section 3.
ERROR_TITLES: tuple[tuple[str, ErrorCategory], ...] = (
    ("banned prompt", ErrorCategory.CONTENT_POLICY),  # also covers "Banned prompt detected"
    ("request cancelled due to output filters", ErrorCategory.CONTENT_POLICY),
    ("request cancelled due to image filters", ErrorCategory.CONTENT_POLICY),
    ("invalid parameter", ErrorCategory.INVALID_REQUEST),
    ("invalid prompt", ErrorCategory.INVALID_REQUEST),
    ("invalid link", ErrorCategory.INVALID_REQUEST),
    ("duplicate images detected", ErrorCategory.INVALID_REQUEST),
    ("queue full", ErrorCategory.QUEUE_FULL),
    ("action needed to continue", ErrorCategory.ACCOUNT),
    ("action required to continue", ErrorCategory.ACCOUNT),
    ("pending mod message", ErrorCategory.ACCOUNT),
    ("credits exhausted", ErrorCategory.ACCOUNT),
    ("blocked", ErrorCategory.ACCOUNT),
    ("plan cancelled", ErrorCategory.ACCOUNT),
    ("subscription required", ErrorCategory.ACCOUNT),
    ("subscription paused", ErrorCategory.ACCOUNT),
    ("tos not accepted", ErrorCategory.ACCOUNT),
    ("sorry! could not complete the job", ErrorCategory.RETRYABLE),
)
QUEUED_TITLE = "job queued"
INFO_TITLE = "your info"
SHORTEN_MARKERS = ("shortened prompt", "click on a button to imagine one of the shortened")


def normalize_title(title: str) -> str:
    """Case-folded, whitespace-collapsed, without leading emoji or punctuation (titles are
    sometimes decorated with an icon)."""
    return _SPACES.sub(" ", _LEADING_NON_WORD.sub("", title)).strip().casefold()


def error_category_for_title(title: str) -> ErrorCategory | None:
    t = normalize_title(title)
    if not t:
        return None
    for prefix, category in ERROR_TITLES:
        if t.startswith(prefix):
            return category
    return None


def is_queued_title(title: str) -> bool:
    return normalize_title(title).startswith(QUEUED_TITLE)


def is_info_title(title: str) -> bool:
    return normalize_title(title).startswith(INFO_TITLE)


def looks_like_shorten(*texts: str) -> bool:
    joined = " ".join(texts).casefold()
    return any(marker in joined for marker in SHORTEN_MARKERS)


def is_failure_content(content: str) -> bool:
    # "Failed to process your command", "Failed to ..." (PROTOCOL.md: any content starting so)
    return content.lstrip().casefold().startswith("failed")


# --- the job status line --------------------------------------------------------------------


class JobLine(msgspec.Struct, frozen=True, kw_only=True):
    """`**<prompt>** - <label> <@uid> <status parentheses>` taken apart."""

    prompt: str  # exactly as echoed, between the first `**` and the last `** - `
    label: str = ""  # "" (imagine), "Image #2", "Variations (Strong)", "Upscaling", ...
    user_id: str | None = None
    waiting: bool = False
    percent: int | None = None
    paused: bool = False
    mode: Mode | None = None
    stealth: bool = False
    link_hash: str | None = None  # job UUID from the "Open on website" link


def parse_job_line(content: str) -> JobLine | None:
    """None when the content is not a job line (no leading `**` or no `** - ` separator)."""
    text = content.strip()
    if not text.startswith("**"):
        return None
    end = text.rfind(_SEPARATOR)
    if end < 2:
        return None
    prompt = text[2:end]
    rest = text[end + len(_SEPARATOR) :]

    link_hash: str | None = None
    for link in _MD_LINK.finditer(rest):
        if link_hash is None:
            link_hash = first_uuid(link.group(0))
    rest = _MD_LINK.sub(" ", rest)

    mention = _MENTION.search(rest)
    if mention:
        label = _strip_trailing_by(rest[: mention.start()])
        tail = rest[mention.end() :]
        user_id: str | None = mention.group(1)
    else:
        label, tail, user_id = "", rest, None

    waiting = paused = stealth = False
    percent: int | None = None
    mode: Mode | None = None
    for group in _PAREN.findall(tail):
        word = group.strip().casefold()
        if word.startswith("waiting"):
            waiting = True
        elif m := _PERCENT.match(word):
            percent = min(int(m.group(1)), 100)
        elif word == "paused":
            paused = True
        else:
            for token in (t.strip() for t in word.split(",")):
                if token in _MODE_WORDS and mode is None:
                    mode = _MODE_WORDS[token]
                elif token == "stealth":
                    stealth = True
    return JobLine(
        prompt=prompt,
        label=label,
        user_id=user_id,
        waiting=waiting,
        percent=percent,
        paused=paused,
        mode=mode,
        stealth=stealth,
        link_hash=link_hash,
    )


def _strip_trailing_by(label: str) -> str:
    label = label.strip()
    if label.casefold() == "by":
        return ""
    if label.casefold().endswith(" by"):
        return label[:-3].rstrip()
    return label


def first_mention(content: str) -> str | None:
    m = _MENTION.search(content)
    return m.group(1) if m else None


# --- what the label says the result is ---------------------------------------------------------

_IMAGE_N = re.compile(r"^Image\s*#\s*(\d+)$", re.IGNORECASE)
_VARIATIONS = re.compile(r"^Variations?(?:\s*\((\w+)\))?$", re.IGNORECASE)
_REMIX = re.compile(r"^Remix(?:\s*\((\w+)\))?$", re.IGNORECASE)
_PAN = re.compile(r"^Pan\s+(Left|Right|Up|Down)$", re.IGNORECASE)
_ZOOM_OUT = re.compile(r"^Zoom\s+Out$", re.IGNORECASE)
_UPSCALED = re.compile(r"^Upscaled(?:\s*\((\w+)\))?$", re.IGNORECASE)
_UPSCALING = re.compile(r"^Upscaling$", re.IGNORECASE)
_SLUG = re.compile(r"[^a-z0-9]+")


class LabelMeaning(msgspec.Struct, frozen=True):
    variant: str
    index: int | None = None
    pan: PanDirection | None = None


def _slug(text: str) -> str:
    return _SLUG.sub("_", text.casefold()).strip("_")


def label_meaning(label: str) -> LabelMeaning:
    """Variant names: imagine, upscale (+index), variation[_strong|_subtle|_region],
    remix[_strong|_subtle], pan (+pan), zoom_out, upscale_subtle / _creative / _2x / _4x,
    upscaling (an upscale still running), or the label slugified for anything new."""
    label = label.strip()
    if not label:
        return LabelMeaning("imagine")
    if m := _IMAGE_N.match(label):
        return LabelMeaning("upscale", index=int(m.group(1)))
    if m := _VARIATIONS.match(label):
        return LabelMeaning("variation" + (f"_{m.group(1).casefold()}" if m.group(1) else ""))
    if m := _REMIX.match(label):
        return LabelMeaning("remix" + (f"_{m.group(1).casefold()}" if m.group(1) else ""))
    if m := _PAN.match(label):
        return LabelMeaning("pan", pan=PanDirection(m.group(1).casefold()))
    if _ZOOM_OUT.match(label):
        return LabelMeaning("zoom_out")
    if m := _UPSCALED.match(label):
        return LabelMeaning(f"upscale_{m.group(1).casefold()}" if m.group(1) else "upscaled")
    if _UPSCALING.match(label):
        return LabelMeaning("upscaling")
    return LabelMeaning(_slug(label) or "unknown")


def is_blend_prompt(prompt: str) -> bool:
    """A prompt of two or more image links and nothing but flags: what /blend echoes back."""
    words = prompt.split()
    links = 0
    for word in words:
        if word.startswith("--"):
            break
        if not _URL_TOKEN.match(word):
            return False
        links += 1
    return links >= 2


# --- embeds' text ------------------------------------------------------------------------------


def numbered_items(text: str, *, one_line: bool) -> tuple[str, ...]:
    """The texts after `1️⃣ `..`9️⃣ ` markers. Describe prompts are paragraphs (cut at a blank
    line); shorten options are single lines."""
    markers = list(_KEYCAP.finditer(text))
    items: list[str] = []
    for i, marker in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        chunk = text[marker.end() : end]
        chunk = chunk.split("\n", 1)[0] if one_line else re.split(r"\n\s*\n", chunk, maxsplit=1)[0]
        chunk = chunk.strip()
        if chunk:
            items.append(chunk)
    return tuple(items)


def info_lines(text: str) -> dict[str, str]:
    """`**Key**: value` lines -> {Key: value}; other lines are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if m := _INFO_LINE.match(line):
            key = m.group(1).strip()
            if key:
                out[key] = m.group(2).strip()
    return out


# --- URLs ----------------------------------------------------------------------------------------


def first_uuid(text: str) -> str | None:
    m = _UUID.search(text)
    return m.group(0).lower() if m else None


def job_hash_from_url(url: str) -> str | None:
    """The job UUID in an image URL: query string dropped, file name first, then the path
    (`..._<uuid>.png`, `<uuid>_grid_0.webp`, `cdn.midjourney.com/<uuid>/0_0.png`)."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    name = base.rstrip("/").rsplit("/", 1)[-1]
    return first_uuid(name) or first_uuid(base)


def is_preview_filename(url_or_name: str) -> bool:
    """Progress previews are named `grid_0.webp` / `<uuid>_grid_0.webp`; finished grids are not."""
    base = url_or_name.split("?", 1)[0].split("#", 1)[0]
    return bool(_PREVIEW_NAME.search(base))
