"""Chat UIs' own background requests ("housekeeping"), recognised and answered without a job.

Open WebUI, LobeChat and NextChat ask the chat model for chores of their own: a title for the
chat, tags, follow-up suggestions after every answer, search queries, autocompletion, an emoji,
a summary of the history to keep as memory. Sent to this adapter, each used to become a
Midjourney imagine of the chore's text: Open WebUI alone spent three extra jobs per chat turn.
Here such a request is recognised and answered at once, from the conversation itself, in the
format it asks for (JSON with the keys the template names, or plain text).

Recognition must never swallow a real prompt, and the UIs reword their templates between
versions, so no template is matched literally. Independent signals are read instead, and a
request counts only when it says which chore it is (a title, tags, ...) and enough signals agree:

- addressed: it speaks to the model about a task ("### Task:", "Your task is"; in a system
  message also a persona, "You are a ...")
- sections: it is laid out as a spec (`### Guidelines` / `### Output` / "Rules:" headers)
- history: the conversation is quoted (`<chat_history>`, `USER: ...` lines, a fenced message)
  or attached as earlier assistant turns
- asks: it asks for a chore about the conversation (in English and Chinese; NextChat's title
  prompt also in its other UI languages)
- json: it asks for JSON and names the keys
- rules: it constrains the output (only the title, no punctuation, at most N words)
- answered: it is a system message after the assistant's answer, so the newest user message
  has its answer already and there is no new prompt to run (counts twice)

Every later turn of a chat has history attached, so a plain user message (quoting nothing,
after no few-shot examples) is the user's next prompt unless it asks for a title of the
conversation as NextChat does; a chat's own system prompt is read only when the newest message
is material rather than a prompt; a user message with Midjourney `--flags` outside any quote,
or with images, is never a chore. Pure code: the request in, the answer text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

import msgspec

from adapter.api.openai.protocol_chat import ChatMessageIn, ChatRequest
from adapter.domain.chat_grammar import parse_chat_command
from adapter.domain.prompt import parse_prompt

# Signals needed (with `asks` or `json` naming the chore among them).
THRESHOLD = 3
MAX_TITLE_WORDS = 6
MAX_TITLE_CHARS = 50
MAX_CJK_TITLE_CHARS = 12
MAX_TAGS = 3
MAX_FOLLOW_UPS = 10
EMOJI = "🎨"


class Kind(StrEnum):
    TITLE = "title"
    TAGS = "tags"
    FOLLOW_UPS = "follow_ups"
    QUERIES = "queries"
    AUTOCOMPLETE = "autocomplete"
    EMOJI = "emoji"
    IMAGE_PROMPT = "image_prompt"
    SUMMARY = "summary"
    AGENT_NAME = "agent_name"
    AGENT_DESCRIPTION = "agent_description"


# The JSON key each chore's answer goes under when the template asks for JSON without naming one
# we know.
_DEFAULT_KEY: dict[Kind, str] = {
    Kind.TITLE: "title",
    Kind.TAGS: "tags",
    Kind.FOLLOW_UPS: "follow_ups",
    Kind.QUERIES: "queries",
    Kind.AUTOCOMPLETE: "text",
    Kind.IMAGE_PROMPT: "prompt",
    Kind.SUMMARY: "summary",
}
_KIND_OF_KEY = {"title": Kind.TITLE, "tags": Kind.TAGS, "follow_ups": Kind.FOLLOW_UPS, "queries": Kind.QUERIES}
_KNOWN_KEYS = frozenset({"title", "tags", "follow_ups", "queries", "text", "prompt", "description", "summary", "emoji"})


class Turn(msgspec.Struct, frozen=True):
    role: str  # "user" or "assistant"
    text: str


class Housekeeping(msgspec.Struct, frozen=True, kw_only=True):
    """A recognised housekeeping request: the chore, how to answer, and why it was recognised."""

    kind: Kind
    json_keys: tuple[str, ...]  # the keys of the JSON object asked for; () = plain text
    signals: tuple[str, ...]  # the signals that agreed, for the log
    instruction: str  # the message that asks
    transcript: tuple[Turn, ...]  # the conversation it is about, oldest first
    material: str = ""  # the text an agent-meta chore is about (LobeChat's `输入: {...}`)


# --- reading the request ------------------------------------------------------------------------

# How much is read. The templates are a few KB and the conversations they quote a few more; a
# long instruction is read at both ends (the ask comes first in Open WebUI's, last in LobeChat's).
SCAN_CHARS = 16 * 1024
SYSTEM_SCAN_CHARS = 8 * 1024
MAX_SYSTEM_MESSAGES = 4
MAX_TURNS = 40

_ROLE_LINE = re.compile(r"^(user|assistant|system|human|ai)[ \t]*:[ \t]?", re.I | re.M)
_FENCE_OPEN = re.compile(r"(?:message|text|input)[ \t]*:[ \t]*```", re.I)
_PROMPT_LINE = re.compile(r"^prompt[ \t]*:[ \t]*", re.I | re.M)
_PROMPT_LIST = re.compile(r"提示词[ \t]*[:：][ \t]*\n")
_NUMBERED = re.compile(r"^[ \t]*\d+[.)][ \t]+(\S.*)$", re.M)
_FLAG = re.compile(r"(?:^|\s)--[a-zA-Z]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _scanned(text: str) -> str:
    if len(text) <= 2 * SCAN_CHARS:
        return text
    return text[:SCAN_CHARS] + "\n\n" + text[-SCAN_CHARS:]


def _cut_blocks(text: str, names: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """Take `<name>...</name>` blocks out of `text` (an unclosed one runs to the end; an opening
    tag right after a backtick is a mention, not a block). Returns the rest and the blocks as
    (name, content), in order. Linear: each tag is looked for once past the last position."""
    lower = text.lower()
    found: dict[str, int] = {}

    def next_open(name: str, pos: int) -> int:
        i = found.get(name, -2)
        if i == -1 or i >= pos:
            return i
        i = lower.find(f"<{name}>", pos)
        while i > 0 and lower[i - 1] == "`":
            i = lower.find(f"<{name}>", i + 1)
        found[name] = i
        return i

    rest: list[str] = []
    blocks: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        opens = [(i, n) for n in names if (i := next_open(n, pos)) != -1]
        if not opens:
            break
        i, name = min(opens)
        start = i + len(name) + 2
        close = lower.find(f"</{name}>", start)
        end = len(text) if close == -1 else close
        rest.append(text[pos:i])
        blocks.append((name, text[start:end]))
        pos = len(text) if close == -1 else close + len(name) + 3
    rest.append(text[pos:])
    return " ".join(rest), blocks


class _Parts(msgspec.Struct):
    """The instruction split into what it says (`ask`) and the material it quotes."""

    ask: str
    turns: list[Turn]
    material: str = ""
    embedded: bool = False  # the instruction quotes a conversation or a message


def _split_instruction(text: str) -> _Parts:
    text = _scanned(text)
    ask, history = _cut_blocks(text, ("chat_history", "conversation", "history"))
    turns = [t for _, block in history for t in _turns_of(block)]
    material = ""
    ask, quoted = _cut_blocks(ask, ("text", "type"))
    embedded = bool(history or quoted)
    if (m := _FENCE_OPEN.search(ask)) and (close := ask.find("```", m.end())) != -1:
        turns.append(Turn("user", ask[m.end() : close].strip()))
        embedded = True
        ask = ask[: m.start()] + ask[close + 3 :]
    if (i := ask.rfind("输入")) != -1 and (braced := _braced_input(ask[i + 2 :])) is not None:
        material, embedded, ask = braced, True, ask[:i]
    if m := _PROMPT_LIST.search(ask):
        turns.extend(Turn("user", p.strip()) for p in _NUMBERED.findall(ask[m.end() :]))
        embedded, ask = True, ask[: m.start()]
    prompt_lines = list(_PROMPT_LINE.finditer(ask))
    if prompt_lines and ask[: prompt_lines[-1].start()].rstrip(" \t").endswith("\n\n"):
        # Open WebUI 0.3: "...\n\nPrompt: <the user's message>" at the end
        last = prompt_lines[-1]
        turns.append(Turn("user", ask[last.end() :].strip()))
        embedded, ask = True, ask[: last.start()]
    if not turns and len(_ROLE_LINE.findall(ask)) >= 2:
        # a transcript written as "user: ... / assistant: ..." lines, the ask (if any) after it
        turns.extend(_role_blocks(ask))
        embedded = True
        ask = _ROLE_LINE.split(ask, maxsplit=1)[0] + "\n" + _tail_after_transcript(ask)
    return _Parts(ask=ask, turns=turns[-MAX_TURNS:], material=material, embedded=embedded)


def _braced_input(tail: str) -> str | None:
    """LobeChat's `输入: {text} [locale]`, given what follows 输入."""
    head = tail.lstrip(" \t")
    if not head[:1] in (":", "："):
        return None
    body = head[1:].lstrip()
    end = body.rfind("}")
    after = body[end + 1 :].strip() if end != -1 else ""
    if not body.startswith("{") or end == -1 or (after and not re.fullmatch(r"\[[\w-]+\]", after)):
        return None
    return body[1:end].strip()


