"""An account's health: its state, why it is in it, and who is told. One set of rules for every
kind of account, so the scheduler sees them all behave alike."""

from __future__ import annotations

import logging

from adapter.backends.base import AccountState, AccountStatus, StateListener

log = logging.getLogger(__name__)


class AccountHealthMixin:
    """State bookkeeping for an Account. Subclasses provide `id`, `kind`, `status()` and
    `_connected()` (whether the account could work right now if nothing stopped it)."""

    kind: str
    _state: AccountState = AccountState.STOPPED
    _reason: str | None = None
    _until_ms: int | None = None  # when a cooling down is expected to clear (epoch ms)

    @property
    def id(self) -> str:  # pragma: no cover - provided by the account
        raise NotImplementedError

    def status(self) -> AccountStatus:  # pragma: no cover - provided by the account
        raise NotImplementedError

    def _connected(self) -> bool:
        return True

    @property
    def _listeners(self) -> list[StateListener]:
        listeners: list[StateListener] | None = self.__dict__.get("_health_listeners")
        if listeners is None:
            listeners = self.__dict__["_health_listeners"] = []
        return listeners

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def pause(self, reason: str) -> None:
        """Stop taking work until an operator resumes the account (a captcha, a pending
        moderation message, or an operator's own decision)."""
        if self._state is not AccountState.DISABLED:
            self._set_state(AccountState.PAUSED, reason)

    def resume(self) -> None:
        if self._state is AccountState.PAUSED:
            self._back_to_work()

    def _back_to_work(self) -> None:
        """Out of a pause or a cooling down: ready, or reconnecting if the link is down."""
        self._set_state(AccountState.READY if self._connected() else AccountState.RECONNECTING, None)

    def _set_state(self, state: AccountState, reason: str | None, *, until_ms: int | None = None) -> None:
        if self._state is AccountState.DISABLED and state is not AccountState.STOPPED:
            return  # disabled is final until an operator fixes the account and restarts
        if state is self._state and reason == self._reason and until_ms == self._until_ms:
            return
        self._until_ms = until_ms
        level = logging.WARNING if state in (AccountState.PAUSED, AccountState.DISABLED) else logging.INFO
        log.log(level, "%s account %s %s%s", self.kind, self.id, state.value, f": {reason}" if reason else "")
        self._state, self._reason = state, reason
        self._emit_state()

    def _emit_state(self) -> None:
        st = self.status()
        for listener in list(self._listeners):
            try:
                listener(st)
            except Exception:
                log.exception("account listener failed")
