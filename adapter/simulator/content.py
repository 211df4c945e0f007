"""What the simulated Midjourney bot writes: job lines, labels, error embeds, info, describe and
shorten texts (PROTOCOL.md section 3)."""

from __future__ import annotations

import hashlib
import random
import re

from adapter.domain.actions import Action, Mode, PanDirection
from adapter.domain.prompt import canonical_dashes, parse_prompt
from adapter.simulator.wire import Embed, EmbedFooter, EmbedImage

RED = 16711680
WARNING = 16776960
BLURPLE = 5793266

KEYCAPS = [f"{n}\ufe0f\u20e3" for n in range(1, 10)]  # 1️⃣ .. 9️⃣

MODE_WORD = {Mode.FAST: "fast", Mode.RELAX: "relaxed", Mode.TURBO: "turbo"}
MODE_TITLE = {Mode.FAST: "Fast", Mode.RELAX: "Relaxed", Mode.TURBO: "Turbo"}

_URL_RE = re.compile(r"<?(https?://[^\s>]+)>?")
_SPACES = re.compile(r"\s+")
SHORT_LINK_BASE = "https://s.mj.run/"
_B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- prompts ---------------------------------------------------------------------------------


def short_link(url: str, seed: int) -> str:
    """Midjourney's s.mj.run short link for an image URL: stable for a URL and a seed."""
    n = int.from_bytes(hashlib.sha256(f"{seed}:{url}".encode()).digest()[:8], "big")
    code = ""
    for _ in range(11):
        n, r = divmod(n, 62)
        code += _B62[r]
    return f"{SHORT_LINK_BASE}{code}"


def echo_prompt(prompt: str, seed: int) -> str:
    """The prompt as Midjourney echoes it: `—` -> `--`, spaces collapsed, links shortened."""
    text = _SPACES.sub(" ", canonical_dashes(prompt)).strip()

    def shorten(m: re.Match[str]) -> str:
        url = m.group(1)
        # already short (a prompt copied back from a result, e.g. into a remix modal)
        return f"<{url}>" if url.startswith(SHORT_LINK_BASE) else f"<{short_link(url, seed)}>"

    return _URL_RE.sub(shorten, text)


def prompt_mode(prompt: str) -> Mode | None:
    """The mode flag the prompt carries (the last one written wins)."""
    found: Mode | None = None
    for m in re.finditer(r"(?:^|\s)--(fast|relax|turbo)\b", canonical_dashes(prompt)):
        found = Mode(m.group(1))
    return found


# --- job lines -------------------------------------------------------------------------------


def label_for(action: Action, *, index: int = 1, pan: PanDirection | None = None, remix: bool = False, running: bool = False) -> str:
    """What sits between `** - ` and the mention: "" for imagine, "Variations (Strong) by "..."""
    if action in (Action.IMAGINE, Action.REROLL, Action.BLEND):
        return ""
    if action is Action.UPSCALE:
        return f"Image #{index} "
    if action in (Action.VARIATION, Action.VARY_STRONG):
        return "Remix (Strong) by " if remix else "Variations (Strong) by "
    if action is Action.VARY_SUBTLE:
        return "Remix (Subtle) by " if remix else "Variations (Subtle) by "
    if action is Action.VARY_REGION:
        return "Variations (Region) by "
    if action is Action.PAN:
        return f"Pan {(pan or PanDirection.LEFT).value.capitalize()} by "
    if action in (Action.ZOOM, Action.CUSTOM_ZOOM):
        return "Zoom Out by "
    if action in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE):
        if running:
            return "Upscaling by "
        return "Upscaled (Subtle) by " if action is Action.UPSCALE_SUBTLE else "Upscaled (Creative) by "
    return ""


def waiting_line(prompt: str, label: str, user_id: str) -> str:
    return f"**{prompt}** - {label}<@{user_id}> (Waiting to start)"


def progress_line(prompt: str, label: str, user_id: str, percent: int, mode: Mode) -> str:
    return f"**{prompt}** - {label}<@{user_id}> ({percent}%) ({MODE_WORD[mode]})"


def final_line(prompt: str, label: str, user_id: str, mode: Mode | None, web_link: str | None = None) -> str:
    """`mode` None for results that show none (U1-U4); `web_link` adds the newer
    "Open on website" link before the mode."""
    parts = [f"**{prompt}** - {label}<@{user_id}>"]
    if web_link:
        parts.append(f"[(Open on website for full quality)](<{web_link}>)")
    if mode is not None:
        parts.append(f"({MODE_WORD[mode]})")
    return " ".join(parts)


def slug(prompt: str, limit: int = 60) -> str:
    text = parse_prompt(prompt).text
    text = _URL_RE.sub(" ", text)
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = "_".join(words)[:limit].strip("_")
    return out or "image"


# --- embeds ----------------------------------------------------------------------------------


def error_embed(title: str, description: str, *, footer: str | None = None, color: int = RED) -> Embed:
    return Embed(
        type="rich",
        title=title,
        description=description,
        color=color,
        footer=EmbedFooter(text=footer[:2000]) if footer else None,
    )


