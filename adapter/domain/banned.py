"""A local banned-word check run before a prompt costs a Midjourney job.

Matches whole words, case-insensitively, so that "grass" never trips on "ass" and "Scunthorpe"
passes; multi-word entries match as phrases with any whitespace between the words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A short default list in the spirit of Midjourney's published rules; operators extend or
# replace it through configuration.
DEFAULT_BANNED_WORDS: tuple[str, ...] = (
    "gore",
    "nsfw",
    "nude",
    "naked",
    "porn",
    "sexy",
    "torture",
    "dismembered",
    "decapitated",
    "bloodbath",
    "ass",
    "xxx",
)


class BannedWords:
    def __init__(self, words: Iterable[str]) -> None:
        cleaned = sorted({w.strip().casefold() for w in words if w and w.strip()}, key=len, reverse=True)
        self.words: tuple[str, ...] = tuple(cleaned)
        if cleaned:
            alternatives = "|".join(r"\s+".join(map(re.escape, w.split())) for w in cleaned)
            self._re: re.Pattern[str] | None = re.compile(rf"(?<![\w])(?:{alternatives})(?![\w])", re.IGNORECASE)
        else:
            self._re = None

    def find(self, prompt: str) -> str | None:
        """The first banned word in the prompt (as configured), or None. Links are ignored."""
        if self._re is None:
            return None
        text = re.sub(r"<?https?://\S+>?", " ", prompt)
        m = self._re.search(text)
        return re.sub(r"\s+", " ", m.group(0)).casefold() if m else None


def build_banned_words(extra: Iterable[str] = (), *, replace: bool = False) -> BannedWords:
    return BannedWords(tuple(extra) if replace else (*DEFAULT_BANNED_WORDS, *extra))
