"""Pure helpers of the chat and edits front doors: job references in messages, the markdown of
an answer, request reading, mask conversion, recognising our own results."""

from __future__ import annotations

import io
import re

import msgspec
import pytest
from PIL import Image

from adapter.api.openai import chat_render as render
from adapter.api.openai.chat_refs import conversation_job_ids, job_ids_in_text, job_ref, last_user_message
from adapter.api.openai.errors import OpenAIError
from adapter.api.common.bodies import BodyError, decode_json
from adapter.api.openai.protocol_chat import ChatCompletionRequest, ChatMessageIn, ChatRequest, parse_chat_request
from adapter.api.openai.result_lookup import classify
from adapter.domain.jobs import is_grid_job
from adapter.api.openai.serving_chat import estimate_tokens
from adapter.api.openai.serving_edits import MaskError, midjourney_mask
from adapter.domain import buttons as b
from adapter.domain.actions import Action, Mode
from adapter.domain.buttons import Button
from adapter.domain.jobs import ImageRef, Job, JobStatus

J1 = "j_0123456789abcdefghij"
J2 = "j_abcdefghij0123456789"
J3 = "j_k80s9smpo5j67nmk3653"
TOKEN = "a" * 26
H = "0f0e0d0c-1b1a-2c2b-3d3c-4e4d4c4b4a49"


def url(job_id: str, name: str = "result.png", token: str = TOKEN, base: str = "http://127.0.0.1:8080") -> str:
    return f"{base}/images/{job_id}/{token}-{name}"


def grid_job(job_id: str = J1, **kw: object) -> Job:
    fields: dict[str, object] = {
        "status": JobStatus.SUCCESS,
        "prompt": "a fox --ar 3:2",
        "final_prompt": "a fox --ar 3:2 --fast",
        "image": ImageRef(key=f"{job_id}/{'g' * 26}-result.png", width=1024, height=682),
        "images": [ImageRef(key=f"{job_id}/{c * 26}-{i}.png", width=512, height=341) for i, c in enumerate("wxyz", start=1)],
        "buttons": [Button(custom_id=b.upsample(i, H), label=f"U{i}") for i in range(1, 5)]
        + [Button(custom_id=b.reroll(H), emoji="🔄")]
        + [Button(custom_id=b.variation(i, H), label=f"V{i}") for i in range(1, 5)],
    }
    return Job(id=job_id, owner="o", action=Action.IMAGINE, **{**fields, **kw})  # type: ignore[arg-type]


def single_job(job_id: str = J2) -> Job:
    ref = ImageRef(key=f"{job_id}/{'s' * 26}-result.png", width=512, height=341)
    return Job(
        id=job_id,
        owner="o",
        action=Action.UPSCALE,
        index=2,
        status=JobStatus.SUCCESS,
        prompt="a fox",
        image=ref,
        images=[ref],
        buttons=[Button(custom_id=b.vary_subtle(H)), Button(custom_id=b.vary_strong(H)), Button(custom_id=b.vary_region(H))],
    )


# --- job references -----------------------------------------------------------------------------


def test_visible_reference_round_trips() -> None:
    assert job_ids_in_text(f"🎨 **Imagine** · fast · {job_ref(J1)}") == [J1]
    assert job_ids_in_text(f"copied without code marks: job {J1}.") == [J1]
    assert job_ids_in_text(f"JOB: `{J2}`") == [J2]


def test_references_and_urls_in_order_each_once() -> None:
    text = f"{job_ref(J1)}\n\n![x]({url(J2)})\n\n[Image 1]({url(J2, '1.png', 'b' * 26)}) and then {url(J3)}."
    assert job_ids_in_text(text) == [J1, J2, J3]


@pytest.mark.parametrize(
    "text",
    [
        "job j_short",  # not a job id
        "http://example.com/pictures/j_0123456789abcdefghij/whatever.png",  # not an /images/ URL
        f"http://x/images/{J1}/not-a-key.png",  # no token
        "the job is done",
        f"xjob `{J1}`",  # a word that merely ends in job
    ],
)
def test_things_that_are_not_references(text: str) -> None:
    assert job_ids_in_text(text) == []


def test_image_parts_count_as_mentions() -> None:
    assert job_ids_in_text("no text refs", [url(J3), "data:image/png;base64,AAAA"]) == [J3]


def test_conversation_newest_assistant_first_users_ignored() -> None:
    messages = [
        ChatMessageIn(role="user", text="a fox"),
        ChatMessageIn(role="assistant", text=f"{job_ref(J1)} ![grid]({url(J1)})"),
        ChatMessageIn(role="user", text="U2"),
        ChatMessageIn(role="assistant", text=f"quoting {url(J1)} then the result {job_ref(J2)}"),
        ChatMessageIn(role="user", text=f"look at {url(J3)} and U2"),
    ]
    assert conversation_job_ids(messages) == [J2, J1]
    assert conversation_job_ids(messages, limit=1) == [J2]
    assert last_user_message(messages).text.endswith("U2")
    assert last_user_message([*messages, ChatMessageIn(role="assistant", text="prefill")]).role == "user"


