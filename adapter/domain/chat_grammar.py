"""The chat command grammar: what the last user message of a chat conversation asks for.

Chat UIs keep no state, so a user answers a grid with plain text ("U2", "zoom out 1.5x",
"放大第二张"). This module turns that text into a typed `ChatCommand`, finds the button of the
previous result that performs it, and lists which follow-ups a result offers.

The grammar is a table of whole-message patterns (`_COMMAND_RULES`): a message is a command
only if it matches a pattern from end to end (after trimming whitespace, punctuation, a
leading slash and a few politeness words), so a prompt that merely mentions "zoom out" stays a
prompt. Follow-ups may carry a remix prompt after the first colon (`V2: a red car`).
Everything else is an imagine prompt. Pure code: no I/O.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import msgspec

from adapter.domain.actions import Action, PanDirection
from adapter.domain.buttons import Button, ButtonAction, parse_custom_id

CommandKind = Literal[
    "imagine", "follow_up", "describe", "blend", "shorten", "cancel", "vary_region_unsupported", "help"
]
Dimensions = Literal["portrait", "square", "landscape"]


class ChatCommand(msgspec.Struct, frozen=True, kw_only=True):
    """What one chat message asks for.

    `prompt` holds the imagine / shorten prompt, the describe hint, the remix prompt of a
    follow-up, and for `help` / `vary_region_unsupported` the message to show the user."""

    kind: CommandKind
    prompt: str = ""
    action: Action | None = None  # follow_up (and VARY_REGION for vary_region_unsupported)
    index: int | None = None  # 1-4 for UPSCALE / VARIATION
    pan: PanDirection | None = None
    zoom: float | None = None  # ZOOM: 2.0 or 1.5; CUSTOM_ZOOM: the value, 1.0 < zoom <= 2.0
    dimensions: Dimensions | None = None  # blend


# --- messages shown to the user ----------------------------------------------------------------

HELP_TEXT = (
    "Type a prompt to imagine a grid, then answer with a command to act on the latest result:\n"
    "U1-U4 upscale an image (放大第二张), V1-V4 make variations (变化第三张), 🔄 or reroll (重新生成);\n"
    "on an upscaled image: vary subtle / vary strong (微调 / 强烈变化), upscale subtle / upscale creative "
    "(高清 / 创意放大), zoom out 2x / zoom out 1.5x (缩小2倍), custom zoom 1.3 (自定义缩放 1.3), "
    "pan left / right / up / down (向左扩展).\n"
    "Add a remix prompt after a colon: `V2: a red car`. Attach one image to describe it (反推), "
    "2-5 images to blend them (混合, optionally portrait / square / landscape). "
    "`shorten <prompt>` (精简) analyses a prompt; `cancel` (取消) stops the running job."
)
INDEX_HELP = "Pick an image from 1 to 4: U1-U4 upscale it, V1-V4 make variations of it (e.g. U2, V3, 放大第二张)."
VARIATION_HELP = (
    "Say which image to vary: V1-V4 (变化第三张), or on an upscaled image vary subtle / vary strong (微调 / 强烈变化)."
)
ZOOM_HELP = (
    "Zoom values go above 1.0 up to 2.0: zoom out 2x, zoom out 1.5x, or custom zoom 1.3 "
    "(自定义缩放 1.3). Midjourney cannot zoom in."
)
PAN_HELP = "Say which way to pan: pan left / right / up / down, ⬅️ ➡️ ⬆️ ⬇️, or 向左扩展 / 向右扩展 / 向上扩展 / 向下扩展."
DESCRIBE_HELP = "Attach exactly one image and say describe (描述 / 反推) to get prompts for it."
BLEND_HELP = "Attach 2 to 5 images and say blend (混合), optionally with portrait / square / landscape (竖 / 方 / 横)."
SHORTEN_HELP = "Give the prompt to shorten: shorten <prompt> (精简 <prompt>)."
VARY_REGION_MESSAGE = (
    "Vary (Region) needs a mask drawn on the image, which a chat message cannot carry; "
    "use vary subtle / vary strong, or the Midjourney editor."
)


# --- vocabulary (each table drives both a regex and the lookup of what it matched) -------------

_NUMBER_WORDS: dict[str, int] = {
    "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
}  # fmt: skip
_ZOOM_WORDS: dict[str, float] = {"一点五": 1.5, "两": 2.0, "二": 2.0, "一": 1.0}
_DIRECTIONS: dict[str, PanDirection] = {
    **{d.value: d for d in PanDirection},
    "⬅": PanDirection.LEFT, "➡": PanDirection.RIGHT, "⬆": PanDirection.UP, "⬇": PanDirection.DOWN,
    "←": PanDirection.LEFT, "→": PanDirection.RIGHT, "↑": PanDirection.UP, "↓": PanDirection.DOWN,
    "左": PanDirection.LEFT, "右": PanDirection.RIGHT, "上": PanDirection.UP, "下": PanDirection.DOWN,
}  # fmt: skip
_ARROWS = {k: v for k, v in _DIRECTIONS.items() if not k.isalpha()}
_PAN_EMOJI: dict[PanDirection, str] = {
    PanDirection.LEFT: "⬅️", PanDirection.RIGHT: "➡️", PanDirection.UP: "⬆️", PanDirection.DOWN: "⬇️",
}  # fmt: skip
_DIMENSION_WORDS: dict[str, Dimensions] = {
    **dict.fromkeys(("portrait", "vertical", "tall", "2:3", "竖", "竖版", "竖图", "竖屏", "纵向"), "portrait"),
    **dict.fromkeys(("landscape", "horizontal", "wide", "3:2", "横", "横版", "横图", "横屏", "横向"), "landscape"),
    **dict.fromkeys(("square", "1:1", "方", "方形", "方图", "正方形"), "square"),
}


def _alternation(words: Mapping[str, object]) -> str:
    # Longest first so "竖版" wins over "竖" and "fourth" over "four".
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# One image number: "2", "#2", "2nd", "second", "第二张", "two", "二号图".
_N = (
    r"(?:(?:the|image|img|pic|picture)\s*)?(?:#|no\.?\s*|number\s*|第\s*)?"
    rf"(?P<n>\d{{1,3}}(?:st|nd|rd|th)?|{_alternation(_NUMBER_WORDS)})"
    r"(?:\s*(?:张图?|幅图?|个|号图?|图|image|one|pic(?:ture)?))?"
)
# One zoom value: "2x", "x1.5", "1.8", "2倍", "两倍", "一点五倍".
_Z = rf"(?:x\s*)?(?P<z>\d+(?:\.\d+)?|\.\d+|{_alternation(_ZOOM_WORDS)})(?:\s*(?:x|倍|times))?"
_D = rf"(?P<d>{_alternation(_DIRECTIONS)})"
_ARROW = rf"(?P<d>{_alternation(_ARROWS)})"
_CN_D = r"(?P<d>[左右上下])"


def _dim(group: str) -> str:
    # "portrait", "in landscape", "--ar 2:3", "竖版"; before or after the blend word.
    return rf"(?:(?:in|as)\s*)?(?:--ar\s*|--aspect\s*|aspect\s*)?(?P<{group}>{_alternation(_DIMENSION_WORDS)})"


_BLEND = rf"(?:{_dim('dim1')}\s*)?(?:blend|混合|融合)(?:\s*{_dim('dim2')})?"
_DESCRIBE = (
    r"describe(?:\s*(?:this|it|the)?\s*(?:image|picture|photo|pic)?)?"
    r"|描述(?:一下)?(?:这张图|图片)?|反推(?:提示词|咒语|prompt)?|图生文|读图"
)

# How a matched zoom value becomes a command: "out" keeps Midjourney's two fixed buttons and
# sends any other factor to Custom Zoom; "custom" always uses Custom Zoom.
_ZoomPolicy = Literal["out", "custom"]


class _Rule(msgspec.Struct, frozen=True):
    pattern: str
    kind: CommandKind
    action: Action | None = None
    message: str = ""  # help text (help rules) or the user message (vary_region_unsupported)
    zoom: _ZoomPolicy | None = None
    takes_prompt: bool = False  # may be followed by ": <remix prompt>" (or a describe hint)


def _follow(action: Action, *patterns: str, zoom: _ZoomPolicy | None = None) -> list[_Rule]:
    return [_Rule(p, "follow_up", action, zoom=zoom, takes_prompt=True) for p in patterns]


def _help(message: str, *patterns: str) -> list[_Rule]:
    return [_Rule(p, "help", message=message) for p in patterns]


# Whole-message commands, tried in order; the first full match wins.
_COMMAND_RULES: list[_Rule] = [
    _Rule(r"cancel|stop|abort|取消|停止|停下|中止|终止", "cancel"),
    *_help(HELP_TEXT, r"help|\?+|帮助|命令|指令|commands|usage|怎么用|imagine"),
    *_follow(Action.UPSCALE, rf"(?:u|upscale|upsample)\s*{_N}", rf"放大\s*(?:图片?)?\s*{_N}", rf"{_N}\s*放大"),
    *_follow(
        Action.VARIATION,
        rf"(?:v|vary|var|variation|variations|variant)\s*{_N}",
        rf"(?:变化|变换|变体|衍生)\s*{_N}",
        rf"{_N}\s*(?:变化|变换|变体)",
    ),
    *_follow(Action.REROLL, r"re-?\s*roll|🔄|🔁|redo|re-?generate|retry|重新生成|重绘|再来一次|再来一张|再来|重来|重新画|重画"),
    *_follow(
        Action.VARY_SUBTLE,
        r"(?:vary|variation|variations)\s*\(?\s*subtle\s*\)?|subtle(?:\s*variations?)?|vary\s*subtly",
        r"low\s*variation|微调|轻微变化|细微变化|小幅变化",
    ),
    *_follow(
        Action.VARY_STRONG,
        r"(?:vary|variation|variations)\s*\(?\s*strong\s*\)?|strong(?:\s*variations?)?|vary\s*strongly",
        r"high\s*variation|强烈变化|大幅变化|强变化",
    ),
    *_follow(
        Action.UPSCALE_SUBTLE,
        r"(?:upscale|upsample)\s*\(?\s*subtle\s*\)?|subtle\s*upscale|高清|精细放大|高清放大|细节放大",
    ),
    *_follow(
        Action.UPSCALE_CREATIVE,
        r"(?:upscale|upsample)\s*\(?\s*creative\s*\)?|creative\s*upscale|创意放大|创造性放大",
    ),
    *_follow(Action.CUSTOM_ZOOM, rf"custom\s*zoom\s*(?:--zoom\s*)?{_Z}", rf"自定义缩放\s*{_Z}", zoom="custom"),
    *_follow(Action.ZOOM, rf"zoom\s*(?:out)?(?:\s*{_Z})?", rf"(?:缩小|拉远|镜头拉远|缩放)(?:\s*{_Z})?", zoom="out"),
    *_follow(
        Action.PAN,
        rf"(?:pan|extend|expand|move)\s*(?:to\s*(?:the\s*)?)?{_D}",
        _ARROW,
        rf"(?:向|往|朝)?{_CN_D}\s*(?:扩展|拓展|扩图|扩|延伸|平移|移)",
    ),
    _Rule(
        r"(?:vary|variation)\s*\(?\s*region\s*\)?|inpaint(?:ing)?|局部重绘|局部修改|区域重绘",
        "vary_region_unsupported",
        Action.VARY_REGION,
        message=VARY_REGION_MESSAGE,
        takes_prompt=True,
    ),
    # Command words that need something they were not given.
    *_help(INDEX_HELP, r"u|upscale|upsample|放大"),
    *_help(VARIATION_HELP, r"v|vary|variations?|变化|变换|变体"),
    *_help(ZOOM_HELP, r"custom\s*zoom|自定义缩放", rf"zoom\s*in(?:\s*{_Z})?|放大视角"),
    *_help(PAN_HELP, r"pan|平移|扩展"),
    *_help(DESCRIBE_HELP, _DESCRIBE),
    *_help(BLEND_HELP, _BLEND),
    *_help(SHORTEN_HELP, r"shorten|精简(?:提示词)?"),
]

# With images attached, only these words are commands; any other text is an image prompt.
_IMAGE_RULES: list[_Rule] = [
    _Rule(_DESCRIBE, "describe", takes_prompt=True),
    _Rule(_BLEND, "blend"),
]
# How many images each image command takes, and what to say otherwise.
_IMAGE_LIMITS: dict[CommandKind, tuple[int, int, str]] = {
    "describe": (1, 1, DESCRIBE_HELP),
    "blend": (2, 5, BLEND_HELP),
}

# Commands that take the rest of the message as their prompt, matched on the raw text so the
# prompt keeps its exact characters.
_PREFIX_RULES: list[tuple[re.Pattern[str], CommandKind]] = [
    (re.compile(r"^\s*/?shorten(?:\s*[:：]\s*|\s+)(?P<p>\S.*)$", re.I | re.S), "shorten"),
    # A separator is required: "精简风格的客厅" (a minimalist living room) is a prompt.
    (re.compile(r"^\s*/?精简(?:提示词)?(?:\s*[:：]\s*|\s+)(?P<p>\S.*)$", re.S), "shorten"),
    # Discord habit; without the slash "imagine a world..." is an ordinary prompt.
    (re.compile(r"^\s*/imagine(?:\s+prompt)?(?:\s*[:：]\s*|\s+|$)(?P<p>.*)$", re.I | re.S), "imagine"),
]


_Table = list[tuple[re.Pattern[str], _Rule]]


def _compile(rules: list[_Rule]) -> _Table:
    return [(re.compile(rf"(?:{r.pattern})", re.I), r) for r in rules]


_COMMANDS = _compile(_COMMAND_RULES)
_IMAGE_COMMANDS = _compile(_IMAGE_RULES)

# Trimmed from both ends of a command candidate ("U2!", "「放大第二张」", "V3。").
_EDGE_PUNCT = " \t\r\n.,!?;:~'\"`*()[]<>{}、。，！？；：…“”‘’「」『』【】《》（）"
_POLITE_HEAD = re.compile(r"^(?:(?:please|pls|plz|请|帮我|麻烦你?|给我)\s*)+", re.I)
_POLITE_TAIL = re.compile(r"(?:\s*(?:please|pls|plz|thanks|thx|吧|一下|谢谢))+$", re.I)
_COLON = re.compile(r"[:：]")


def _normalize(text: str) -> str:
    """The form commands are matched against: full-width folded (NFKC), emoji variation
    selectors dropped (⬅️ == ⬅), edges trimmed, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", text).replace("\ufe0f", "")
    s = " ".join(s.split())
    core = s.strip(_EDGE_PUNCT).lstrip("/!").strip(_EDGE_PUNCT)
    if not core:
        return s  # "?" is a command of its own
    stripped = _POLITE_TAIL.sub("", _POLITE_HEAD.sub("", core)).strip(_EDGE_PUNCT)
    return stripped or core


