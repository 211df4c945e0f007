"""The chat command grammar: text of the last user message -> ChatCommand, and back to buttons."""

from __future__ import annotations

import random

import pytest

from adapter.domain import buttons as b
from adapter.domain.actions import Action, PanDirection
from adapter.domain.buttons import Button, parse_custom_id
from adapter.domain.chat_grammar import (
    BLEND_HELP,
    DESCRIBE_HELP,
    HELP_TEXT,
    INDEX_HELP,
    PAN_HELP,
    SHORTEN_HELP,
    VARIATION_HELP,
    VARY_REGION_MESSAGE,
    ZOOM_HELP,
    ChatCommand,
    describe_available,
    parse_chat_command,
    resolve_button,
)

H = "0f3b6d2e-8c1a-4e5f-9b7d-2a6c4e8f1b3d"


def up(i: int, prompt: str = "") -> ChatCommand:
    return ChatCommand(kind="follow_up", action=Action.UPSCALE, index=i, prompt=prompt)


def var(i: int, prompt: str = "") -> ChatCommand:
    return ChatCommand(kind="follow_up", action=Action.VARIATION, index=i, prompt=prompt)


def act(action: Action, prompt: str = "", **kw: object) -> ChatCommand:
    return ChatCommand(kind="follow_up", action=action, prompt=prompt, **kw)  # type: ignore[arg-type]


def pan(d: PanDirection) -> ChatCommand:
    return act(Action.PAN, pan=d)


def zoom(z: float) -> ChatCommand:
    return act(Action.ZOOM, zoom=z)


def czoom(z: float) -> ChatCommand:
    return act(Action.CUSTOM_ZOOM, zoom=z)


def imagine(p: str) -> ChatCommand:
    return ChatCommand(kind="imagine", prompt=p)


def help_(msg: str) -> ChatCommand:
    return ChatCommand(kind="help", prompt=msg)


REROLL = act(Action.REROLL)
SUBTLE = act(Action.VARY_SUBTLE)
STRONG = act(Action.VARY_STRONG)
UP_SUBTLE = act(Action.UPSCALE_SUBTLE)
UP_CREATIVE = act(Action.UPSCALE_CREATIVE)
CANCEL = ChatCommand(kind="cancel")
HELP = help_(HELP_TEXT)
REGION = ChatCommand(kind="vary_region_unsupported", action=Action.VARY_REGION, prompt=VARY_REGION_MESSAGE)
L, R, U, D = PanDirection.LEFT, PanDirection.RIGHT, PanDirection.UP, PanDirection.DOWN

