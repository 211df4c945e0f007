"""Prompt text: the `--flag value` parameters and the normalisation used to match a prompt we
sent against the one Midjourney echoes back (it collapses spaces, turns `—` into `--` and
replaces links with `<https://s.mj.run/...>`)."""

from __future__ import annotations

import re

import msgspec

_URL_RE = re.compile(r"<?https?://[^\s>]+>?")
_SPACE_RE = re.compile(r"\s+")
# A flag is `--name` followed by everything up to the next flag; values may hold spaces
# (`--no text, people`) so they are not split on whitespace.
_FLAG_RE = re.compile(r"(?:^|\s)--([a-zA-Z][\w-]*)((?:(?!\s--[a-zA-Z]).)*)", re.S)

MODE_FLAGS = ("fast", "relax", "turbo")


class ParsedPrompt(msgspec.Struct, frozen=True):
    text: str  # the prompt without its flags (image links kept)
    flags: dict[str, str]  # flag name (lower case) -> value ("" for bare flags); the last one wins
    image_urls: tuple[str, ...] = ()  # leading image-prompt links


def canonical_dashes(prompt: str) -> str:
    return prompt.replace("\u2014", "--").replace("\u2013", "--")


def parse_prompt(prompt: str) -> ParsedPrompt:
    prompt = canonical_dashes(prompt).strip()
    first = _FLAG_RE.search(prompt)
    text = prompt[: first.start()].strip() if first else prompt
    flags: dict[str, str] = {}
    for m in _FLAG_RE.finditer(prompt):
        flags[m.group(1).lower()] = m.group(2).strip()
    images: list[str] = []
    for word in text.split():
        if _URL_RE.fullmatch(word):
            images.append(word.strip("<>"))
        else:
            break
    return ParsedPrompt(text=text, flags=flags, image_urls=tuple(images))


def normalize_for_match(prompt: str) -> str:
    """A loose, stable key for comparing prompts: links become a placeholder, dashes canonical,
    whitespace collapsed, case folded. The speed flags are left out: clients add them, and
    whether Midjourney echoes them does not change which job it is."""
    s = strip_flags(prompt, *MODE_FLAGS)
    s = _URL_RE.sub("<link>", s)
    s = _SPACE_RE.sub(" ", s).strip().casefold()
    return s


def strip_flags(prompt: str, *names: str) -> str:
    """Remove the named flags (with their values) from a prompt."""
    wanted = {n.lower() for n in names}

    def drop(m: re.Match[str]) -> str:
        return "" if m.group(1).lower() in wanted else m.group(0)

    return _SPACE_RE.sub(" ", _FLAG_RE.sub(drop, canonical_dashes(prompt))).strip()


def has_flag(prompt: str, name: str) -> bool:
    return name.lower() in parse_prompt(prompt).flags