def _find(table: _Table, candidate: str, *, with_prompt: bool) -> tuple[_Rule, re.Match[str]] | None:
    for pattern, rule in table:
        if (rule.takes_prompt or not with_prompt) and (m := pattern.fullmatch(candidate)):
            return rule, m
    return None


def _match(table: _Table, text: str) -> tuple[_Rule, re.Match[str], str] | None:
    """The rule the whole message matches, else one whose head matches before the first colon
    (the rest being its prompt)."""
    if hit := _find(table, _normalize(text), with_prompt=False):
        return hit[0], hit[1], ""
    if colon := _COLON.search(text):
        head, tail = text[: colon.start()], text[colon.end() :].strip()
        if head.strip() and (hit := _find(table, _normalize(head), with_prompt=True)):
            return hit[0], hit[1], tail
    return None


def _number(token: str) -> int:
    if digits := re.match(r"\d+", token):
        return int(digits.group())
    return _NUMBER_WORDS[token.lower()]


def _zoom_value(token: str) -> float:
    return _ZOOM_WORDS[token] if token in _ZOOM_WORDS else float(token)


def _group(m: re.Match[str], name: str) -> str | None:
    return m.groupdict().get(name)


def _help_cmd(message: str) -> ChatCommand:
    return ChatCommand(kind="help", prompt=message)


