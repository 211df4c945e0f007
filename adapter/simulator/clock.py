"""The one place simulated time passes: every bot delay is written in realistic seconds and
divided by the speed here, so `speed=500` runs a 40 s job in 80 ms and nothing else changes."""

from __future__ import annotations

import asyncio


class ScaledClock:
    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed

    def real(self, realistic_seconds: float) -> float:
        """Wall-clock seconds that `realistic_seconds` of Midjourney time take."""
        return max(realistic_seconds, 0.0) / self.speed

    async def sleep(self, realistic_seconds: float) -> None:
        await asyncio.sleep(self.real(realistic_seconds))
