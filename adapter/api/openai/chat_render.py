r"""The markdown a chat answer is made of: a header naming the job, a progress line that grows as
deltas arrive, at most one preview, the result image(s) at our stable URLs, and one compact line
of the follow-ups the result supports.

Chat UIs render the concatenation of every delta as one markdown document, so each piece here is
written to read well wherever the stream stops: the header (with the job reference) comes first,
blocks are separated by blank lines, and nothing a UI would show as raw syntax is left open.
Pure code: URLs are passed in, nothing is fetched.

The markdown is the part the three big UIs agree on. Their own rules, read from their sources:
- Open WebUI (marked) runs a citation extension before links: `[` followed by a digit starts a
  citation (`[1]`, `[1,2]`, `[1#x]`; src/lib/utils/marked/citation-extension.ts), so
  `[1](url)` shows as a source marker and a bare URL. Link labels here start with a word.
- LobeChat (@lobehub/ui: react-markdown, remark-gfm, remark-math) turns `[n]` into citation
  links when a message carries search citations, and `\[...\]` / `\(...\)` into math.
- NextChat (react-markdown, remark-gfm, remark-math) turns `\[...\]` / `\(...\)` into math
  too (escapeBrackets in app/components/markdown.tsx), and `$...$` is math in all three.
So prompt text escapes `[` but not `]` (an escaped opener already makes a link impossible, and
`\]` would close a formula), and escapes `$`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from adapter.api.openai.chat_refs import job_ref
from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus
from adapter.domain.prompt import MODE_FLAGS, strip_flags

_TITLES: dict[Action, tuple[str, str]] = {
    Action.IMAGINE: ("🎨", "Imagine"),
    Action.UPSCALE: ("🔍", "Upscale"),
    Action.VARIATION: ("🔀", "Variations"),
    Action.REROLL: ("🔄", "Reroll"),
    Action.VARY_SUBTLE: ("🔀", "Vary (Subtle)"),
    Action.VARY_STRONG: ("🔀", "Vary (Strong)"),
    Action.VARY_REGION: ("🖌️", "Vary (Region)"),
    Action.ZOOM: ("🔭", "Zoom Out"),
    Action.CUSTOM_ZOOM: ("🔭", "Custom Zoom"),
    Action.PAN: ("↔️", "Pan"),
    Action.UPSCALE_SUBTLE: ("🔍", "Upscale (Subtle)"),
    Action.UPSCALE_CREATIVE: ("🔍", "Upscale (Creative)"),
    Action.DESCRIBE: ("🔎", "Describe"),
    Action.BLEND: ("🧪", "Blend"),
    Action.SHORTEN: ("✂️", "Shorten"),
}
_INDEXED = (Action.UPSCALE, Action.VARIATION)

# Characters that would turn prompt text into markup (emphasis, links, html, tables, code, math).
# `]` stays bare: see above.
_MD_SPECIAL = re.compile(r"([\\`*_\[<>|~#$])")
_KEYCAP = re.compile(r"^\s*(?:\d\ufe0f?\u20e3|\d[.)])\s*")


def md_escape(text: str) -> str:
    """Prompt text shown as text: markup characters escaped, lines joined."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _alt(text: str, limit: int = 80) -> str:
    # image alt text: no brackets, math or newlines, short
    clean = " ".join(re.sub(r"[\[\]()<>`*_|\\$]", " ", text).split())
    return (clean[: limit - 1] + "…") if len(clean) > limit else (clean or "image")


def title(job: Job) -> str:
    emoji, name = _TITLES.get(job.action, ("🎨", job.action.value.title()))
    if job.action in _INDEXED and job.index:
        name = f"{name} ({'U' if job.action is Action.UPSCALE else 'V'}{job.index})"
    return f"{emoji} **{name}**"


def header(job: Job) -> str:
    """First content of every answer about a job: what it is, its speed, its reference, and the
    prompt as a quote."""
    line = f"{title(job)} · {job.mode.value} · {job_ref(job.id)}"
    # the speed is on the line already; the flag Midjourney echoes back would say it twice
    prompt = strip_flags(job.prompt, *MODE_FLAGS)
    if job.action in (Action.DESCRIBE, Action.BLEND) or not prompt:
        return line + "\n\n"
    return f"{line}\n\n> {md_escape(prompt)}\n\n"


