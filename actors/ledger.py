"""LedgerActor: the FIFO ledger over every account, rebuilt from the fills table on start.

It pulls fills from PostgreSQL by sequence rather than being pushed them, so a restart or a missed
message can never skip or double-apply a fill.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

import ray

from engine.ledger import Ledger, PositionState
from engine.security import redaction
from engine.store.database import create_pool
from engine.store.orders import OrderStore


async def catch_up(store: OrderStore, ledger: Ledger, sequence: int) -> int:
    """Apply every stored fill after `sequence` to `ledger`, then rebuild the books a late fill left out of
    execution order; return the last fill sequence applied. The actor's sync, apart so that a start-up's replay
    can be measured without Ray (tests/bench/recovery.py)."""
    while batch := await store.fills_after(sequence):
        ledger.apply_many(fill for _, fill in batch)
        sequence = batch[-1][0]
    for key in ledger.unordered():
        ledger.rebuild(key, await store.book_fills(*key, sequence))
    return sequence


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class LedgerActor:
    def __init__(self, dsn: str) -> None:
        redaction.install_process()
        self._dsn = dsn
        self._store: OrderStore | None = None
        self._ledger = Ledger()
        self._sequence = 0
        self._lock = asyncio.Lock()
        self._epoch = uuid.uuid4().hex  # a restarted actor's versions start again: readers must see it is another

    async def sync(self) -> int:
        """Apply every fill not yet applied; return the last fill sequence applied."""
        async with self._lock:
            if self._store is None:
                self._store = OrderStore(await create_pool(self._dsn, 2))
            self._sequence = await catch_up(self._store, self._ledger, self._sequence)
            return self._sequence

    async def positions(self, accounts: Collection[str] | None = None) -> list[PositionState]:
        await self.sync()
        return self._ledger.positions(accounts)

    async def changes(self, epoch: str, since: int) -> tuple[str, int, list[PositionState]]:
        """The books changed after version `since` of ledger `epoch` (every book if that is not this one), with this
        ledger's epoch and version: what a LedgerReplica needs to stay current."""
        await self.sync()
        version, changed = self._ledger.changes(since if epoch == self._epoch else 0)
        return self._epoch, version, changed
