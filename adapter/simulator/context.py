"""Everything one simulator instance shares, in one object passed to each part, so the parts
stay plain modules without globals (several simulators can run in one process)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from adapter.domain.ids import SnowflakeGenerator
from adapter.simulator.clock import ScaledClock
from adapter.simulator.config import SimAccount, SimulatorConfig
from adapter.simulator.sessions import SessionHub
from adapter.simulator.state import World

if TYPE_CHECKING:
    from adapter.simulator.bot import MidjourneyBot
    from adapter.simulator.cdn import Cdn
    from adapter.simulator.commands import CommandRegistry
    from adapter.simulator.faults import Faults
    from adapter.simulator.gateway import GatewayServer
    from adapter.simulator.interactions import InteractionLog
    from adapter.simulator.jobs import JobRunner


class SimContext:
    def __init__(self, config: SimulatorConfig, accounts: list[SimAccount]) -> None:
        self.config = config
        self.accounts = accounts
        self.clock = ScaledClock(config.speed)
        # The one source of randomness for bot behaviour. It is drawn only while accepting an
        # interaction (in request order); each interaction then gets its own child generator,
        # so concurrent jobs never interleave draws and a seed replays the same hashes.
        self.rng = random.Random(config.seed)
        self.ids = SnowflakeGenerator(worker=19)
        self.world = World(accounts, remix=config.remix)
        self.hub = SessionHub(self.world, ttl_seconds=config.session_ttl_seconds, history_size=config.history_size)
        self.base_url = ""
        # wired by Simulator.__init__
        self.cdn: Cdn
        self.commands: CommandRegistry
        self.faults: Faults
        self.gateway: GatewayServer
        self.interactions: InteractionLog
        self.runner: JobRunner
        self.bot: MidjourneyBot

    def child_rng(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))