# (text, expected) with no images attached.
TEXT_CASES: list[tuple[str, ChatCommand]] = [
    # upscale, English
    ("U1", up(1)),
    ("U2", up(2)),
    ("u3", up(3)),
    ("U4", up(4)),
    ("u 2", up(2)),
    ("  U2  ", up(2)),
    ("/u2", up(2)),
    ("U2!", up(2)),
    ("U2.", up(2)),
    ("U2?", up(2)),
    ("upscale 2", up(2)),
    ("Upscale #2", up(2)),
    ("upscale image 3", up(3)),
    ("upscale the second one", up(2)),
    ("upscale 2nd", up(2)),
    ("U 4th", up(4)),
    ("u second", up(2)),
    ("upsample 1", up(1)),
    ("upscale two", up(2)),
    ("please U3", up(3)),
    ("Ｕ２", up(2)),  # full-width
    # upscale, Chinese
    ("放大第二张", up(2)),
    ("放大2", up(2)),
    ("放大第2张", up(2)),
    ("放大 2", up(2)),
    ("U二", up(2)),
    ("U两", up(2)),
    ("放大第一张", up(1)),
    ("放大第四张图", up(4)),
    ("第三张放大", up(3)),
    ("请帮我放大第二张吧", up(2)),
    ("「放大第二张」", up(2)),
    ("放大第二张。", up(2)),
    # variation
    ("V1", var(1)),
    ("V3", var(3)),
    ("v4", var(4)),
    ("V 3", var(3)),
    ("variation 3", var(3)),
    ("vary 3", var(3)),
    ("variations #1", var(1)),
    ("vary the third image", var(3)),
    ("V 三", var(3)),
    ("V三", var(3)),
    ("变化第三张", var(3)),
    ("变换3", var(3)),
    ("变体 2", var(2)),
    ("第四张变化", var(4)),
    # remix prompt after a colon
    ("V2: a red car", var(2, "a red car")),
    ("v2 : A Red Car, --ar 16:9", var(2, "A Red Car, --ar 16:9")),
    ("V2：一辆红色的车", var(2, "一辆红色的车")),
    ("变化第二张: 一辆红色的车", var(2, "一辆红色的车")),
    ("U1: whatever", up(1, "whatever")),
    ("V2:", var(2)),
    ("reroll: a blue car", act(Action.REROLL, "a blue car")),
    ("vary strong: a cat wearing a hat", act(Action.VARY_STRONG, "a cat wearing a hat")),
    ("pan left: a long beach", act(Action.PAN, "a long beach", pan=L)),
    ("zoom out 1.5x: wider city", act(Action.ZOOM, "wider city", zoom=1.5)),
    ("custom zoom 1.3: misty hills", act(Action.CUSTOM_ZOOM, "misty hills", zoom=1.3)),
    # reroll
    ("reroll", REROLL),
    ("Re-roll", REROLL),
    ("🔄", REROLL),
    ("redo", REROLL),
    ("/reroll", REROLL),
    ("重新生成", REROLL),
    ("重绘", REROLL),
    ("再来一次", REROLL),
    # vary subtle / strong
    ("vary subtle", SUBTLE),
    ("Vary (Subtle)", SUBTLE),
    ("subtle", SUBTLE),
    ("微调", SUBTLE),
    ("轻微变化", SUBTLE),
    ("vary strong", STRONG),
    ("Vary (Strong)", STRONG),
    ("strong", STRONG),
    ("强烈变化", STRONG),
    ("大幅变化", STRONG),
    # upscale subtle / creative
    ("upscale subtle", UP_SUBTLE),
    ("Upscale (Subtle)", UP_SUBTLE),
    ("高清", UP_SUBTLE),
    ("精细放大", UP_SUBTLE),
    ("upscale creative", UP_CREATIVE),
    ("Upscale (Creative)", UP_CREATIVE),
    ("创意放大", UP_CREATIVE),
    # zoom out
    ("zoom out 2x", zoom(2.0)),
    ("Zoom Out 1.5x", zoom(1.5)),
    ("zoom out", zoom(2.0)),
    ("zoom 2x", zoom(2.0)),
    ("zoom out x2", zoom(2.0)),
    ("zoom", zoom(2.0)),
    ("缩小2倍", zoom(2.0)),
    ("缩小两倍", zoom(2.0)),
    ("拉远1.5倍", zoom(1.5)),
    ("缩小", zoom(2.0)),
    ("缩小一下", zoom(2.0)),
    # custom zoom
    ("zoom 1.8", czoom(1.8)),
    ("zoom out 1.8x", czoom(1.8)),
    ("custom zoom 1.3", czoom(1.3)),
    ("Custom Zoom 2", czoom(2.0)),
    ("custom zoom --zoom 1.25", czoom(1.25)),
    ("自定义缩放 1.8", czoom(1.8)),
    ("自定义缩放1.2倍", czoom(1.2)),
    # zoom out of range or without a value
    ("zoom 3", help_(ZOOM_HELP)),
    ("zoom out 4x", help_(ZOOM_HELP)),
    ("custom zoom 1", help_(ZOOM_HELP)),
    ("custom zoom 0.5", help_(ZOOM_HELP)),
    ("custom zoom 2.5", help_(ZOOM_HELP)),
    ("custom zoom", help_(ZOOM_HELP)),
    ("自定义缩放", help_(ZOOM_HELP)),
    ("zoom in", help_(ZOOM_HELP)),
    # pan
    ("pan left", pan(L)),
    ("Pan Right", pan(R)),
    ("pan up", pan(U)),
    ("pan down", pan(D)),
    ("pan to the left", pan(L)),
    ("⬅️", pan(L)),
    ("➡️", pan(R)),
    ("⬆️", pan(U)),
    ("⬇️", pan(D)),
    ("⬅", pan(L)),
    ("←", pan(L)),
    ("pan ⬇️", pan(D)),
    ("向左扩展", pan(L)),
    ("向右扩展", pan(R)),
    ("向上扩展", pan(U)),
    ("向下扩展", pan(D)),
    ("左移", pan(L)),
    ("右移", pan(R)),
    ("往上平移", pan(U)),
    # vary region
    ("vary region", REGION),
    ("Vary (Region)", REGION),
    ("局部重绘", REGION),
    ("vary region: add a hat", REGION),
    # index out of range
    ("U5", help_(INDEX_HELP)),
    ("U0", help_(INDEX_HELP)),
    ("V9", help_(INDEX_HELP)),
    ("upscale 12", help_(INDEX_HELP)),
    ("放大第五张", help_(INDEX_HELP)),
    ("变化第六张", help_(INDEX_HELP)),
    ("U5: a red car", help_(INDEX_HELP)),
    ("upscale fifth", help_(INDEX_HELP)),
    # a command word with its argument missing
    ("upscale", help_(INDEX_HELP)),
    ("放大", help_(INDEX_HELP)),
    ("vary", help_(VARIATION_HELP)),
    ("pan", help_(PAN_HELP)),
    ("describe", help_(DESCRIBE_HELP)),
    ("blend", help_(BLEND_HELP)),
    ("blend --ar 2:3", help_(BLEND_HELP)),
    ("shorten", help_(SHORTEN_HELP)),
    ("/shorten", help_(SHORTEN_HELP)),
    ("精简", help_(SHORTEN_HELP)),
    # cancel / help
    ("cancel", CANCEL),
    ("Stop", CANCEL),
    ("stop!", CANCEL),
    ("/cancel", CANCEL),
    ("取消", CANCEL),
    ("停止", CANCEL),
    ("help", HELP),
    ("/help", HELP),
    ("帮助", HELP),
    ("?", HELP),
    ("？", HELP),
    ("", HELP),
    ("   ", HELP),
    # shorten
    ("shorten a very long prompt about cats", ChatCommand(kind="shorten", prompt="a very long prompt about cats")),
    ("/shorten A Castle, --ar 2:3", ChatCommand(kind="shorten", prompt="A Castle, --ar 2:3")),
    ("shorten: a castle", ChatCommand(kind="shorten", prompt="a castle")),
    ("精简 一只在月光下奔跑的猫", ChatCommand(kind="shorten", prompt="一只在月光下奔跑的猫")),
    ("精简：一只猫", ChatCommand(kind="shorten", prompt="一只猫")),
    # Discord's /imagine habit
    ("/imagine a cat --ar 2:3", imagine("a cat --ar 2:3")),
    ("/imagine prompt: a cat", imagine("a cat")),
    ("/imagine", HELP),
    # plain prompts
    ("a red fox in the snow", imagine("a red fox in the snow")),
    ("  A Red Fox --ar 16:9 --v 6  ", imagine("A Red Fox --ar 16:9 --v 6")),
    ("一只在雪地里的红狐狸", imagine("一只在雪地里的红狐狸")),
]

