"""Samples every account's PnL on a timer: the points of the intraday PnL curve (PortfolioService.GetPnlHistory).

The curve is sampled rather than rebuilt from fills because unrealised PnL depends on the prices of the moment,
which nothing else records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from engine.api.gateway import Gateway
from engine.security.principal import Principal
from engine.security.tokens import Role
from engine.store.database import database_unreachable
from engine.store.pnl_samples import PnlSampleStore

log = logging.getLogger(__name__)

_SAMPLER = Principal("pnl-sampler", Role.ADMIN, "", frozenset())
"""Sees every account, as the curve of any caller's accounts is summed from the samples of each."""


class PnlSampler:
    def __init__(self, gateway: Gateway, store: PnlSampleStore, every_seconds: float, keep_days: int) -> None:
        self._gw = gateway
        self._store = store
        self._every = every_seconds
        self._keep = timedelta(days=keep_days)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pnl-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sample(self) -> datetime:
        view = await self._gw.portfolio([], _SAMPLER)
        at = datetime.now(UTC)
        await self._store.record(at, view.accounts)
        return at

    async def _run(self) -> None:
        """Forever, whatever fails: a missed sample is a gap in a chart, not a reason to stop sampling."""
        pruned_on = None
        down = False
        while True:
            try:
                at = await self.sample()
                if pruned_on != at.date():
                    await self._store.prune(at - self._keep)
                    pruned_on = at.date()
                down = False
            except Exception as exc:
                if not database_unreachable(exc):
                    log.exception("PnL sample failed; sampling goes on")
                elif not down:
                    log.warning("PnL sampling paused: the database is unreachable (%s)", exc)
                    down = True
            await asyncio.sleep(self._every)
