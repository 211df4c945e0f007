"""A fake Discord (REST + gateway + CDN) on loopback whose Midjourney bot behaves like the real
one, with labelled placeholder images. See README.md in this folder for the control API."""

from adapter.simulator.config import DEFAULT_BANNED_WORDS, SimAccount, SimulatorConfig
from adapter.simulator.faults import Faults
from adapter.simulator.interactions import InteractionRecord
from adapter.simulator.server import Simulator, run_standalone

__all__ = [
    "DEFAULT_BANNED_WORDS",
    "Faults",
    "InteractionRecord",
    "SimAccount",
    "Simulator",
    "SimulatorConfig",
    "run_standalone",
]