# Prompts that contain command words but are not commands (the whole message must match).
NOT_COMMANDS = [
    "a castle that zooms out to the sky",
    "zoom out of a city at night",
    "U2 concert poster",
    "V2 rocket launching at dawn",
    "upscale restaurant interior",
    "stop sign at night",
    "help me draw a cat",
    "cancel culture protest poster",
    "a subtle smile",
    "strong man lifting a car",
    "pan left to reveal a dragon",
    "reroll the dice, casino scene",
    "放大镜下的蚂蚁",
    "取消文化的海报",
    "精简风格的客厅",
    "重新生成的城市废墟",
    "向左扩展的长城全景图",
    "describe the scene as a watercolor",
    "blend of coffee and milk",
    "imagine a world without war",
    "2nd",
    "U2 V3",
    "v2.0 of a robot",
    "Stop: a red sign",  # not a follow-up, so no remix form
    "style: cyberpunk city",
    "https://example.com/a.png a cat",
    "http://example.com:8080/a.png a cat",
    "🔄 recycling symbol made of leaves",
    "⬅️ arrow neon sign",
]


@pytest.mark.parametrize(("text", "expected"), TEXT_CASES, ids=[repr(t) for t, _ in TEXT_CASES])
def test_text_commands(text: str, expected: ChatCommand) -> None:
    assert parse_chat_command(text) == expected


