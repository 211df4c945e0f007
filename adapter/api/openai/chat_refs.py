"""Which of our jobs a chat conversation talks about, read from the messages alone.

Chat UIs keep no state for us, so the answer we stream carries its job twice: in every image
URL (`/images/<job id>/<file>`) and as a short visible reference (`job j_...`) written before
the first image, so that even a reply cut off early, or a UI that drops images from the
history, still says which job it was about. Only assistant messages are read: a user pasting
some URL must not pick the job a follow-up acts on. Pure code: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from adapter.api.openai.protocol_chat import ChatMessageIn
from adapter.domain.job_ids import JOB_ID_RE
from adapter.media.store import job_id_from_key, key_from_url

# "job `j_...`" as rendered; tolerant of the backticks being dropped by a UI that copies text.
_REF_RE = re.compile(r"\bjob[:\s]\s*`?(?P<id>j_[0-9a-z]{20})(?![0-9a-z])`?", re.IGNORECASE)
_URL_RE = re.compile(r"https?://[^\s<>()\[\]\"'`]+")


def job_ref(job_id: str) -> str:
    """The visible reference written into answers (and found again by `job_ids_in_text`)."""
    return f"job `{job_id}`"


def job_ids_in_text(text: str, extra_urls: Iterable[str] = ()) -> list[str]:
    """Job ids named in a message, in order of appearance, each once: visible references and
    our image URLs (in the markdown, or given separately as image parts)."""
    found: list[tuple[int, str]] = []
    for m in _REF_RE.finditer(text):
        found.append((m.start(), m["id"]))
    for m in _URL_RE.finditer(text):
        if job_id := _job_of_url(m.group()):
            found.append((m.start(), job_id))
    ordered = [job_id for _, job_id in sorted(found, key=lambda p: p[0])]
    for url in extra_urls:
        if job_id := _job_of_url(url):
            ordered.append(job_id)
    seen: dict[str, None] = {}
    for job_id in ordered:
        seen.setdefault(job_id, None)
    return list(seen)


def _job_of_url(url: str) -> str | None:
    key = key_from_url(url.rstrip(".,;:!?"))
    job_id = job_id_from_key(key) if key else None
    return job_id if job_id and JOB_ID_RE.match(job_id) else None


def conversation_job_ids(messages: Sequence[ChatMessageIn], limit: int = 20) -> list[str]:
    """Job ids the assistant messages refer to, newest message first; within one message the
    last mention first (the result comes after anything it quotes). At most `limit` ids."""
    out: list[str] = []
    for message in reversed(messages):
        if message.role != "assistant":
            continue
        for job_id in reversed(job_ids_in_text(message.text, message.image_urls)):
            if job_id not in out:
                out.append(job_id)
                if len(out) >= limit:
                    return out
    return out


def last_user_message(messages: Sequence[ChatMessageIn]) -> ChatMessageIn:
    """The user message that decides what happens (a trailing assistant prefill is ignored)."""
    for message in reversed(messages):
        if message.role == "user":
            return message
    raise ValueError("no user message")