def _zoom_command(rule: _Rule, m: re.Match[str], prompt: str) -> ChatCommand:
    token = _group(m, "z")
    if token is None:
        if rule.zoom == "custom":
            return _help_cmd(ZOOM_HELP)
        return ChatCommand(kind="follow_up", action=Action.ZOOM, zoom=2.0, prompt=prompt)
    value = _zoom_value(token)
    if not 1.0 < value <= 2.0:
        return _help_cmd(ZOOM_HELP)
    if rule.zoom == "out" and value in (2.0, 1.5):
        return ChatCommand(kind="follow_up", action=Action.ZOOM, zoom=value, prompt=prompt)
    return ChatCommand(kind="follow_up", action=Action.CUSTOM_ZOOM, zoom=value, prompt=prompt)


def _build(rule: _Rule, m: re.Match[str], prompt: str) -> ChatCommand:
    if rule.kind == "help":
        return _help_cmd(rule.message)
    if rule.kind == "vary_region_unsupported":
        return ChatCommand(kind=rule.kind, action=rule.action, prompt=rule.message)
    if rule.kind != "follow_up":
        return ChatCommand(kind=rule.kind, prompt=prompt)
    if rule.zoom is not None:
        return _zoom_command(rule, m, prompt)
    index = None
    if (n := _group(m, "n")) is not None:
        index = _number(n)
        if not 1 <= index <= 4:
            return _help_cmd(INDEX_HELP)
    d = _group(m, "d")
    pan = _DIRECTIONS[d.lower()] if d is not None else None
    return ChatCommand(kind="follow_up", action=rule.action, index=index, pan=pan, prompt=prompt)