def test_table_is_large() -> None:
    assert len(TEXT_CASES) + len(IMAGE_CASES) + len(NOT_COMMANDS) >= 150


@pytest.mark.parametrize("text", NOT_COMMANDS)
def test_containing_a_command_word_is_still_an_imagine(text: str) -> None:
    assert parse_chat_command(text) == imagine(text.strip())


# (text, image_count, expected) with images attached.
IMAGE_CASES: list[tuple[str, int, ChatCommand]] = [
    ("", 1, ChatCommand(kind="describe")),
    ("describe", 1, ChatCommand(kind="describe")),
    ("Describe this image", 1, ChatCommand(kind="describe")),
    ("描述", 1, ChatCommand(kind="describe")),
    ("反推", 1, ChatCommand(kind="describe")),
    ("反推提示词", 1, ChatCommand(kind="describe")),
    ("/describe", 1, ChatCommand(kind="describe")),
    ("describe: anime style", 1, ChatCommand(kind="describe", prompt="anime style")),
    ("describe", 2, help_(DESCRIBE_HELP)),
    ("", 2, ChatCommand(kind="blend", dimensions="square")),
    ("", 5, ChatCommand(kind="blend", dimensions="square")),
    ("", 6, help_(BLEND_HELP)),
    ("blend", 2, ChatCommand(kind="blend", dimensions="square")),
    ("Blend portrait", 3, ChatCommand(kind="blend", dimensions="portrait")),
    ("blend landscape", 2, ChatCommand(kind="blend", dimensions="landscape")),
    ("blend in square", 4, ChatCommand(kind="blend", dimensions="square")),
    ("blend --ar 2:3", 2, ChatCommand(kind="blend", dimensions="portrait")),
    ("blend --ar 3:2", 2, ChatCommand(kind="blend", dimensions="landscape")),
    ("blend --ar 1:1", 2, ChatCommand(kind="blend", dimensions="square")),
    ("混合", 2, ChatCommand(kind="blend", dimensions="square")),
    ("混合 竖", 3, ChatCommand(kind="blend", dimensions="portrait")),
    ("混合横版", 2, ChatCommand(kind="blend", dimensions="landscape")),
    ("竖版混合", 2, ChatCommand(kind="blend", dimensions="portrait")),
    ("混合 方形", 5, ChatCommand(kind="blend", dimensions="square")),
    ("/blend", 2, ChatCommand(kind="blend", dimensions="square")),
    ("blend", 1, help_(BLEND_HELP)),
    ("blend", 6, help_(BLEND_HELP)),
    # any other text with images is an imagine with image prompts
    ("a cat in this style", 1, imagine("a cat in this style")),
    ("merge these into a poster", 3, imagine("merge these into a poster")),
    ("U2", 1, imagine("U2")),
    ("describe the mood as a poem", 1, imagine("describe the mood as a poem")),
    ("shorten a long prompt", 1, ChatCommand(kind="shorten", prompt="a long prompt")),
]


@pytest.mark.parametrize(("text", "count", "expected"), IMAGE_CASES, ids=[f"{t!r}x{n}" for t, n, _ in IMAGE_CASES])
def test_image_commands(text: str, count: int, expected: ChatCommand) -> None:
    assert parse_chat_command(text, image_count=count) == expected


def test_index_help_names_the_valid_range() -> None:
    for text in ("U5", "放大第五张", "V0"):
        cmd = parse_chat_command(text)
        assert cmd.kind == "help" and "U1-U4" in cmd.prompt and "V1-V4" in cmd.prompt


def test_zoom_help_names_the_range() -> None:
    cmd = parse_chat_command("zoom 2.5")
    assert cmd.kind == "help" and "1.0" in cmd.prompt and "2.0" in cmd.prompt


