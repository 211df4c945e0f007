"""Chat UIs' background requests (titles, tags, follow-ups, ...) are recognised and answered
without a job; real prompts that look a bit like them are not.

The templates are the UIs' own, quoted in housekeeping_templates.py with the repositories and
commits they come from, filled in the way each UI fills them, for two conversations: a grid
with an English prompt, and an upscale (`U2`) of a grid with a Chinese prompt.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from housekeeping_templates import AGENT_ROLE, OWUI_NEW_TITLE, Case, Message, cases, owui_fill  # noqa: E402

from adapter.api.openai import chat_render as render
from adapter.api.openai import housekeeping as hk
from adapter.api.openai.protocol_chat import ChatMessageIn, ChatRequest
from adapter.domain import buttons as b
from adapter.domain.actions import Action, PanDirection
from adapter.domain.buttons import Button
from adapter.domain.chat_grammar import describe_available
from adapter.domain.jobs import ImageRef, Job, JobStatus

H = "0f0e0d0c-1b1a-2c2b-3d3c-4e4d4c4b4a49"
BASE = "http://127.0.0.1:8080/images/"


def answer_text(job: Job) -> str:
    """What the adapter streams for a finished job (header, progress, result, follow-ups)."""
    grid = job.action is Action.IMAGINE
    tiles = [BASE + r.key for r in job.images] if grid else []
    body = render.result_block(job, BASE + job.image.key if job.image else None, tiles)
    return render.header(job) + "⏳ 15% → 62% → ✅ done\n\n" + body + render.follow_ups_line(describe_available(job.buttons), grid=grid)


def grid(job_id: str, prompt: str) -> Job:
    return Job(
        id=job_id,
        owner="o",
        action=Action.IMAGINE,
        status=JobStatus.SUCCESS,
        prompt=prompt,
        final_prompt=prompt + " --fast",
        image=ImageRef(key=f"{job_id}/{'g' * 26}-result.png", width=1024, height=682),
        images=[ImageRef(key=f"{job_id}/{c * 26}-{i}.png", width=512, height=341) for i, c in enumerate("wxyz", start=1)],
        buttons=[Button(custom_id=b.upsample(i, H), label=f"U{i}") for i in range(1, 5)]
        + [Button(custom_id=b.reroll(H), emoji="🔄")]
        + [Button(custom_id=b.variation(i, H), label=f"V{i}") for i in range(1, 5)],
    )


def upscale(job_id: str, prompt: str) -> Job:
    ref = ImageRef(key=f"{job_id}/{'s' * 26}-result.png", width=1024, height=1024)
    return Job(
        id=job_id,
        owner="o",
        action=Action.UPSCALE,
        index=2,
        status=JobStatus.SUCCESS,
        prompt=prompt,
        image=ref,
        images=[ref],
        buttons=[
            Button(custom_id=b.vary_subtle(H), label="Vary (Subtle)"),
            Button(custom_id=b.vary_strong(H), label="Vary (Strong)"),
            Button(custom_id=b.zoom_out(2, H), label="Zoom Out 2x"),
            Button(custom_id=b.pan(PanDirection.LEFT, H), emoji="⬅️"),
        ],
    )


GRID_PROMPT = "a lighthouse at dawn, oil painting --ar 3:2"
GRID_CHAT: list[Message] = [
    {"role": "user", "content": GRID_PROMPT},
    {"role": "assistant", "content": answer_text(grid("j_0123456789abcdefghij", GRID_PROMPT))},
]
CAT_PROMPT = "一只猫在月球上，水彩 --niji 6"
UPSCALE_CHAT: list[Message] = [
    {"role": "user", "content": CAT_PROMPT},
    {"role": "assistant", "content": answer_text(grid("j_abcdefghij0123456789", CAT_PROMPT))},
    {"role": "user", "content": "U2"},
    {"role": "assistant", "content": answer_text(upscale("j_k80s9smpo5j67nmk3653", CAT_PROMPT))},
]
CONVERSATIONS = {"grid": (GRID_CHAT, GRID_PROMPT), "upscale": (UPSCALE_CHAT, CAT_PROMPT)}
EXPECTED = {
    # conversation -> (title, tags' first word, follow-ups, image prompt)
    "grid": ("Lighthouse at dawn", "lighthouse", ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"], GRID_PROMPT),
    "upscale": ("一只猫在月球上", "一只猫在月球上", ["Vary (Subtle)", "Vary (Strong)", "Zoom Out 2x", "⬅️"], CAT_PROMPT),
}


def request(messages: list[Message], *, images: dict[int, tuple[str, ...]] | None = None) -> ChatRequest:
    return ChatRequest(
        messages=tuple(ChatMessageIn(role=m["role"], text=m["content"], image_urls=(images or {}).get(i, ())) for i, m in enumerate(messages))
    )


TABLE = [pytest.param(name, case, id=f"{name}:{case.id}") for name, (chat, prompt) in CONVERSATIONS.items() for case in cases(chat, prompt)]


def test_the_table_covers_every_ui_and_chore() -> None:
    ids = {p.values[1].id.split("-")[0] for p in TABLE}  # type: ignore[union-attr]
    kinds = {p.values[1].kind for p in TABLE}  # type: ignore[union-attr]
    assert ids == {"owui", "lobe", "nextchat"}
    assert kinds == {k.value for k in hk.Kind}
    assert len(TABLE) >= 140


@pytest.mark.parametrize(("conversation", "case"), TABLE)
def test_real_templates_are_recognised_and_answered(conversation: str, case: Case) -> None:
    chore = hk.recognise(request(case.messages))
    assert chore is not None, case.id
    assert chore.kind.value == case.kind and chore.json_keys == case.json_keys, chore.signals
    assert len(chore.signals) + ("answered" in chore.signals) >= hk.THRESHOLD  # "answered" counts twice
    text = hk.answer(chore)
    title, tag, follow, image_prompt = EXPECTED[conversation]
    if case.json_keys:
        value: Any = json.loads(text)
        assert isinstance(value, dict) and tuple(value) == case.json_keys
        check_json(case.kind, value, title=title, tag=tag, follow=follow, image_prompt=image_prompt)
    else:
        check_plain(case.kind, text, title=title, tag=tag, follow=follow)


def check_json(kind: str, value: dict[str, Any], *, title: str, tag: str, follow: list[str], image_prompt: str) -> None:
    if kind == "title":
        assert value["title"] == title
    elif kind == "tags":
        assert value["tags"][0] == tag and all(isinstance(t, str) and t for t in value["tags"])
    elif kind == "follow_ups":
        assert value["follow_ups"] == follow
    elif kind == "queries":
        assert value["queries"] == []
    elif kind == "autocomplete":
        assert value["text"] == ""
    elif kind == "image_prompt":
        # Open WebUI hands this prompt to its image engine (possibly our images API): the
        # conversation's prompt, not a job of its own
        assert value["prompt"] == image_prompt
    elif kind == "summary":
        assert value["description"] == title and "Prompts so far" in value["summary"]
    else:
        raise AssertionError(kind)


def check_plain(kind: str, text: str, *, title: str, tag: str, follow: list[str]) -> None:
    assert "\n" not in text or kind == "follow_ups"
    if kind == "title":
        assert text == title
    elif kind == "summary":
        assert text.startswith("A Midjourney image chat. Prompts so far: ") and "--" not in text
    elif kind == "emoji":
        assert text == "🎨"
    elif kind == "queries":
        assert text == ""  # Open WebUI 0.3: an empty string means no search
    elif kind == "tags":  # LobeChat's agent tags: comma-separated words of the agent's role
        assert text == "midjourney,artist,turns"
    elif kind == "agent_name":
        assert text == "Midjourney artist"
    elif kind == "agent_description":
        assert text == "Midjourney artist who turns short ideas into striking, detailed images"
    else:
        raise AssertionError(kind)


def test_titles_carry_no_flags_or_punctuation() -> None:
    assert hk.short_title("a lighthouse at dawn, oil painting --ar 3:2 --v 6") == "Lighthouse at dawn"
    assert hk.short_title("https://x.example/a.png neon koi pond at night --iw 2") == "Neon koi pond at night"
    assert hk.short_title("the quick brown fox jumps over the lazy dog near a river bank") == "Quick brown fox jumps over the"
    assert hk.short_title("portrait") == "Portrait"
    assert hk.short_title("赛博朋克城市，夜晚，霓虹灯 --ar 16:9") == "赛博朋克城市"
    assert hk.short_title("--ar 1:1") == ""
    assert hk.main_words("a red fox in the snow, highly detailed --ar 3:2") == ["red", "fox", "snow"]


def test_follow_ups_of_a_describe_answer_are_its_prompts() -> None:
    answer = "🔎 **Describe** · fast · job `j_0123456789abcdefghij`\n\n1. a red fox in snow \\*soft light\\* --ar 1:1\n2. winter fox\n\nSend one of these prompts to imagine it.\n"
    assert hk.follow_ups([hk.Turn("assistant", answer)]) == ["a red fox in snow *soft light* --ar 1:1", "winter fox"]
    assert hk.follow_ups([hk.Turn("user", "a fox")]) == []


def test_commands_are_not_prompts_for_titles() -> None:
    turns = [hk.Turn("user", "a koi pond"), hk.Turn("assistant", "…"), hk.Turn("user", "U2"), hk.Turn("user", "放大第二张"), hk.Turn("user", "help")]
    assert hk.user_prompts(turns) == ["a koi pond"]
    # Open WebUI's title task sees the last two messages only: then the answer's quoted prompt
    only_follow_up = owui_fill(OWUI_NEW_TITLE, UPSCALE_CHAT[2:])
    chore = hk.recognise(request([{"role": "user", "content": only_follow_up}]))
    assert chore is not None and json.loads(hk.answer(chore)) == {"title": "一只猫在月球上"}


# --- drift: reworded templates are still recognised ---------------------------------------------

DRIFTED = [
    # made-up rewordings, in the direction the real ones changed between versions
    ("### Task:\nCreate a short title for the chat history below.\n### Output:\nJSON: { \"title\": \"...\" }\n<chat_history>\n{h}\n</chat_history>", "title", ("title",)),
    ("### Task:\nPropose up to 5 tags for the chat history.\n### Rules:\n- Reply with raw JSON only: {\"tags\": [\"...\"]}\n<chat_history>\n{h}\n</chat_history>", "tags", ("tags",)),
    ("### Task:\nSuggest three follow-up prompts for this conversation.\n### Output:\n{ \"follow_ups\": [] } as JSON\n### Chat History:\n<chat_history>\n{h}\n</chat_history>", "follow_ups", ("follow_ups",)),
    ("Please write a 3 word title for our conversation. No punctuation, no explanations.", "title", ()),
]


@pytest.mark.parametrize(("template", "kind", "keys"), DRIFTED)
def test_reworded_templates(template: str, kind: str, keys: tuple[str, ...]) -> None:
    filled = template.replace("{h}", "USER: a red fox\nASSISTANT: " + GRID_CHAT[1]["content"])
    messages = [{"role": "user", "content": filled}] if "{h}" in template else [*GRID_CHAT, {"role": "user", "content": filled}]
    chore = hk.recognise(request(messages))
    assert chore is not None and chore.kind.value == kind and chore.json_keys == keys


# --- never a real prompt ------------------------------------------------------------------------

LOOK_ALIKES = [
    "a title card for a movie, --ar 16:9",
    "a title card for a movie",
    "generate tags for a fashion photo shoot, studio lighting",
    "### a poster of a cat",
    "### Task: a poster of a robot\n### Output: 16:9, no text",
    "summarize the history of rome in one epic painting",
    "a painting that summarizes the conversation between two lovers, no punctuation",
    'a poster reading {"title": "Summer"}, json style, output only the poster',
    '{"prompt": "a red car", "style": "anime"}',
    '{"tags": ["beach", "sunset"]} as a polaroid, JSON aesthetic, no text',
    "总结一下这张图的风格 一只猫",
    "总结一下这张图的风格，不超过十个字 一只猫",
    "以秋天为主题的海报，不要文字，不超过三种颜色",
    "生成一张以秋天为主题的海报，不要标点，不超过三种颜色",
    "a movie poster, title text 'THE END', no punctuation, 3 words",
    "make a title card for a chat app, no punctuation",
    "Generate a concise title summarizing the chat history --ar 16:9",
    "un cartel con tema otoñal, sin puntuación, cuatro a cinco hojas",
    "ein Plakat zum Thema Herbst, ohne Satzzeichen, vier bis fünf Blätter",
    "a neon sign that says 'follow-up questions?', no explanations",
    "an emoji of a facial expression, 3D render, output only the emoji",
    "Your task is to paint a cat in the style of Monet",
    "You are a cat. A portrait of you, summarizing the chat in one image, no punctuation",
    "write a prompt for an image of a dragon",
    "Please generate a four to five word title summarizing our conversation",  # no conversation yet
    "U2",
    "vary strong",
    "放大第二张",
    "help",
]
AGENT_SYSTEM = {"role": "system", "content": "You are a Midjourney prompt artist.\n\nRules:\n- Output only the image.\n- Generate a title for the prompt, no punctuation, in 4-5 words."}


@pytest.mark.parametrize("prompt", LOOK_ALIKES)
@pytest.mark.parametrize("where", ["first turn", "later turn", "agent with a system prompt"])
def test_real_prompts_are_not_housekeeping(prompt: str, where: str) -> None:
    before: list[Message] = {"first turn": [], "later turn": GRID_CHAT, "agent with a system prompt": [AGENT_SYSTEM, *GRID_CHAT]}[where]
    if prompt == LOOK_ALIKES[-5] and where != "first turn":
        return  # with a conversation before it, this one is NextChat's own request
    assert hk.recognise(request([*before, {"role": "user", "content": prompt}])) is None


OWUI_RAG = """### Task:
Respond to the user query using the provided context, incorporating inline citations in the format [id] **only when the <source> tag includes an explicit id attribute** (e.g., <source id="1">).

