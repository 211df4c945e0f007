"""The state rules every account kind shares."""

from __future__ import annotations

from adapter.backends.base import AccountState, AccountStatus
from adapter.backends.health import AccountHealthMixin


class Plain(AccountHealthMixin):
    kind = "test"

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected

    @property
    def id(self) -> str:
        return "t1"

    def status(self) -> AccountStatus:
        return AccountStatus(id=self.id, kind=self.kind, state=self._state, reason=self._reason)

    def _connected(self) -> bool:
        return self.connected


def test_listeners_hear_each_change_once() -> None:
    acct = Plain()
    heard: list[tuple[AccountState, str | None]] = []
    acct.add_listener(lambda st: heard.append((st.state, st.reason)))
    acct._set_state(AccountState.READY, None)
    acct._set_state(AccountState.READY, None)  # no change: nobody is told
    acct.pause("captcha")
    assert heard == [(AccountState.READY, None), (AccountState.PAUSED, "captcha")]


def test_resume_goes_back_to_ready_or_reconnecting() -> None:
    acct = Plain()
    acct._set_state(AccountState.READY, None)
    acct.pause("maintenance")
    acct.resume()
    assert acct.status().state is AccountState.READY and acct.status().reason is None
    offline = Plain(connected=False)
    offline.pause("x")
    offline.resume()
    assert offline.status().state is AccountState.RECONNECTING


def test_disabled_is_final_and_cannot_be_paused_or_resumed() -> None:
    acct = Plain()
    acct._set_state(AccountState.DISABLED, "token refused")
    acct.pause("operator")
    acct.resume()
    acct._set_state(AccountState.READY, None)
    assert acct.status().state is AccountState.DISABLED and acct.status().reason == "token refused"
    acct._set_state(AccountState.STOPPED, None)  # closing still works
    assert acct.status().state is AccountState.STOPPED


def test_a_failing_listener_does_not_stop_the_others() -> None:
    acct = Plain()
    heard: list[AccountState] = []

    def broken(_: AccountStatus) -> None:
        raise RuntimeError("boom")

    acct.add_listener(broken)
    acct.add_listener(lambda st: heard.append(st.state))
    acct._set_state(AccountState.READY, None)
    assert heard == [AccountState.READY]