# --- markdown -----------------------------------------------------------------------------------


def test_md_escape_keeps_prompts_literal() -> None:
    # `]` stays bare: `\[...\]` is display math in LobeChat and NextChat, and with `[` escaped
    # no link can form; `$` is escaped: `$...$` is math in all three UIs
    assert render.md_escape("a *bold* [link](x) <b>| $5") == r"a \*bold\* \[link](x) \<b\>\| \$5"
    assert render.md_escape("a [red] car, a \\[b\\] c") == r"a \[red] car, a \\\[b\\] c"
    assert render.md_escape("two\nlines  spaced") == "two lines spaced"


def test_header_names_the_job_and_quotes_the_prompt() -> None:
    job = grid_job(prompt="a *fox* --ar 3:2 --relax", mode=Mode.RELAX)
    text = render.header(job)
    first, _, rest = text.partition("\n\n")
    assert first == f"🎨 **Imagine** · relax · {job_ref(J1)}"
    assert rest == "> a \\*fox\\* --ar 3:2\n\n"  # the speed flag is on the first line already
    assert job_ids_in_text(text) == [J1]
    assert render.title(single_job()) == "🔍 **Upscale (U2)**"


def test_progress_line_grows_and_continues_after_a_preview() -> None:
    line = render.ProgressLine()
    job = grid_job(status=JobStatus.NOT_START)
    out = [line.update(job)]
    for status, progress in [(JobStatus.SUBMITTED, 0), (JobStatus.SUBMITTED, 0), (JobStatus.IN_PROGRESS, 15), (JobStatus.IN_PROGRESS, 15)]:
        job.status, job.progress = status, progress
        out.append(line.update(job))
    out.append(line.break_for_block(render.preview_block("http://p/x.webp", 15)))
    job.progress = 62
    out.append(line.update(job))
    out.append(line.finish(True))
    assert "".join(out) == "⏳ queued → waiting to start → 15%\n\n![Preview at 15%](http://p/x.webp)\n\n⏳ 62% → ✅ done\n\n"
    failed = render.ProgressLine()
    assert failed.update(grid_job(status=JobStatus.IN_PROGRESS, progress=31)) == "⏳ 31%"
    assert failed.finish(False) == "\n\n"


def test_result_block_keeps_the_grid_as_one_image() -> None:
    job = grid_job(final_prompt="a fox [in] (snow) --ar 3:2 --fast")
    text = render.result_block(job, "http://h/grid.png", [f"http://h/{i}.png" for i in range(1, 5)])
    assert text.startswith("![a fox in snow --ar 3:2](http://h/grid.png)\n\n")
    assert "Full size: [Image 1](http://h/1.png) · [Image 2](http://h/2.png) · [Image 3](http://h/3.png) · [Image 4](http://h/4.png)" in text
    assert render.result_block(job, None, []) == ""
    assert "Full size" not in render.result_block(single_job(), "http://h/u.png", [])


# Open WebUI's citation extension takes `[` + digit (not after `\` or `!`) before any link rule
OWUI_CITATION = re.compile(r"(?<![\\!])\[\d")
LINK = re.compile(r"(?<![\\!])\[([^\]]*)\]\(")


def test_no_link_label_is_a_bare_digit_and_no_math_opens() -> None:
    """An answer renders the same in Open WebUI, LobeChat and NextChat: no `[1]`-style label
    (a citation marker in Open WebUI), no `\\[`...`\\]` / `\\(`...`\\)` (math in LobeChat and
    NextChat), no bare `$` (math in all three), whatever the prompt holds."""
    prompt = "poster [2] of 1990 [3, 4], $5 deal (x) [1#a] --ar 3:2"
    job = grid_job(prompt=prompt, final_prompt=prompt + " --fast")
    tiles = [f"http://h/{i}.png" for i in range(1, 5)]
    text = (
        render.header(job)
        + render.result_block(job, "http://h/grid.png", tiles)
        + render.follow_ups_line(["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"], grid=True)
        + render.numbered(["1️⃣ [3] cats for $4 --ar 1:1", "2️⃣ [12](x) dogs"])
    )
    assert not OWUI_CITATION.search(text), text
    assert LINK.findall(text) == ["Image 1", "Image 2", "Image 3", "Image 4"]
    assert all(not label[:1].isdigit() for label in LINK.findall(text))
    assert "\\]" not in text and "\\(" not in text
    assert not re.search(r"(?<!\\)\$", text), text


def test_follow_ups_line_groups_like_the_buttons() -> None:
    grid = render.follow_ups_line(["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"], grid=True)
    assert grid == "**Next:** `U1` `U2` `U3` `U4` · `🔄` · `V1` `V2` `V3` `V4` — reply e.g. `U2` / `放大第二张`\n"
    single = render.follow_ups_line(
        ["Vary (Subtle)", "Vary (Strong)", "Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom", "⬅️", "➡️"], grid=False
    )
    assert "`Vary (Subtle)` `Vary (Strong)` · `Zoom Out 2x` `Zoom Out 1.5x` `custom zoom 1.3` · `⬅️` `➡️`" in single
    assert single.endswith("`vary strong` / `强烈变化`\n")
    assert render.follow_ups_line([], grid=False) == ""


