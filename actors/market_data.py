"""MarketDataActor: one for the daemon, polling the brokers' quote endpoints through the AccountActors.

A thin Ray shell over engine/marketdata: the planner decides which account asks for which instruments
within each broker's quote limit; this actor only runs the loop and answers the gateway. The gateway
pulls every quote changed since the version it holds in one call (waiting briefly when nothing has),
so quotes cross the Ray boundary in batches, never one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import ray

from actors.account import actor_name
from engine.brokers.base import Quote
from engine.config import MarketDataSettings
from engine.domain import InstrumentId
from engine.marketdata import MarketDataPoller, QuoteSource
from engine.security import redaction


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class MarketDataActor:
    """Every method may be repeated safely, so Ray retries them; a restart loses only the subscriptions,
    which the gateway sends again when it sees the new epoch."""

    def __init__(self, sources: list[QuoteSource], settings: MarketDataSettings) -> None:
        """The AccountActors are looked up by name, not passed: handles among the constructor's arguments
        would have to outlive the caller for Ray to restart this actor."""
        redaction.install_process()
        self._epoch = uuid.uuid4().hex
        self._accounts: dict[str, Any] = {}
        self._poller = MarketDataPoller(
            sources,
            self._fetch,
            poll_interval=settings.poll_interval_seconds,
            backoff_seconds=settings.error_backoff_seconds,
        )
        self._task: asyncio.Task[None] | None = None

    async def _fetch(self, account: str, instruments: list[InstrumentId]) -> dict[InstrumentId, Quote]:
        handle = self._accounts.get(account)
        if handle is None:
            handle = self._accounts[account] = ray.get_actor(actor_name(account))
        return await handle.quotes.remote(instruments)

    def _running(self) -> MarketDataPoller:
        if self._task is None:
            self._task = asyncio.create_task(self._poller.run(), name="market-data")
        return self._poller

    async def start(self) -> str:
        """Start polling; returns the epoch, which changes when Ray restarts the actor."""
        self._running()
        return self._epoch

    async def subscribe(self, owner: str, instruments: list[InstrumentId]) -> None:
        """`owner` follows exactly `instruments` from now on."""
        self._running().follow(owner, instruments)

    async def unsubscribe(self, owner: str) -> None:
        self._running().unfollow(owner)

    async def quote_now(self, instruments: list[InstrumentId], timeout: float) -> list[Quote]:
        return await self._running().quote_now(instruments, timeout)

    async def changes(self, since: int, wait: float) -> tuple[str, int, list[Quote]]:
        """(epoch, version, quotes changed after version `since`), waiting up to `wait` seconds for a change."""
        version, quotes = await self._running().store.wait_since(since, wait)
        return self._epoch, version, quotes

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
