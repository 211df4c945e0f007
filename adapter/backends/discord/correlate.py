"""Which running job a bot message belongs to.

Midjourney's messages are tied back to the interaction that started a job in decreasing order of
certainty: the nonce (only on the first message), the interaction id (interaction_metadata on
later ones), the progress message id, the job hash (the progress image names it before the final
message does), the source message of a follow-up, and only then the normalised prompt. Two jobs
with the same prompt stay distinct because every stronger key is tried first and a message is
never matched by prompt to a job that another, stronger key already explains.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Literal

from adapter.backends.base import EventSink, JobOutput
from adapter.backends.discord.messages import MjMessage
from adapter.domain.actions import Action
from adapter.domain.buttons import ButtonAction
from adapter.domain.prompt import normalize_for_match

OpKind = Literal["imagine", "button", "describe", "blend", "shorten", "info", "mode", "recover"]


class Pending:
    """One operation in flight on an account."""

    def __init__(
        self,
        *,
        kind: OpKind,
        emit: EventSink,
        prompt: str | None = None,
        source_message_id: str | None = None,
        button: ButtonAction | None = None,
        application_id: str = "",
        modal_prompt: str | None = None,
    ) -> None:
        self.kind = kind
        self.application_id = application_id
        self.modal_prompt = modal_prompt  # the answer for a modal Midjourney may open
        self.emit = emit
        self.nonces: set[str] = set()
        self.interaction_ids: set[str] = set()
        self.message_ids: set[str] = set()  # progress messages we have seen for it
        # the ones that stay in channel history (not ephemeral): what reconciliation looks for
        self.anchors: set[str] = set()
        self.sent_at_ms: int | None = None  # wall clock of the last POST, for history look-ups
        self.job_hash: str | None = None
        self.prompt_key = normalize_for_match(prompt) if prompt else None
        self.source_message_id = source_message_id
        self.button = button
        self.created = time.monotonic()
        self.seen_message = False
        self.future: asyncio.Future[JobOutput] = asyncio.get_running_loop().create_future()
        # modal flows: resolved with the INTERACTION_(IFRAME_)MODAL_CREATE data
        self.modal: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # mode switches and other commands without a job message end on INTERACTION_SUCCESS
        self.acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.delete_timer: asyncio.TimerHandle | None = None
        self.cancelling = False  # ❌ was put on its progress message: a delete is the cancel

    @property
    def done(self) -> bool:
        return self.future.done()


def _variant_fits(p: Pending, m: MjMessage) -> bool:
    """Whether a follow-up's message could be the result of this pending button press."""
    if p.button is None or not p.button.known or p.button.action is Action.ANIMATE:
        # buttons whose result wording we do not catalogue (animate, enhance, anything new):
        # the wording cannot rule them out
        return True
    if m.index is not None and p.button.action is Action.UPSCALE and m.index != p.button.index:
        return False
    if m.pan is not None and p.button.pan is not None and m.pan != p.button.pan:
        return False
    actions = m.candidate_actions
    return not actions or p.button.action in actions  # unknown wording: do not rule it out


class Registry:
    def __init__(self) -> None:
        self._pending: list[Pending] = []
        self._claimed: OrderedDict[str, None] = OrderedDict()  # final messages given to a job

    # A final message can only be claimed again by a late duplicate event or a recovery that
    # reads history, both close in time: remembering the newest few thousand is enough, and it
    # keeps a long-running account's memory flat.
    CLAIM_MEMORY = 5000

    def claim(self, message_id: str) -> None:
        self._claimed[message_id] = None
        self._claimed.move_to_end(message_id)
        while len(self._claimed) > self.CLAIM_MEMORY:
            self._claimed.popitem(last=False)

    def is_claimed(self, message_id: str) -> bool:
        return message_id in self._claimed

    def add(self, p: Pending) -> None:
        self._pending.append(p)

    def remove(self, p: Pending) -> None:
        if p in self._pending:
            self._pending.remove(p)
        if p.delete_timer:
            p.delete_timer.cancel()

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._pending))

    def __len__(self) -> int:
        return len(self._pending)

    def by_nonce(self, nonce: str | None) -> Pending | None:
        if nonce:
            for p in self._pending:
                if nonce in p.nonces:
                    return p
        return None

    def by_message(self, message_id: str) -> Pending | None:
        for p in self._pending:
            if message_id in p.message_ids:
                return p
        return None

    def match(self, m: MjMessage) -> Pending | None:
        live = [p for p in self._pending if not p.done and p.kind != "mode"]
        if m.nonce:
            for p in live:
                if m.nonce in p.nonces:
                    return p
        if m.interaction_id:
            for p in live:
                if m.interaction_id in p.interaction_ids:
                    return p
        if m.message_id:
            for p in live:
                if m.message_id in p.message_ids:
                    return p
        if m.job_hash:
            for p in live:
                if p.job_hash == m.job_hash:
                    return p
        # weaker keys: only among jobs that no stronger key explains and that are of the right kind
        candidates = [p for p in live if not (m.interaction_id and p.interaction_ids and m.interaction_id not in p.interaction_ids)]
        if m.reference_message_id:
            refs = [p for p in candidates if p.source_message_id == m.reference_message_id and _variant_fits(p, m)]
            # a press whose action the wording names beats one that merely cannot be ruled out
            # (animate, enhance, unknown buttons)
            named = [p for p in refs if p.button is not None and p.button.action in m.candidate_actions]
            if named or refs:
                return min(named or refs, key=lambda p: p.created)
        if m.prompt:
            key = normalize_for_match(m.prompt)
            same = [
                p
                for p in candidates
                if p.prompt_key and p.prompt_key == key and (p.job_hash is None or p.job_hash == m.job_hash)
            ]
            # A new progress message goes to the oldest job that has not got one yet; a final
            # one to the oldest that is still waiting for its result.
            if m.kind in ("waiting", "progress", "queued"):
                fresh = [p for p in same if not p.message_ids]
                if fresh:
                    return min(fresh, key=lambda p: p.created)
            if same:
                return min(same, key=lambda p: p.created)
        return None