def test_prompts_keep_their_exact_characters() -> None:
    # Matching folds width and case; prompts must not be folded.
    text = "Ｆｕｌｌ-width ™ Prompt —ar 2:3"
    assert parse_chat_command(text) == imagine(text)
    assert parse_chat_command("V1: Ｆｕｌｌ ™") == var(1, "Ｆｕｌｌ ™")


def test_never_raises_and_non_commands_round_trip() -> None:
    rng = random.Random(1234)
    alphabet = "uvUV0123456789 :：.#?！第张放大变化缩小倍左右zoomoutpanleftxX⬅️🔄一二三四五两-/\n\t"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for count in (0, 1, 3):
            cmd = parse_chat_command(text, image_count=count)
            if cmd.kind == "imagine":
                assert cmd.prompt == text.strip() or text.lstrip().startswith("/")
            if cmd.kind == "follow_up":
                assert cmd.action is not None
                assert cmd.index is None or 1 <= cmd.index <= 4
                assert cmd.zoom is None or 1.0 < cmd.zoom <= 2.0


def test_near_misses_of_commands_never_raise() -> None:
    # Every known command with one character inserted: either still a command or a prompt.
    rng = random.Random(99)
    for text, _ in TEXT_CASES:
        for _ in range(5):
            at = rng.randint(0, len(text))
            noisy = text[:at] + rng.choice("x 9:第.") + text[at:]
            cmd = parse_chat_command(noisy)
            assert cmd.kind != "imagine" or cmd.prompt == noisy.strip() or noisy.lstrip().startswith("/")


# --- buttons -----------------------------------------------------------------------------------


def grid_buttons(h: str = H) -> list[Button]:
    return [
        *(Button(custom_id=b.upsample(i, h), label=f"U{i}") for i in range(1, 5)),
        Button(custom_id=b.reroll(h), emoji="🔄"),
        *(Button(custom_id=b.variation(i, h), label=f"V{i}") for i in range(1, 5)),
    ]


def upscaled_buttons(model: str, h: str = H) -> list[Button]:
    return [
        Button(custom_id=b.upscale_subtle(h, model), label="Upscale (Subtle)"),
        Button(custom_id=b.upscale_creative(h, model), label="Upscale (Creative)"),
        Button(custom_id=b.vary_subtle(h), label="Vary (Subtle)", emoji="🪄"),
        Button(custom_id=b.vary_strong(h), label="Vary (Strong)", emoji="🪄"),
        Button(custom_id=b.vary_region(h), label="Vary (Region)", emoji="🖌️"),
        Button(custom_id=b.zoom_out(2.0, h), label="Zoom Out 2x", emoji="🔍"),
        Button(custom_id=b.zoom_out(1.5, h), label="Zoom Out 1.5x", emoji="🔍"),
        Button(custom_id=b.custom_zoom(h), label="Custom Zoom", emoji="🔍"),
        *(Button(custom_id=b.pan(d, h), emoji=e) for d, e in zip(PanDirection, ["⬅️", "➡️", "⬆️", "⬇️"], strict=True)),
        Button(custom_id=f"MJ::BOOKMARK::{h}", emoji="❤️"),
        Button(url=f"https://www.midjourney.com/jobs/{h}", label="Web", style=5),
    ]


GRID_RESOLVES = [
    ("U1", b.upsample(1, H)),
    ("U4", b.upsample(4, H)),
    ("放大第二张", b.upsample(2, H)),
    ("V3", b.variation(3, H)),
    ("变化第一张", b.variation(1, H)),
    ("V2: a red car", b.variation(2, H)),
    ("🔄", b.reroll(H)),
    ("重新生成", b.reroll(H)),
]
UPSCALED_RESOLVES = [
    ("upscale subtle", "subtle"),
    ("高清", "subtle"),
    ("upscale creative", "creative"),
    ("vary subtle", b.vary_subtle(H)),
    ("强烈变化", b.vary_strong(H)),
    ("zoom out", b.zoom_out(2.0, H)),
    ("缩小2倍", b.zoom_out(2.0, H)),
    ("zoom out 1.5x", b.zoom_out(1.5, H)),
    ("custom zoom 1.3", b.custom_zoom(H)),
    ("zoom 1.8", b.custom_zoom(H)),
    ("pan left", b.pan(L, H)),
    ("➡️", b.pan(R, H)),
    ("向上扩展", b.pan(U, H)),
    ("下移", b.pan(D, H)),
]