def banned_embed(word: str, command: str) -> Embed:
    return error_embed(
        "Banned prompt detected",
        "Sorry! Our AI moderators feel your prompt might be against our community standards.\n\n"
        f"The word `{word}` is banned. Please rephrase your prompt.",
        footer=command,
    )


def invalid_parameter_embed(reason: str, command: str) -> Embed:
    return error_embed("Invalid parameter", reason, footer=command)


def invalid_link_embed(link: str, command: str) -> Embed:
    return error_embed("Invalid link", f"Sorry, the link `{link}` could not be read as an image.", footer=command)


def queued_embed(position: int, command: str) -> Embed:
    return error_embed(
        "Job queued",
        f"Your job is queued and will start as soon as one of your running jobs finishes.\nPosition in queue: {position}",
        footer=command,
        color=WARNING,
    )


def queue_full_embed(command: str) -> Embed:
    return error_embed(
        "Queue full",
        "Your job queue is full. Please wait for a job to finish first, then resubmit this one.",
        footer=command,
    )


PLAN_NAME = "Standard"
PLAN_FAST_HOURS = 15.0
INFO_VALUE_COLUMN = 32  # `aligned` layout: values start at this column, as in newer /info answers


def subscription_line(renews_at: int, plan: str = PLAN_NAME, billing: str = "monthly") -> str:
    """`Standard (Active monthly, renews next on <t:1722649226>)`: clients read the plan, the
    billing period and the renewal date (a Discord timestamp, seconds) out of it."""
    return f"{plan} (Active {billing}, renews next on <t:{renews_at}>)"


def info_embed(
    *,
    user_id: str,
    mode: Mode,
    fast_seconds_left: float,
    images: int,
    relaxed_images: int,
    queued_fast: int,
    queued_relax: int,
    running: list[str],
    renews_at: int,
    layout: str = "classic",
) -> Embed:
    """The /info answer. `classic`: `**Key**: value` lines led by the User ID; `aligned` (newer):
    no User ID line, every value padded to one column, a blank line before the queues."""
    hours_left = max(fast_seconds_left, 0) / 3600
    used_hours = max(PLAN_FAST_HOURS - hours_left, 0.0)
    pairs: list[tuple[str, str] | None] = [
        ("User ID", user_id) if layout == "classic" else None,
        ("Subscription", subscription_line(renews_at)),
        ("Job Mode", MODE_TITLE[mode]),
        ("Visibility Mode", "Public"),
        ("Fast Time Remaining", f"{hours_left:.2f}/{PLAN_FAST_HOURS:.1f} hours ({hours_left / PLAN_FAST_HOURS * 100:.2f}%)"),
        ("Lifetime Usage", f"{images} images ({used_hours:.2f} hours)"),
        ("Relaxed Usage", f"{relaxed_images} images ({relaxed_images / 240:.2f} hours)"),
        ("", "") if layout == "aligned" else None,
        ("Queued Jobs (fast)", str(queued_fast)),
        ("Queued Jobs (relax)", str(queued_relax)),
        ("Running Jobs", ", ".join(running) if running else "None"),
    ]
    lines = []
    for pair in pairs:
        if pair is None:
            continue
        key, value = pair
        if not key:
            lines.append("")
        elif layout == "aligned":
            lines.append(f"**{key}**:".ljust(INFO_VALUE_COLUMN) + value)
        else:
            lines.append(f"**{key}**: {value}")
    return Embed(type="rich", title="Your info", description="\n".join(lines), color=BLURPLE)


# --- /settings and /prefer -------------------------------------------------------------------


def settings_text(suffix: str) -> str:
    return f"Adjust your settings here. Current suffix: `{suffix}`" if suffix else "Adjust your settings here."


def remix_toggled_text(on: bool) -> str:
    # "Remix mode turned on" / "... off" is the prefix public clients match (README)
    state = "on" if on else "off"
    return f"Remix mode turned {state}! You can switch it again with `/prefer remix`."


def suffix_text(suffix: str) -> str:
    return f"Custom suffix saved: `{suffix}`" if suffix else "Custom suffix cleared."


def option_set_text(name: str, value: str) -> str:
    return f"Custom option `--{name}` saved: `{value}`" if value else f"Custom option `--{name}` deleted."


def option_list_text(options: dict[str, str]) -> str:
    if not options:
        return "You have no custom options. Create one with `/prefer option set`."
    return "Your custom options:\n" + "\n".join(f"`--{k}`: {v}" for k, v in sorted(options.items()))


# --- the ✉️ reaction ---------------------------------------------------------------------------


def seed_dm_text(prompt: str, job_hash: str, seed: int) -> str:
    """The DM a ✉️ reaction on a result earns: `**<prompt>**\n**Job ID**: <uuid>\n**seed** <n>`
    (the shape trueai-org/midjourney-proxy parses for the seed)."""
    return f"**{prompt}**\n**Job ID**: {job_hash}\n**seed** {seed}"


