"""Prompt translation, the part without I/O: whether a prompt needs translating into English, and
the prompt taken apart into the words a translator may rewrite and the pieces Midjourney must
get exactly as written.

A prompt needs translating when its words (not its links, placeholders or `--flags`) hold a
letter of a script other than Latin: Chinese, Japanese, Korean, Cyrillic, Arabic, Greek, ...
Latin-script languages (French, Spanish, ...) are not detected: the rule is cheap and
predictable, never a guess.

Kept as written: leading image links and any other link, `<...>` placeholders (`<image>`,
Discord's `<:emoji:id>`), `::` multi-prompt separators with their weights (`cat::2 dog::-0.5`),
and every `--flag` with its value, except the value of `--no`, which is words (a negative
prompt) and is translated with the rest. Leading and trailing kept pieces never reach the
translator; kept pieces between words are replaced by numbered masks (`{{1}}`, `{{2}}`, ...)
that the translator must hand back once each, in order. An answer that lost, repeated or
reordered a mask is refused, never patched.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import msgspec

# a run of em/en dashes at the start of a word before a flag name is how phones and Chinese
# input methods write `--` (`——ar 16:9`); Midjourney reads `—` as `--`
_DASH_FLAG_RE = re.compile(r"(?<!\S)[\u2014\u2013]+(?=[a-zA-Z])")
_FLAG_START_RE = re.compile(r"(?<!\S)--[a-zA-Z]")
# a flag and its value, up to the next flag (values may hold spaces: `--no text, people`)
_FLAG_RE = re.compile(r"--([a-zA-Z][\w-]*)((?:(?!\s--[a-zA-Z]).)*)", re.S)
# links are ASCII (so Chinese text right after a link is not taken into it)
_LINK = r"<?https?://[\x21-\x3b\x3d\x3f-\x7e]+>?"
_PLACEHOLDER = r"<[^<>\n]{1,200}>"
_WEIGHT = r"::-?\d*(?:\.\d+)?"
_MASK = r"\{\{\s*\d+\s*\}\}"
_KEPT_RE = re.compile(f"{_LINK}|{_PLACEHOLDER}|{_WEIGHT}|{_MASK}")
_MASK_RE = re.compile(r"\{\{\s*(\d+)\s*\}\}")
_SPACE_RE = re.compile(r"\s+")
# what a chatty model puts before the answer
_LABEL_RE = re.compile(r"^(?:english(?: translation)?|translation|translated(?: text| prompt)?)\s*[:\uff1a]\s*", re.I)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u300c": "\u300d", "\u300e": "\u300f"}
# letters that are not in a script: the micro sign, the ordinal indicators
_NOT_A_SCRIPT = {"\u00b5", "\u00aa", "\u00ba"}

MASK_INSTRUCTIONS = (
    "Placeholders of the form {{1}}, {{2}}, ... stand for parts that must not change: keep every "
    "one exactly as written, once each, in the same order."
)


class UnmaskError(ValueError):
    """The translator's answer cannot be put back together with the kept pieces."""


@lru_cache(maxsize=4096)
def _foreign_letter(ch: str) -> bool:
    if ch.isascii() or ch in _NOT_A_SCRIPT or not unicodedata.category(ch).startswith("L"):
        return False
    return "LATIN" not in unicodedata.name(ch, "LATIN")


def needs_translation(text: str) -> bool:
    """True when the text holds a letter of a script other than Latin."""
    return not text.isascii() and any(_foreign_letter(ch) for ch in text)


class _Piece(msgspec.Struct, frozen=True):
    text: str
    kept: bool
    weight: bool = False  # a `::` separator: it sticks to the word before it when it did