@pytest.mark.parametrize(("text", "custom_id"), GRID_RESOLVES)
def test_resolve_on_a_grid(text: str, custom_id: str) -> None:
    found = resolve_button(parse_chat_command(text), grid_buttons())
    assert found is not None and found.custom_id == custom_id


@pytest.mark.parametrize("model", ["v6", "v6r1", "v7"])
@pytest.mark.parametrize(("text", "expected"), UPSCALED_RESOLVES)
def test_resolve_on_an_upscaled_image(model: str, text: str, expected: str) -> None:
    by_kind = {"subtle": b.upscale_subtle(H, model), "creative": b.upscale_creative(H, model)}
    found = resolve_button(parse_chat_command(text), upscaled_buttons(model))
    assert found is not None and found.custom_id == by_kind.get(expected, expected)


@pytest.mark.parametrize("text", ["U2", "V1", "reroll"])
def test_grid_actions_are_missing_on_an_upscaled_image(text: str) -> None:
    assert resolve_button(parse_chat_command(text), upscaled_buttons("v7")) is None


@pytest.mark.parametrize("text", ["vary subtle", "zoom out", "pan left", "upscale creative", "custom zoom 1.5"])
def test_image_actions_are_missing_on_a_grid(text: str) -> None:
    assert resolve_button(parse_chat_command(text), grid_buttons()) is None


@pytest.mark.parametrize("text", ["a cat", "help", "cancel", "vary region", "U5", ""])
def test_non_follow_ups_resolve_to_nothing(text: str) -> None:
    assert resolve_button(parse_chat_command(text), grid_buttons() + upscaled_buttons("v6")) is None


def test_resolve_tells_zoom_factors_apart() -> None:
    only_15 = [bt for bt in upscaled_buttons("v6") if bt.custom_id != b.zoom_out(2.0, H)]
    assert resolve_button(zoom(2.0), only_15) is None
    found = resolve_button(zoom(1.5), only_15)
    assert found is not None and found.custom_id == b.zoom_out(1.5, H)


def test_resolve_skips_unknown_and_link_buttons() -> None:
    junk = [Button(url="https://example.com", style=5), Button(custom_id="MJ::Settings::x"), Button(custom_id="")]
    assert resolve_button(up(1), junk + grid_buttons()) == grid_buttons()[0]
    assert resolve_button(up(1), junk) is None


def test_describe_available_on_a_grid() -> None:
    assert describe_available(grid_buttons()) == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]


@pytest.mark.parametrize("model", ["v6", "v7"])
def test_describe_available_on_an_upscaled_image(model: str) -> None:
    assert describe_available(upscaled_buttons(model)) == [
        "Upscale (Subtle)",
        "Upscale (Creative)",
        "Vary (Subtle)",
        "Vary (Strong)",
        "Zoom Out 2x",
        "Zoom Out 1.5x",
        "Custom Zoom",
        "⬅️",
        "➡️",
        "⬆️",
        "⬇️",
    ]


def test_describe_available_of_nothing() -> None:
    assert describe_available([]) == []
    assert describe_available([Button(url="https://example.com", style=5)]) == []


@pytest.mark.parametrize("layout", [grid_buttons(), upscaled_buttons("v6"), upscaled_buttons("v7")])
def test_every_listed_label_can_be_typed_back(layout: list[Button]) -> None:
    # What we show users must be what they can type; Custom Zoom needs a value.
    for label in describe_available(layout):
        text = "custom zoom 1.3" if label == "Custom Zoom" else label
        cmd = parse_chat_command(text)
        found = resolve_button(cmd, layout)
        assert found is not None and found.custom_id is not None, label
        parsed = parse_custom_id(found.custom_id)
        assert parsed is not None and parsed.action == cmd.action