def _status_word(job: Job) -> str | None:
    if job.status is JobStatus.NOT_START:
        return "queued"
    if job.status is JobStatus.SUBMITTED:
        return "waiting to start"
    if job.status is JobStatus.IN_PROGRESS:
        return f"{job.progress}%" if job.progress else "started"
    return None


class ProgressLine:
    """Turns job snapshots into small appended deltas: `⏳ queued → waiting to start → 15% → 46%`,
    continued after a preview image, closed by `✅ done` (or nothing on failure; the failure
    message says enough)."""

    def __init__(self) -> None:
        self._last: str | None = None
        self._open = False  # a line has been started and not ended

    def update(self, job: Job) -> str:
        word = _status_word(job)
        if word is None or word == self._last:
            return ""
        self._last = word
        if not self._open:
            self._open = True
            return f"⏳ {word}"
        return f" → {word}"

    def break_for_block(self, block: str) -> str:
        """A block (a preview image) placed between two stretches of the progress line."""
        prefix = "\n\n" if self._open else ""
        self._open = False
        return f"{prefix}{block}\n\n"

    def finish(self, done: bool) -> str:
        if done:
            text = " → ✅ done\n\n" if self._open else "✅ done\n\n"
        else:
            text = "\n\n" if self._open else ""
        self._open = False
        return text


def preview_block(url: str, progress: int) -> str:
    return f"![Preview at {progress}%]({url})"


def tile_link(index: int, url: str) -> str:
    """A link to one image of a grid, labelled "Image N" (N as in UN / VN): a label that starts
    with a digit is a citation marker in Open WebUI, not a link."""
    return f"[Image {index}]({url})"


def result_block(job: Job, image_url: str | None, tile_urls: Sequence[str]) -> str:
    """The result image (a grid stays one image, so U1-U4 keep their meaning) and, for a grid,
    links to its four images."""
    if not image_url:
        return ""
    alt = _alt(strip_flags(job.final_prompt or job.prompt, *MODE_FLAGS) or job.action.value.lower())
    out = f"![{alt}]({image_url})\n\n"
    if len(tile_urls) > 1:
        links = " · ".join(tile_link(i, u) for i, u in enumerate(tile_urls, start=1))
        out += f"Full size: {links}\n\n"
    return out


def _family(label: str) -> str:
    if re.fullmatch(r"[UV]\d", label):
        return label[0]
    if label in ("⬅️", "➡️", "⬆️", "⬇️"):
        return "pan"
    if "zoom" in label.lower():
        return "zoom"
    return label.split(" ", 1)[0].lower()  # vary, upscale, zoom, custom, 🔄


def inline_labels(labels: Sequence[str]) -> str:
    """`U1` `U2` `U3` `U4` · `🔄` · `V1` ...: labels the chat grammar understands, grouped the
    way Midjourney lays out its buttons."""
    groups: list[list[str]] = []
    for label in labels:
        # Custom Zoom needs its value in the message
        label = "custom zoom 1.3" if label == "Custom Zoom" else label
        if groups and _family(groups[-1][-1]) == _family(label):
            groups[-1].append(label)
        else:
            groups.append([label])
    return " · ".join(" ".join(f"`{x}`" for x in g) for g in groups)


def follow_ups_line(labels: Sequence[str], *, grid: bool) -> str:
    """`Next: U1 U2 U3 U4 · 🔄 · V1 V2 V3 V4 — reply e.g. U2 / 放大第二张`: one line."""
    if not labels:
        return ""
    text = inline_labels(labels)
    if grid:
        example = "`U2` / `放大第二张`"
    elif "Vary (Strong)" in labels:
        example = "`vary strong` / `强烈变化`"
    else:
        example = f"`{labels[0]}`"
    return f"**Next:** {text} — reply e.g. {example}\n"


def numbered(texts: Sequence[str]) -> str:
    """Describe prompts / shorten options as a numbered list (Midjourney's keycap digits
    removed)."""
    items = [md_escape(_KEYCAP.sub("", t)) for t in texts if t.strip()]
    return "".join(f"{i}. {t}\n" for i, t in enumerate(items, start=1)) + "\n"
