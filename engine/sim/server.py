"""Serve one simulated broker over HTTP: `trademaster sim`, the daemon's demo, and tests.

Each broker gets its own port because the official SDKs join paths onto the root URL and so expect
the broker's API at `/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import time
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import uvicorn
from starlette.applications import Starlette

from engine.sim.admin import admin_routes
from engine.sim.clock import SimClock
from engine.sim.config import SimBroker, SimSettings
from engine.sim.http import Front
from engine.sim.venue import SimVenue

log = logging.getLogger(__name__)
T = TypeVar("T")

TICK_SECONDS = 0.25
_FRONT_MODULES: dict[str, str] = {"kite": "engine.sim.kite_front", "upstox": "engine.sim.upstox_front"}


def _front_module(broker: SimBroker) -> ModuleType:
    """A front module exports LIMITS, TOKEN_EXPIRY (IST) and build_front(venue) -> Front."""
    return importlib.import_module(_FRONT_MODULES[broker])


def build_app(
    settings: SimSettings, state_dir: Path | None = None, clock: SimClock | None = None
) -> tuple[Starlette, SimVenue]:
    module = _front_module(settings.broker)
    expiry: time = module.TOKEN_EXPIRY
    venue = SimVenue(settings, limits=module.LIMITS, token_expiry=expiry, state_dir=state_dir, clock=clock)
    front: Front = module.build_front(venue)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_run_forever(job)) for job in [_ticker(venue), *front.background]]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = Starlette(routes=[admin_routes(venue), *front.routes], lifespan=lifespan)
    return app, venue


def _ticker(venue: SimVenue) -> Callable[[], Awaitable[None]]:
    async def tick() -> None:
        while True:
            venue.tick()
            await asyncio.sleep(TICK_SECONDS)

    return tick


async def _run_forever(job: Callable[[], Awaitable[None]]) -> None:
    """Keep a background job alive: one failure is logged, not fatal to the simulator."""
    while True:
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("simulator background job failed; restarting it")
            await asyncio.sleep(1)


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it every keep-alive request waits ~40 ms on delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", loop="uvloop")
    return uvicorn.Server(config)


def serve(settings: SimSettings, host: str, port: int, state_dir: Path | None) -> None:
    """Run a simulator in the foreground until interrupted; prints its URL once listening."""
    app, _ = build_app(settings, state_dir)
    sock = bind(host, port)
    server = _server(app)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        bound_port = sock.getsockname()[1]
        print(f"trademaster sim: {settings.broker} listening on http://{host}:{bound_port}", flush=True)
        await task

    asyncio.run(main())


class SimServer:
    """A simulator served from a background thread on 127.0.0.1, for tests and embedding."""

    def __init__(
        self, settings: SimSettings, state_dir: Path | None = None, clock: SimClock | None = None, port: int = 0
    ) -> None:
        self.app, self.venue = build_app(settings, state_dir, clock)
        self._sock = bind("127.0.0.1", port)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = _server(self.app)
        self._thread = threading.Thread(target=self._run, name=f"sim-{settings.broker}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._server.serve(sockets=[self._sock])

    def call(self, job: Callable[[SimVenue], T]) -> T:
        """Run `job(venue)` on the simulator's own thread, so a test reads or changes the books without racing
        the requests and ticks that change them."""
        assert self._loop is not None, "start the simulator first"

        async def run() -> T:
            return job(self.venue)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def start(self) -> SimServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("simulator failed to start")
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