def _image_command(kind: CommandKind, m: re.Match[str] | None, prompt: str, image_count: int) -> ChatCommand:
    low, high, message = _IMAGE_LIMITS[kind]
    if not low <= image_count <= high:
        return _help_cmd(message)
    if kind == "blend":
        # Midjourney's own blend default is square.
        word = (_group(m, "dim1") or _group(m, "dim2") if m is not None else None) or "square"
        return ChatCommand(kind="blend", dimensions=_DIMENSION_WORDS[word.lower()])
    return ChatCommand(kind=kind, prompt=prompt)


def parse_chat_command(text: str, *, image_count: int = 0) -> ChatCommand:
    """Read the last user message (its text and how many images it attaches) as a command.

    Never raises: text that is no command is an imagine prompt, and a command that cannot be
    carried out as typed (U5, zoom out 3x, blend with one image) is `help` with a message."""
    image_count = max(image_count, 0)
    stripped = text.strip()
    for pattern, kind in _PREFIX_RULES:
        if m := pattern.match(text):
            prompt = m["p"].strip()
            if not prompt and image_count == 0:
                return _help_cmd(SHORTEN_HELP if kind == "shorten" else HELP_TEXT)
            return ChatCommand(kind=kind, prompt=prompt)
    if image_count:
        if not stripped:
            # An image alone asks what it shows; several alone ask to blend them.
            return _image_command("describe" if image_count == 1 else "blend", None, "", image_count)
        if hit := _match(_IMAGE_COMMANDS, text):
            return _image_command(hit[0].kind, hit[1], hit[2], image_count)
        return ChatCommand(kind="imagine", prompt=stripped)
    if not stripped:
        return _help_cmd(HELP_TEXT)
    if hit := _match(_COMMANDS, text):
        return _build(*hit)
    return ChatCommand(kind="imagine", prompt=stripped)