def test_numbered_list_drops_keycaps() -> None:
    text = render.numbered(["1️⃣ a red fox, --ar 1:1", "2️⃣ *bold*", "", "3. plain"])
    assert text == "1. a red fox, --ar 1:1\n2. \\*bold\\*\n3. plain\n\n"


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0 and estimate_tokens("abcd") == 1 and estimate_tokens("abcde") == 2


# --- request reading ----------------------------------------------------------------------------


def read(body: object) -> ChatRequest:
    """A body as the endpoint reads it: strict decoding, then the reduction to a turn."""
    return parse_chat_request(decode_json(msgspec.json.encode(body), ChatCompletionRequest))


def test_parse_parts_and_bare_image_strings() -> None:
    req = read(
        {
            "model": "niji",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "system", "content": "hi"},
                {"role": "assistant", "content": None},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "blend"},
                        {"type": "image_url", "image_url": {"url": " http://x/a.png "}},
                        {"type": "image_url", "image_url": "data:image/png;base64,AA"},
                        {"type": "input_audio", "input_audio": {}},
                    ],
                },
            ],
        }
    )
    assert req.model == "niji" and req.stream and req.include_usage
    assert req.messages[-1] == ChatMessageIn(role="user", text="blend", image_urls=("http://x/a.png", "data:image/png;base64,AA"))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "model": 3}, "model"),
        ({"messages": [{"role": "user", "content": "x"}], "stream_options": []}, "stream_options"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ({"messages": [{"role": "user", "content": "a\u0000b"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "\u001b[31m"}]}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}] * 1001}, "messages"),
        ([], None),
    ],
)
def test_parse_refusals(body: object, param: str | None) -> None:
    with pytest.raises((OpenAIError, BodyError)) as err:
        read(body)
    got = err.value.body.param if isinstance(err.value, OpenAIError) else err.value.param
    assert got == param, err.value


def test_deep_nesting_is_a_body_error_not_a_crash() -> None:
    deep = b'{"messages":[{"role":"user","content":"x"}],"extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(BodyError, match="nested too deeply"):
        decode_json(deep, ChatCompletionRequest)


def test_n_one_is_fine() -> None:
    assert read({"messages": [{"role": "user", "content": "x"}], "n": 1}).messages[0].text == "x"


# --- masks --------------------------------------------------------------------------------------


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _read(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_openai_mask_transparent_becomes_white_at_the_target_size() -> None:
    mask = Image.new("RGBA", (10, 10), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 5, 5))
    out = _read(midjourney_mask(_png(mask), 20, 20))
    assert out.format == "PNG" and out.size == (20, 20) and out.mode == "L"
    assert out.getpixel((2, 2)) == 255 and out.getpixel((15, 15)) == 0
    assert out.getbbox() == (0, 0, 10, 10)


def test_mask_without_transparency_reads_white_as_the_area() -> None:
    mask = Image.new("RGB", (8, 8), (0, 0, 0))
    mask.paste((255, 255, 255), (4, 4, 8, 8))
    out = _read(midjourney_mask(_png(mask), 8, 8))
    assert out.getpixel((6, 6)) == 255 and out.getpixel((1, 1)) == 0
    opaque_rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    opaque_rgba.paste((255, 255, 255, 255), (0, 0, 2, 2))
    assert _read(midjourney_mask(_png(opaque_rgba), 8, 8)).getpixel((0, 0)) == 255


def test_mask_that_marks_nothing_is_refused() -> None:
    with pytest.raises(MaskError):
        midjourney_mask(_png(Image.new("RGBA", (8, 8), (0, 0, 0, 255))), 8, 8)


# --- our results --------------------------------------------------------------------------------


def test_classify_grid_tiles_singles_and_converted_copies() -> None:
    grid = grid_job()
    assert is_grid_job(grid) and not is_grid_job(single_job())
    whole = classify(grid, grid.image.key)  # type: ignore[union-attr]
    assert whole is not None and whole.kind == "grid"
    tile = classify(grid, grid.images[2].key)
    assert tile is not None and (tile.kind, tile.index) == ("tile", 3)
    # a jpeg copy made for output_format is named after the original's token
    copy = classify(grid, f"{J1}/{'q' * 26}-{'y' * 26}-3-jpe.jpg")
    assert copy is not None and (copy.kind, copy.index) == ("tile", 3)
    assert classify(grid, f"{J1}/{'p' * 26}-preview-1.webp") is None
    assert classify(grid, "not a key") is None
    up = single_job()
    single = classify(up, up.image.key)  # type: ignore[union-attr]
    assert single is not None and single.kind == "single"
    failed = grid_job(status=JobStatus.FAILURE)
    assert classify(failed, failed.images[0].key) is None