def rated_text(guild_id: str | None, channel_id: str, message_id: str) -> str:
    """The answer to ❤️ (MJ::BOOKMARK) on a result."""
    where = f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"
    return f"You have successfully rated [this job]({where}) with 😍"


# --- video ------------------------------------------------------------------------------------


def animate_prompt(source_prompt: str, motion: str, aspect: str) -> str:
    """Animate rewrites the prompt: the text, then `--motion <m> --video 1 --aspect W:H` (the
    source's other flags are dropped)."""
    return f"{parse_prompt(source_prompt).text} --motion {motion} --video 1 --aspect {aspect}".strip()


def prompt_video_prompt(images: tuple[str, ...], text: str, flags: dict[str, str], aspect: str) -> str:
    """An `/imagine <image> [text] --video ...` (prompt video) is echoed like Animate's: the
    start image and text, then `--motion <m>` (low unless given), `--end`, `--bs`, `--loop`,
    `--raw` when given, then `--video 1 --aspect W:H`; other flags are dropped."""
    parts = [*images, text] if text else [*images]
    parts.append(f"--motion {flags.get('motion') or 'low'}")
    parts += [f"--{name} {flags[name]}".strip() for name in ("end", "bs", "loop", "raw") if name in flags]
    parts.append(f"--video 1 --aspect {aspect}")
    return " ".join(p for p in parts if p)


def strip_leading_links(prompt: str) -> str:
    """The prompt without its leading image links (an Extend of a prompt video echoes the text
    and flags only)."""
    words = prompt.split(" ")
    while words and _URL_RE.fullmatch(words[0]):
        words.pop(0)
    return " ".join(words).strip()


# --- describe / shorten ----------------------------------------------------------------------

_SUBJECTS = ["a lighthouse on a cliff", "a fox in a misty forest", "a quiet city street at dusk", "an old sailing ship",
             "a bowl of ripe fruit", "a mountain lake", "a vintage robot", "a desert caravan", "a glass greenhouse"]
_STYLES = ["in the style of watercolor", "cinematic lighting", "soft pastel tones", "highly detailed illustration",
           "35mm film photograph", "art nouveau poster", "minimalist flat design", "oil painting on canvas"]
_MOODS = ["serene atmosphere", "dramatic shadows", "golden hour", "overcast light", "vibrant colors", "muted palette"]


def describe_prompts(rng: random.Random, ar: str) -> list[str]:
    prompts = []
    for _ in range(4):
        prompts.append(f"{rng.choice(_SUBJECTS)}, {rng.choice(_STYLES)}, {rng.choice(_MOODS)}, simulated --ar {ar}")
    return prompts


def describe_embed(prompts: list[str], image_url: str | None, width: int | None, height: int | None) -> Embed:
    description = "\n\n".join(f"{KEYCAPS[i]} {p}" for i, p in enumerate(prompts))
    return Embed(
        type="rich",
        description=description,
        color=BLURPLE,
        image=EmbedImage(url=image_url, proxy_url=image_url, width=width, height=height) if image_url else None,
    )


def describe_waiting_embed(image_url: str | None, width: int | None, height: int | None) -> Embed:
    return Embed(
        type="rich",
        color=BLURPLE,
        image=EmbedImage(url=image_url, proxy_url=image_url, width=width, height=height) if image_url else None,
    )


SHORTEN_FOOTER = "Click on a button to imagine one of the shortened prompts"


def shorten_options(prompt: str) -> tuple[list[str], list[str]]:
    """(important tokens, five shortened prompts): each option keeps fewer of the longest words,
    in their original order, with the prompt's flags kept."""
    parsed = parse_prompt(prompt)
    full = canonical_dashes(prompt).strip()
    flags = full[len(parsed.text) :].strip() if full.startswith(parsed.text) else ""
    body = parsed.text
    words = [w for w in re.split(r"[\s,]+", body) if w]
    ranked = sorted(range(len(words)), key=lambda i: (-len(words[i]), i))
    important = [words[i] for i in sorted(ranked[: max(1, min(5, len(words)))])]
    options: list[str] = []
    for k in range(5):
        keep = max(1, round(len(words) * (0.85 - 0.15 * k)))
        chosen = sorted(ranked[:keep])
        text = " ".join(words[i] for i in chosen) or body or "simulated"
        options.append(f"{text} {flags}".strip())
    return important, options


def shorten_embed(prompt: str) -> tuple[Embed, list[str]]:
    important, options = shorten_options(prompt)
    description = (
        "**Important tokens**\n"
        + ", ".join(important)
        + "\n\n**Shortened prompts**\n"
        + "\n\n".join(f"{KEYCAPS[i]} {o}" for i, o in enumerate(options))
    )
    return Embed(type="rich", title="Shortened prompts", description=description, color=BLURPLE, footer=EmbedFooter(text=SHORTEN_FOOTER)), options