# --- buttons -----------------------------------------------------------------------------------

# Which parsed-button fields must agree with the command, beyond the action itself.
_MATCH_FIELDS: dict[Action, tuple[str, ...]] = {
    Action.UPSCALE: ("index",),
    Action.VARIATION: ("index",),
    Action.PAN: ("pan",),
    Action.ZOOM: ("zoom",),
}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b)
    return a == b


def resolve_button(cmd: ChatCommand, buttons: Sequence[Button]) -> Button | None:
    """The button of the previous result that performs this follow-up; None when the command
    is no follow-up or the result lacks such a button (e.g. U2 on an upscaled image)."""
    if cmd.kind != "follow_up" or cmd.action is None:
        return None
    fields = _MATCH_FIELDS.get(cmd.action, ())
    for button in buttons:
        parsed = parse_custom_id(button.custom_id) if button.custom_id else None
        if parsed is None or parsed.action != cmd.action:
            continue
        if all(_same(getattr(parsed, f), getattr(cmd, f)) for f in fields):
            return button
    return None


def _zoom_label(b: ButtonAction) -> str:
    return f"Zoom Out {b.zoom:g}x" if b.zoom is not None else "Zoom Out"


# The canonical short label of each follow-up a chat user can type; None: not offered in chat.
_LABELS: dict[Action, Callable[[ButtonAction], str | None]] = {
    Action.UPSCALE: lambda b: f"U{b.index}",
    Action.VARIATION: lambda b: f"V{b.index}",
    Action.REROLL: lambda b: "🔄",
    Action.VARY_SUBTLE: lambda b: "Vary (Subtle)",
    Action.VARY_STRONG: lambda b: "Vary (Strong)",
    Action.UPSCALE_SUBTLE: lambda b: "Upscale (Subtle)",
    Action.UPSCALE_CREATIVE: lambda b: "Upscale (Creative)",
    Action.ZOOM: _zoom_label,
    Action.CUSTOM_ZOOM: lambda b: "Custom Zoom",
    Action.PAN: lambda b: _PAN_EMOJI[b.pan] if b.pan is not None else None,
}


