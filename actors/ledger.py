"""LedgerActor: the FIFO ledger over every account, rebuilt from the fills table on start.

It pulls fills from PostgreSQL by sequence rather than being pushed them, so a restart or a missed
message can never skip or double-apply a fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import ray

from engine.ledger import Ledger, PositionState
from engine.security import redaction
from engine.store.database import create_pool
from engine.store.orders import OrderStore


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class LedgerActor:
    def __init__(self, dsn: str) -> None:
        redaction.install_process()
        self._dsn = dsn
        self._store: OrderStore | None = None
        self._ledger = Ledger()
        self._sequence = 0
        self._lock = asyncio.Lock()

    async def sync(self) -> int:
        """Apply every fill not yet applied; return the last fill sequence applied."""
        async with self._lock:
            if self._store is None:
                self._store = OrderStore(await create_pool(self._dsn, 2))
            while batch := await self._store.fills_after(self._sequence):
                self._ledger.apply_many(fill for _, fill in batch)
                self._sequence = batch[-1][0]
            for key in self._ledger.unordered():
                self._ledger.rebuild(key, await self._store.book_fills(*key, self._sequence))
            return self._sequence

    async def positions(self, accounts: Collection[str] | None = None) -> list[PositionState]:
        await self.sync()
        return self._ledger.positions(accounts)
