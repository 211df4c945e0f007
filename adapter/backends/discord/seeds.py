"""Seeds: Midjourney tells a job's seed only in a direct message, sent when the user reacts with
✉️ to the job's message. The DM reads

    **<prompt>**
    **Job ID**: <job hash>
    **seed** <number>

(the image is usually attached too). This module reads such a DM and keeps the callers waiting
for one: a DM is matched to its job by the job hash it names, never by order of arrival.
Pure parsing plus a small registry of futures; no I/O.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from adapter.backends.discord import message_text as text
from adapter.backends.discord.messages import DEFAULT_BOT_IDS
from adapter.domain.buttons import UUID_RE

ENVELOPE = "\u2709\ufe0f"  # ✉️ (U+2709 + VARIATION SELECTOR-16), as Discord clients send it
CANCEL = "\u274c"  # ❌

# `**Job ID**: <uuid>` and `**seed** 123` (also tolerated: `**Seed**: 123`, `**Job ID:** <uuid>`)
_JOB_ID = re.compile(rf"\*\*\s*job\s*id\s*:?\s*\*\*\s*:?\s*(?P<h>{UUID_RE})", re.IGNORECASE)
_SEED = re.compile(r"\*\*\s*seed\s*:?\s*\*\*\s*:?\s*(?P<seed>\d{1,10})\b", re.IGNORECASE)
MAX_SEED = 4294967295
_JOB_LINE = "** - <@"  # `**<prompt>** - <@uid> ...`: a job's status line


class SeedReply(msgspec.Struct, frozen=True):
    job_hash: str | None  # None when the DM names no job (then only a single waiter may take it)
    seed: str
    message_id: str = ""
    channel_id: str = ""


def _texts(message: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        out.append(content)
    for embed in message.get("embeds") or []:
        if not isinstance(embed, Mapping):
            continue
        parts = [embed.get("title"), embed.get("description")]
        for field in embed.get("fields") or []:
            if isinstance(field, Mapping):
                parts.append(f"**{field.get('name')}** {field.get('value')}")
        out.append("\n".join(p for p in parts if isinstance(p, str)))
    return out


def parse_seed_reply(message: object, *, bot_ids: Collection[str] = DEFAULT_BOT_IDS) -> SeedReply | None:
    """The seed a Midjourney bot DM announces, or None for any other message. Never raises."""
    if not isinstance(message, Mapping):
        return None
    author = message.get("author")
    author_id = author.get("id") if isinstance(author, Mapping) else None
    if str(author_id) not in bot_ids:
        return None
    for body in _texts(message):
        seed = _SEED.search(body)
        if seed is None or int(seed["seed"]) > MAX_SEED:
            continue
        job = _JOB_ID.search(body)
        if job is None and _JOB_LINE in body:
            continue  # a job message whose prompt happens to read "**seed** 5", not a DM
        job_hash = job["h"].lower() if job else None
        if job_hash is None:
            for att in message.get("attachments") or []:
                if isinstance(att, Mapping) and isinstance(att.get("url"), str):
                    job_hash = text.job_hash_from_url(att["url"])
                    if job_hash:
                        break
        return SeedReply(
            job_hash=job_hash,
            seed=str(int(seed["seed"])),
            message_id=str(message.get("id") or ""),
            channel_id=str(message.get("channel_id") or ""),
        )
    return None


class SeedWaiters:
    """Callers waiting for the seed DM of a job hash. Several callers asking for the same job
    share one future (and so one ✉️ reaction)."""

    def __init__(self) -> None:
        self._by_hash: dict[str, asyncio.Future[str]] = {}

    def get(self, job_hash: str) -> asyncio.Future[str] | None:
        return self._by_hash.get(job_hash)

    def wait_for(self, job_hash: str) -> asyncio.Future[str]:
        fut = self._by_hash.get(job_hash)
        if fut is None or fut.done():
            fut = self._by_hash[job_hash] = asyncio.get_running_loop().create_future()
        return fut

    def discard(self, job_hash: str, fut: asyncio.Future[str]) -> None:
        if self._by_hash.get(job_hash) is fut:
            del self._by_hash[job_hash]

    def deliver(self, reply: SeedReply) -> bool:
        """Resolve the waiter the DM belongs to; True if one took it."""
        key = reply.job_hash
        if key is None:
            # a DM that names no job: only unambiguous with exactly one waiter
            open_ = [h for h, f in self._by_hash.items() if not f.done()]
            if len(open_) != 1:
                return False
            key = open_[0]
        fut = self._by_hash.get(key)
        if fut is None or fut.done():
            return False
        fut.set_result(reply.seed)
        return True