def _split(prompt: str) -> list[_Piece]:
    """The prompt as consecutive pieces; their texts joined give the prompt back."""
    pieces: list[_Piece] = []

    def words(text: str) -> None:
        pos = 0
        for m in _KEPT_RE.finditer(text):
            if m.start() > pos:
                pieces.append(_Piece(text[pos : m.start()], kept=False))
            if m.group(0):
                pieces.append(_Piece(m.group(0), kept=True, weight=m.group(0).startswith("::")))
            pos = m.end()
        if pos < len(text):
            pieces.append(_Piece(text[pos:], kept=False))

    first = _FLAG_START_RE.search(prompt)
    body, flags = (prompt[: first.start()], prompt[first.start() :]) if first else (prompt, "")
    words(body)
    pos = 0
    for m in _FLAG_RE.finditer(flags):
        if m.start() > pos:  # the space between two flags
            pieces.append(_Piece(flags[pos : m.start()], kept=True))
        value = m.group(2)
        if m.group(1).lower() == "no" and value.strip():
            pieces.append(_Piece(flags[m.start() : m.start(2)], kept=True))
            pieces.append(_Piece(value, kept=False))  # a negative prompt: words
        else:
            pieces.append(_Piece(m.group(0), kept=True))
        pos = m.end()
    if pos < len(flags):
        pieces.append(_Piece(flags[pos:], kept=True))
    return pieces


class MaskedPrompt(msgspec.Struct, frozen=True):
    """A prompt split for a translator: `text` goes to it; `head`, `tail` and `kept` (what the
    masks {{1}}..{{n}} stand for) come back as written."""

    head: str
    text: str
    kept: tuple[str, ...]
    stick: tuple[bool, ...]  # per mask: no space between it and the words before it
    tail: str
    tail_sticks: bool = False  # the tail starts with a `::` glued to the last words

    def unmask(self, answer: str) -> str:
        """The translated prompt: the answer with the kept pieces back in place, whitespace
        collapsed. Raises UnmaskError when the answer cannot be trusted to hold them."""
        answer = _SPACE_RE.sub(" ", answer).strip()
        answer = _unwrap(answer, self.text)
        found = [int(n) for n in _MASK_RE.findall(answer)]
        if found != list(range(1, len(self.kept) + 1)):
            raise UnmaskError(f"expected the masks 1..{len(self.kept)} in order, found {found or 'none'}")
        segments = [s.strip() for s in _MASK_RE.split(answer)[::2]]
        if not "".join(segments).strip():
            raise UnmaskError("the answer has no words")
        out = [self.head, " ", segments[0]]
        for kept, stick, words in zip(self.kept, self.stick, segments[1:], strict=True):
            out += ["" if stick else " ", kept, " ", words]
        out += ["" if self.tail_sticks else " ", self.tail]
        return _SPACE_RE.sub(" ", "".join(out)).strip()


def _unwrap(answer: str, asked: str) -> str:
    """Take off a label ("Translation:") or quotes around the whole answer that the question
    did not have."""
    if not _LABEL_RE.match(asked):
        answer = _LABEL_RE.sub("", answer, count=1)
    close = _QUOTES.get(answer[:1])
    if close and len(answer) >= 2 and answer.endswith(close) and not asked.startswith(answer[0]):
        answer = answer[1:-1].strip()
    return answer


def mask_prompt(prompt: str) -> MaskedPrompt | None:
    """The prompt split for translation, or None when it has nothing to translate (no words, or
    only Latin-script words): then it goes to Midjourney exactly as written."""
    if prompt.isascii():
        return None
    prompt = _DASH_FLAG_RE.sub("--", prompt)
    pieces = _split(prompt)
    wordy = [i for i, p in enumerate(pieces) if not p.kept and p.text.strip()]
    if not wordy or not needs_translation("".join(pieces[i].text for i in wordy)):
        return None
    first, last = wordy[0], wordy[-1]
    text: list[str] = []
    kept: list[str] = []
    stick: list[bool] = []
    i = first
    while i <= last:
        piece = pieces[i]
        if not piece.kept:
            text.append(piece.text)
            i += 1
            continue
        # consecutive kept pieces (and the blanks between them) become one mask
        j = i
        while j + 1 <= last and (pieces[j + 1].kept or not pieces[j + 1].text.strip()):
            j += 1
        kept.append("".join(p.text for p in pieces[i : j + 1]).strip())
        stick.append(piece.weight and bool(text) and not text[-1][-1:].isspace())
        text.append(f"{{{{{len(kept)}}}}}")
        i = j + 1
    return MaskedPrompt(
        head="".join(p.text for p in pieces[:first]).strip(),
        text=_SPACE_RE.sub(" ", "".join(text)).strip(),
        kept=tuple(kept),
        stick=tuple(stick),
        tail="".join(p.text for p in pieces[last + 1 :]).strip(),
        tail_sticks=last + 1 < len(pieces) and pieces[last + 1].weight and not pieces[last].text[-1:].isspace(),
    )