def describe_available(buttons: Sequence[Button]) -> list[str]:
    """Labels of the follow-ups a result supports, in Midjourney's button order, each of which
    a chat message can ask for: the grammar's short labels (Custom Zoom wants a value: "custom
    zoom 1.3"), and for buttons the grammar has no words for (v7 Animate, draft Enhance, any
    new one) Midjourney's own label, which `resolve_label` finds again. Vary (Region), links
    and buttons without a label (likes) are left out."""
    labels: list[str] = []
    for button in buttons:
        parsed = parse_custom_id(button.custom_id) if button.custom_id else None
        label_of = _LABELS.get(parsed.action) if parsed is not None else None
        label = label_of(parsed) if label_of is not None and parsed is not None else None
        if label is None and parsed is not None and parsed.action in _BY_LABEL and button.label.strip():
            label = button.label.strip()
        if label is not None and label not in labels:
            labels.append(label)
    return labels


# Buttons pressed by typing Midjourney's label: the ones the grammar has no words for.
_BY_LABEL = frozenset({Action.ANIMATE, Action.CUSTOM})
_LABEL_JUNK = re.compile(r"[\s\W_]+")
MAX_LABEL_CHARS = 60


def _label_key(text: str) -> str:
    return _LABEL_JUNK.sub("", unicodedata.normalize("NFKC", text).casefold())


def resolve_label(text: str, buttons: Sequence[Button]) -> Button | None:
    """The button a chat message names by its label ("Animate (High motion)", "enhance"), among
    those the grammar has no words for; None otherwise. Case, spaces and punctuation do not
    matter; the whole message must be the label."""
    if not text.strip() or len(text) > MAX_LABEL_CHARS:
        return None
    key = _label_key(text)
    if not key:
        return None
    for button in buttons:
        parsed = parse_custom_id(button.custom_id) if button.custom_id else None
        if parsed is None or parsed.action not in _BY_LABEL:
            continue
        if button.label and _label_key(button.label) == key:
            return button
    return None
