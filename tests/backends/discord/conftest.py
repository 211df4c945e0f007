"""The session tests run against the simulator in both worlds where Discord or Midjourney behave
in two ways (see adapter/simulator/README.md): the adapter must be right in each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapter.simulator.config import BEHAVIOUR_ENV


@pytest.fixture(params=["default", "alternate"])
def sim_behaviour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(BEHAVIOUR_ENV, request.param)
    yield request.param
