"""`Simulator`: a fake Discord with a Midjourney bot, on loopback. One facade for the three ways
it runs: in tests, inside the real server's demo mode, and standalone (`run_standalone`)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import uvicorn

from adapter.simulator.bot import MidjourneyBot
from adapter.simulator.cdn import Cdn
from adapter.simulator.commands import CommandRegistry
from adapter.simulator.config import SimAccount, SimulatorConfig, resolve_accounts
from adapter.simulator.context import SimContext
from adapter.simulator.faults import Faults
from adapter.simulator.gateway import GatewayServer
from adapter.simulator.interactions import InteractionLog, InteractionRecord
from adapter.simulator.jobs import JobRunner
from adapter.simulator.messages import Messenger
from adapter.simulator.rest import build_app

log = logging.getLogger(__name__)


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        ctx = SimContext(self.config, resolve_accounts(self.config))
        ctx.cdn = Cdn(ctx.ids)
        ctx.commands = CommandRegistry(self.config.seed)
        ctx.faults = Faults(ctx)
        ctx.gateway = GatewayServer(ctx)
        ctx.interactions = InteractionLog()
        messenger = Messenger(ctx)
        ctx.runner = JobRunner(ctx, messenger)
        ctx.bot = MidjourneyBot(ctx, messenger, ctx.runner)
        self._ctx = ctx
        self._http: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self.base_url = ""
        self.rest_base = ""
        self.inpaint_submit_url = ""

    # --- public surface --------------------------------------------------------------------

    @property
    def accounts(self) -> list[SimAccount]:
        return self._ctx.accounts

    @property
    def interaction_log(self) -> list[InteractionRecord]:
        return self._ctx.interactions.records

    @property
    def faults(self) -> Faults:
        return self._ctx.faults

    @property
    def gateway_url(self) -> str:
        return self._ctx.gateway.url

    @property
    def context(self) -> SimContext:
        """The simulator's internals (world, jobs, CDN), for tests that need to look inside."""
        return self._ctx

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, gateway_port: int = 0) -> None:
        if self._http is not None:
            raise RuntimeError("simulator already started")
        await self._ctx.gateway.start(host, gateway_port)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        bound = sock.getsockname()[1]
        advertised = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.base_url = f"http://{advertised}:{bound}"
        self.rest_base = f"{self.base_url}/api/v9"
        self.inpaint_submit_url = f"{self.base_url}/inpaint/api/submit-job"
        self._ctx.base_url = self.base_url
        self._ctx.cdn.base_url = self.base_url

        config = uvicorn.Config(
            build_app(self._ctx),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        config.load()
        server = uvicorn.Server(config)
        # startup()/shutdown() rather than serve(): serve() would take over the process's
        # signal handlers, which belong to whoever embeds the simulator.
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._http = server

    async def stop(self) -> None:
        await self._ctx.bot.stop()
        await self._ctx.runner.stop()
        if self._http is not None:
            # uvicorn's own shutdown() sleeps a fixed 0.1 s; tests start and stop a simulator
            # per test, so close listeners and connections directly instead.
            server = self._http
            server.should_exit = True
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
            try:
                async with asyncio.timeout(5):
                    while server.server_state.connections:
                        await asyncio.sleep(0.01)
                    for listener in server.servers:
                        await listener.wait_closed()
            except TimeoutError:
                log.warning("simulator HTTP server did not stop in time")
            if self._sock is not None:
                self._sock.close()
            self._http = None
            self._sock = None
        await self._ctx.gateway.stop()

    async def wait_idle(self, timeout: float) -> None:
        """Until the bot has answered every interaction and no job is queued or running
        (stalled jobs do not count). TimeoutError after `timeout` seconds."""
        await self._ctx.runner.wait_idle(timeout, also_busy=self._ctx.bot.busy)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run_standalone(
    host: str, port: int, speed: float, seed: int, accounts: int, *, grid_long_side: int | None = None, photo_images: bool = False
) -> None:
    """Start a simulator, print how to reach it, and run until cancelled."""
    config = SimulatorConfig(speed=speed, seed=seed, accounts=accounts, photo_images=photo_images)
    if grid_long_side is not None:
        config.grid_long_side = grid_long_side
    sim = Simulator(config)
    await sim.start(host, port)
    out = sys.stdout
    print("Midjourney simulator (SIMULATED images, fake Discord) is running", file=out)
    print(f"  REST       {sim.rest_base}  (and {sim.base_url}/api/v10)", file=out)
    print(f"  gateway    {sim.gateway_url}", file=out)
    print(f"  CDN        {sim.base_url}/attachments/...", file=out)
    print(f"  inpaint    {sim.inpaint_submit_url}", file=out)
    print(f"  control    {sim.base_url}/_simulator/  (see adapter/simulator/README.md)", file=out)
    print(f"  speed {speed:g}x, seed {seed}, grids {config.grid_long_side}px" + (" photo-like" if photo_images else ""), file=out)
    for i, account in enumerate(sim.accounts, start=1):
        # These tokens are fabricated for the simulator; printing them is how a user wires a client.
        print(
            f"  account {i}: token={account.token} user_id={account.user_id} "
            f"guild_id={account.guild_id} channel_id={account.channel_id} dm_channel_id={account.dm_channel_id}",
            file=out,
        )
    out.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