### Guidelines:
- If you don't know the answer, clearly state that.
- Respond in the same language as the user's query.

### Output:
Provide a clear and direct response to the user's query, including inline citations in the format [id] only when the <source> tag with id attribute is present in the context.

<context>
<source id="1">lighthouses of brittany</source>
</context>
"""


@pytest.mark.parametrize(
    "messages",
    [
        # a system message after a *new* user message (post-history instructions): the prompt runs
        [*GRID_CHAT, {"role": "user", "content": "a red fox"}, {"role": "system", "content": "Be creative."}],
        # NextChat's memory and system template ahead of a normal turn
        [
            {"role": "system", "content": "This is a summary of the chat history as a recap: A Midjourney image chat. Prompts so far: a poster titled Summer, no punctuation."},
            *GRID_CHAT,
            {"role": "user", "content": "a red fox"},
        ],
        # Open WebUI's RAG template (web search or a file on): a real turn, in the system message or the user one
        [{"role": "system", "content": OWUI_RAG}, *GRID_CHAT, {"role": "user", "content": "a lighthouse in brittany"}],
        [*GRID_CHAT, {"role": "user", "content": OWUI_RAG + "\n<user_query>a lighthouse</user_query>"}],
        # LobeChat agent whose role reads like a chore, then a prompt
        [{"role": "system", "content": "You are a conversation summarizer. Generate a concise title for the conversation. Output ONLY the title."}, {"role": "user", "content": AGENT_ROLE}],
    ],
    ids=["system-after-new-prompt", "nextchat-memory", "owui-rag-system", "owui-rag-user", "agent-role-like-a-chore"],
)
def test_real_turns_in_ui_clothing(messages: list[Message]) -> None:
    assert hk.recognise(request(messages)) is None


def test_an_image_makes_it_a_prompt() -> None:
    messages = [*GRID_CHAT, {"role": "user", "content": "Please generate a four to five word title summarizing our conversation without any lead-in, punctuation"}]
    assert hk.recognise(request(messages)) is not None
    assert hk.recognise(request(messages, images={2: ("https://example.com/a.png",)})) is None


# --- bounded work -------------------------------------------------------------------------------

N = 64 * 1024  # the longest text one message part may carry
HOSTILE = {
    "newlines": "\n" * N,
    "spaces": " " * N,
    "blank lines": " \t\n" * (N // 3),
    "unclosed tags": "<user>" * (N // 6),
    "unclosed history": "<chat_history>" * (N // 14),
    "unclosed fences": "message: ```" * (N // 12),
    "digits": "1" * N,
    "braces": "输入: {" * (N // 5),
    "role lines": "user: a\n" * (N // 8),
    "prompt lines": "Prompt: x\n\n" * (N // 11),
    "task headers": "### Task:\n" * (N // 10),
    "a quote and a word": '"' + "a" * N,
    "numbered blanks": "1. " + " " * N + "x",
    "dashes": "a" + "-" * N,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_is_read_in_bounded_time(text: str) -> None:
    """Every request passes through recognise: long runs of whitespace, tags or digits must not
    make it quadratic (each case took seconds to minutes with `^\\s*` or lazy block patterns)."""
    import time

    layouts = [
        [{"role": "user", "content": text}],
        [{"role": "system", "content": text}, {"role": "user", "content": "a\n\n" + text}, {"role": "assistant", "content": text}, {"role": "system", "content": text}],
    ]
    for messages in layouts:
        start = time.perf_counter()
        chore = hk.recognise(request(messages))
        if chore is not None:
            hk.answer(chore)
        assert time.perf_counter() - start < 1.0