def _turns_of(block: str) -> list[Turn]:
    _, tagged = _cut_blocks(block, ("user", "assistant"))
    return [Turn(name, content.strip()) for name, content in tagged] or _role_blocks(block)


def _role_blocks(text: str) -> list[Turn]:
    """`USER: ...` / `assistant: ...` segments; a segment runs until the next role line."""
    marks = list(_ROLE_LINE.finditer(text))
    out: list[Turn] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        who = m.group(1).lower()
        if who != "system":
            out.append(Turn("user" if who in ("user", "human") else "assistant", text[m.end() : end].strip()))
    return out


def _tail_after_transcript(text: str) -> str:
    """The last paragraph after the last role line, when there are several (LobeChat writes its
    ask after the transcript, separated by a blank line)."""
    marks = list(_ROLE_LINE.finditer(text))
    rest = text[marks[-1].end() :] if marks else text
    paragraphs = _PARAGRAPH_BREAK.split(rest)
    return paragraphs[-1] if len(paragraphs) > 1 else ""


def _instruction(messages: Sequence[ChatMessageIn]) -> int | None:
    """Index of the message that asks: the newest user or system message (an assistant prefill
    after it is ignored)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role in ("user", "system", "developer"):
            return i
    return None


# --- the signals --------------------------------------------------------------------------------

_TASK_OPENING = re.compile(r"^[ \t]*(?:#{1,4}[ \t]*task\b|<task>|your task is\b)", re.I | re.M)
# A persona ("You are a ...") addresses the model in a system message; typed by a user it is as
# likely a prompt ("You are a cat, ...").
_PERSONA = re.compile(r"^[ \t]*(?:you are (?:a|an)\b|you're (?:a|an)\b|你是一[名位个]|你需要)", re.I | re.M)
_SECTION = re.compile(
    r"^[ \t]*(?:#{2,4}[ \t]*\**[ \t]*(?:guidelines|output(?: rules)?|examples?|instructions|chat history|context|rules|requirements)\b"
    r"|(?:rules|requirements|guidelines|examples of \w+|output)[ \t]*:[ \t]*$)",
    re.I | re.M,
)
_VERB = r"(?:generate|create|give|write|provide|return|suggest|produce|make|come up with|summari[sz]e|extract|pick|choose|select)"
# What a chore is about. Image prompts ask for titles and themes too ("a title card", "以秋天为主题
# 的海报"); a chore asks about the conversation, the chat, the prompt.
_ABOUT = re.compile(
    r"\b(?:our|the|this|that|above|following)\s+(?:\w+\s+)?(?:conversation|chat|discussion|dialog(?:ue)?|prompt|sentence|message)s?\b"
    r"|对话|会话|這句話|这句话|聊天|上述|提示词|prompt",
    re.I,
)
# NextChat asks for its title in the UI's language: "a brief topic in four to five words, no
# punctuation". The word for title / topic alone is common in image prompts; with "four to five"
# (and the punctuation rule, a signal of its own) it is NextChat's.
_FOREIGN_TITLE = re.compile(
    r"テーマ|タイトル|주제|제목|\b(?:thema|titel|titre|sujet|título|titolo|tópico|tema|temaet|téma|titul|emne|emnet|overskrift|topik|judul"
    r"|konu|başlığ\w*|тем[уаы]|заголов\w*|chủ đề|tiêu đề)\b|موضوع|عنوان|বিষয়|থিম",
    re.I,
)
_FOUR_TO_FIVE = re.compile(
    r"(?:\b4\s*[-–~]\s*5|四到五|四から五|네 글자에서 다섯|vier bis fünf|quatre à cinq|cuatro a cinco|quattro o cinque|quatro a cinco"
    r"|fire til fem|четыр[её]х-пяти|štvor- až päť|čtyři až pět|dört ila beş|bốn đến năm|أربع إلى خمس|চার থেকে পাঁচ|empat hingga lima)"
    # ... words / characters
    r"\W{0,2}\S{0,3}?\s*(?:words?|wörter\w*|mots|palabras|parole|palavras|ord|slov\w*|kelime\w*|từ|kata|слов\w*|个字|字|文字|글자|단어|كلمات|শব্দ)",
    re.I,
)

# (kind, what asks for it, whether it must be about the conversation) in order: the first that
# matches names the chore. More specific chores come first ("a title with an emoji" is a title;
# "tags ... summary" is tags).
_ASKS: tuple[tuple[Kind, re.Pattern[str], bool], ...] = (
    (Kind.FOLLOW_UPS, re.compile(r"\bfollow[- ]?up (?:questions|prompts|suggestions)\b|后续问题", re.I), True),
    (Kind.QUERIES, re.compile(rf"\b{_VERB}\w*\b[^\n]{{0,80}}\bsearch quer(?:y|ies)\b", re.I), False),
    (Kind.AUTOCOMPLETE, re.compile(r"\bautocomplet\w*|\bcontinue the text\b", re.I), False),
    (Kind.IMAGE_PROMPT, re.compile(r"\bimage generation task\b|\bprompt for (?:an? )?image\b", re.I), False),
    (Kind.EMOJI, re.compile(r"facial expression|\bemoji expert\b|\bsingle emoji\b|一个\s*emoji|emoji\s*专家", re.I), False),
    (Kind.AGENT_NAME, re.compile(r"起名|角色名"), False),
    (Kind.AGENT_DESCRIPTION, re.compile(r"技能简介|角色技能"), False),
    (Kind.TAGS, re.compile(rf"\b{_VERB}\b[^\n.]{{0,60}}\btags\b|(?:提炼|总结|生成)[^，。\n]{{0,20}}标签", re.I), True),
    (Kind.TITLE, re.compile(rf"\b{_VERB}\b[^\n.]{{0,60}}\b(?:title|topic)\b|(?:返回|总结|生成|提炼)[^，。\n]{{0,20}}(?:标题|主题|主題|標題)", re.I), True),
    (Kind.SUMMARY, re.compile(r"\bsummari[sz](?:e|ing)\b|(?:总结|概括)[^，。\n]{0,10}(?:对话|会话|聊天)", re.I), True),
)
_JSON = re.compile(r"\bjson\b", re.I)
_JSON_KEY = re.compile(r"\"(\w+)\"\s*(?::|key\b|string\b|field\b|array\b)", re.I)
_BULLET_FIELD = re.compile(r"^[ \t]*-[ \t]*(description|summary)[ \t]*:", re.I | re.M)
_LATIN_UNITS = r"words?|characters?|chars|tokens|wörter|zeichen|mots|palabras|parole|palavras|kata|ord|tegn|slov|kelime\w*|слов\w*|символ\w*"
_RULES = re.compile(
    r"\b(?:respond|reply|output|return)\b[^\n.]{0,20}\bonly\b|\bonly (?:output|return|respond)\b|\bwithout any (?:lead-in|introduct\w*|additional|extra)"
    r"|\bno (?:explanations?|extra text|additional text|punctuation|markdown)\b|\bwithout explanation|must consist solely|\braw json\b|strictly return"
    r"|return an empty (?:string|list|array)|\bexclusively\b"
    # a length limit: "3-5 word title", "at most 6 words", "200 字以内", "unter 200 Zeichen"
    r"|\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten)(?:[ \t]*(?:-|to)[ \t]*(?:\d+|[a-z]+))?[- ]words?\b"
    rf"|\b\d+[ \t]*(?:{_LATIN_UNITS})\b|(?<!\d)\d+[ \t]*(?:字|個字|个字|文字|자|từ|كلمة|শব্দ)"
    # "no punctuation" in NextChat's UI languages
    r"|punctuation|标点|標點|句読点|문장 부호|satzzeichen|ponctuation|puntuación|punteggiatura|pontuação|препинания|noktalama|dấu câu|ترقيم"
    r"|interpunk\w*|tegnsætning|tegnsetting|tanda baca|বিরাম চিহ্ন"
    r"|不要解释|不需要包含|不要多余|直接返回|格式要求|以内|不超过",
    re.I,
)


def _asked(text: str, *, plain: bool) -> Kind | None:
    """The chore the text asks for. A plain user message (nothing quoted, no examples) is taken
    for a chore only when it asks for a title of the conversation the way NextChat does: any
    other wording is a prompt, even one that mentions tags, emojis or summaries."""
    about = bool(_ABOUT.search(text))
    for kind, pattern, needs_about in _ASKS:
        if plain and kind is not Kind.TITLE:
            continue
        if pattern.search(text) and (about or not needs_about):
            return kind
    if _FOREIGN_TITLE.search(text) and _FOUR_TO_FIVE.search(text):
        return Kind.TITLE
    return None


def _few_shot(turns: Sequence[Turn]) -> bool:
    """Examples before the material (LobeChat's agent-meta chores): several short answers, none
    of them ours."""
    answers = [t.text for t in turns if t.role == "assistant"]
    return len(answers) >= 2 and all(len(a) <= 40 and "job `" not in a for a in answers)


def recognise(req: ChatRequest) -> Housekeeping | None:
    """The housekeeping chore this request is, or None for anything that may be a real turn."""
    index = _instruction(req.messages)
    if index is None:
        return None
    inst = req.messages[index]
    if inst.image_urls:
        return None
    parts = _split_instruction(inst.text)
    if inst.role == "user" and not parts.embedded and _FLAG.search(inst.text):
        return None  # a prompt with Midjourney parameters, however it is worded
    attached = [Turn(m.role, m.text) for m in req.messages[:index] if m.role in ("user", "assistant")][-MAX_TURNS:]
    # System messages speak for the request only when the newest message is not a prompt of its
    # own: LobeChat puts its template in the system message and the material in the user one. A
    # chat's own system prompt ("You are a Midjourney artist. Output only ...") must not turn
    # the user's next prompt into a chore.
    examples = _few_shot(attached)
    plain = inst.role == "user" and not parts.embedded and not examples
    texts = [parts.ask]
    if not plain:
        systems = [m.text for i, m in enumerate(req.messages) if i != index and m.role in ("system", "developer")]
        texts += [t[:SYSTEM_SCAN_CHARS] for t in systems[:MAX_SYSTEM_MESSAGES]]
    said = "\n".join(texts)

    signals: list[str] = []
    score = 0

    def hit(name: str, weight: int = 1) -> None:
        nonlocal score
        signals.append(name)
        score += weight

    if _TASK_OPENING.search(said) or (not plain and _PERSONA.search(said)):
        hit("addressed")
    if _SECTION.search(said):
        hit("sections")
    if parts.embedded or any(t.role == "assistant" for t in attached):
        hit("history")
    kind = _asked(said, plain=plain)
    if kind is not None:
        hit("asks")
    keys = _json_keys(said)
    if keys:
        hit("json")
        if not plain:
            kind = kind or next((_KIND_OF_KEY[k] for k in keys if k in _KIND_OF_KEY), None)
    if _RULES.search(said):
        hit("rules")
    if inst.role != "user" and index > 0 and req.messages[index - 1].role == "assistant":
        # the newest user message has its answer already: nothing new to run
        hit("answered", 2)
        kind = kind or Kind.SUMMARY  # a summary is a harmless answer to whatever it asks
    if kind is None or score < THRESHOLD:
        return None
    if kind is Kind.SUMMARY and not keys and len(set(_BULLET_FIELD.findall(said))) == 2:
        keys = ("description", "summary")  # LobeChat's topic summary: two fields by JSON schema
    transcript = [*(t for t in attached if not examples), *parts.turns]
    return Housekeeping(
        kind=kind,
        json_keys=keys,
        signals=tuple(signals),
        instruction=inst.text,
        transcript=tuple(transcript),
        material=parts.material or (inst.text if examples else ""),
    )


def _json_keys(text: str) -> tuple[str, ...]:
    if not _JSON.search(text):
        return ()
    keys: dict[str, None] = {}
    for m in _JSON_KEY.finditer(text):
        if (key := m.group(1).lower()) in _KNOWN_KEYS:
            keys.setdefault(key, None)
    return tuple(keys)


# --- answering ----------------------------------------------------------------------------------


def answer(hk: Housekeeping) -> str:
    """The answer text: a JSON object with the keys asked for, or plain text."""
    values = _values(hk)
    if hk.json_keys:
        keys = [k for k in hk.json_keys if k in values] or [_DEFAULT_KEY.get(hk.kind, "text")]
        return msgspec.json.encode({k: values.get(k, "") for k in keys}).decode()
    plain = values.get("plain", "")
    return plain if isinstance(plain, str) else ""


def _values(hk: Housekeeping) -> dict[str, object]:
    prompts = user_prompts(hk.transcript)
    newest = prompts[-1] if prompts else _quoted_prompt(hk.transcript)
    if hk.kind is Kind.TITLE:
        title = short_title(newest) or "Midjourney"
        return {"title": title, "plain": title, "text": title}
    if hk.kind is Kind.TAGS:
        tags = main_words(_role_of(hk.material) if hk.material else newest) or ["General"]
        return {"tags": tags, "plain": ",".join(tags), "text": ",".join(tags)}
    if hk.kind is Kind.FOLLOW_UPS:
        follow = follow_ups(hk.transcript)
        return {"follow_ups": follow, "plain": "\n".join(follow), "text": "\n".join(follow)}
    if hk.kind is Kind.QUERIES:
        return {"queries": [], "plain": ""}
    if hk.kind is Kind.AUTOCOMPLETE:
        return {"text": "", "plain": ""}
    if hk.kind is Kind.EMOJI:
        return {"emoji": EMOJI, "plain": EMOJI, "text": EMOJI}
    if hk.kind is Kind.IMAGE_PROMPT:
        # Open WebUI's "generate an image" button: it hands this prompt to its own image engine
        # (this adapter's images API, when configured so). Imagining it here as well would pay
        # twice for one picture; the conversation's newest prompt, flags and all, is the prompt.
        return {"prompt": newest, "plain": newest, "text": newest}
    if hk.kind is Kind.AGENT_NAME:
        name = short_title(re.split(r"\b(?:who|that|which)\b", _role_of(hk.material))[0]) or "Midjourney"
        return {"plain": name, "text": name}
    if hk.kind is Kind.AGENT_DESCRIPTION:
        description = _first_sentence(_role_of(hk.material)) or "Makes images with Midjourney"
        return {"plain": description, "text": description}
    summary = summary_text(prompts)
    return {"summary": summary, "description": short_title(newest) or "Midjourney images", "plain": summary, "text": summary}


def user_prompts(transcript: Iterable[Turn]) -> list[str]:
    """The imagine prompts the user sent, oldest first: follow-up commands (`U2`, `放大第二张`,
    `help`) are not prompts."""
    out: list[str] = []
    for turn in transcript:
        text = turn.text.strip()
        if turn.role != "user" or not text:
            continue
        if parse_chat_command(text).kind == "imagine":
            out.append(text)
    return out


_QUOTE_LINE = re.compile(r"^>\s?(.+)$", re.M)
_MD_ESCAPED = re.compile(r"\\([\\`*_\[\]<>|~#$])")


def _quoted_prompt(transcript: Sequence[Turn]) -> str:
    """Without a user prompt in view (Open WebUI's title task sees two messages, the second a
    follow-up), the prompt our newest answer quotes under its header."""
    for turn in reversed(transcript):
        if turn.role == "assistant" and (m := _QUOTE_LINE.search(turn.text)):
            return _MD_ESCAPED.sub(r"\1", m.group(1)).strip()
    return ""


def _clean(prompt: str) -> str:
    """A prompt's words: Midjourney flags, image links and markup left out."""
    parsed = parse_prompt(prompt)
    text = parsed.text
    for url in parsed.image_urls:
        text = text.replace(url, " ")
    text = re.sub(r"<?https?://\S+>?", " ", text)
    return " ".join(text.split())


def _is_cjk(text: str) -> bool:
    cjk = sum(1 for c in text if "\u3040" <= c <= "\u30ff" or "\u3400" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af")
    return cjk * 2 >= len(text.replace(" ", "")) > 0


_WORD = re.compile(r"[^\W_](?:[\w'’-]*[^\W_])?")
_ARTICLES = frozenset({"a", "an", "the"})
_CJK_BREAK = re.compile(r"[，,。.;；:：!！?？、\s]+")


def short_title(prompt: str) -> str:
    """A few words naming the prompt, without flags or punctuation: "a lighthouse at dawn,
    oil painting --ar 3:2" -> "Lighthouse at dawn"."""
    text = _clean(prompt)
    if not text:
        return ""
    if _is_cjk(text):
        return next((s for s in _CJK_BREAK.split(text) if s), "")[:MAX_CJK_TITLE_CHARS]
    clause = text.split(",")[0]
    words = _WORD.findall(clause)
    if len(words) < 2:
        words = _WORD.findall(text)
    if len(words) > 1 and words[0].lower() in _ARTICLES:
        words = words[1:]
    out: list[str] = []
    for word in words[:MAX_TITLE_WORDS]:
        if len(" ".join([*out, word])) > MAX_TITLE_CHARS:
            break
        out.append(word)
    title = " ".join(out)
    return title[:1].upper() + title[1:]


_STOPWORDS = frozenset(
    "a an the and or of in on at by for from with without into onto over under near to very its his her their this that these those "
    "you your are who which will can help helps user users "
    "style photo image picture render rendering highly detailed ultra quality best art artwork".split()
)


def main_words(prompt: str) -> list[str]:
    """Up to three content words of a prompt, as tags."""
    text = _clean(prompt)
    if _is_cjk(text):
        return [s[:8] for s in _CJK_BREAK.split(text) if s][:MAX_TAGS]
    seen: dict[str, None] = {}
    for word in _WORD.findall(text):
        w = word.lower()
        if len(w) >= 3 and not w.isdigit() and w not in _STOPWORDS:
            seen.setdefault(w, None)
        if len(seen) >= MAX_TAGS:
            break
    return list(seen)


_NEXT_LINE = re.compile(r"^.*\bNext:.*$", re.M)
_CODE = re.compile(r"`([^`\n]+)`")


def follow_ups(transcript: Sequence[Turn]) -> list[str]:
    """What the newest answer offers to send next: the follow-up labels of its `Next:` line
    (`U1` ... `V4`, `vary strong`, ...), or, for a describe / shorten answer, its numbered
    prompts. Each is a message the user can send as it is."""
    for turn in reversed(transcript):
        if turn.role != "assistant":
            continue
        if m := _NEXT_LINE.search(turn.text):
            offered = m.group(0).split(" — ")[0]
            return _CODE.findall(offered)[:MAX_FOLLOW_UPS]
        numbered = [_MD_ESCAPED.sub(r"\1", p) for p in _NUMBERED.findall(turn.text)]
        return numbered[:MAX_FOLLOW_UPS]
    return []


def summary_text(prompts: Sequence[str]) -> str:
    if not prompts:
        return "A Midjourney image chat with no images made yet."
    recent = list(dict.fromkeys(_clean(p) for p in prompts if _clean(p)))[-10:]
    return "A Midjourney image chat. Prompts so far: " + "; ".join(recent) + "."


_PERSONA_OPENING = re.compile(r"^\s*(?:you are|you're|i am|i'm)\s+(?:an?\s+|the\s+)?|^\s*你是一?[名位个]?", re.I)


def _role_of(material: str) -> str:
    """An agent's role text without its "You are a" opening: "Midjourney artist who ..."."""
    return _PERSONA_OPENING.sub("", material, count=1)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    if _is_cjk(text):
        return re.split(r"[。！？!?]", text)[0][:40]
    sentence = re.split(r"(?<=[.!?])\s", text)[0]
    words = sentence.split()
    out = " ".join(words[:20]).rstrip(".")
    return out[:1].upper() + out[1:]
