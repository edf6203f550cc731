"""StrategyActor: one per strategy instance, holding its logic and state (engine.strategy_host).

Ray restarts it if it dies; the restarted actor has lost its state, says so (NotOpen) and is opened again by
the runner, which reloads everything from PostgreSQL. Ray never retries a call (max_task_retries=0): the runner
decides what to do after a failure, knowing that the database is the truth.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import ray

from engine.security import redaction
from engine.store.database import create_pool
from engine.store.strategies import StrategyStore
from engine.strategies.base import Input
from engine.strategy_host import NotOpen, Opened, Stepped, StrategyHost


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class StrategyActor:
    def __init__(self, strategy_id: str, dsn: str) -> None:
        redaction.install_process()
        self._id = strategy_id
        self._dsn = dsn
        self._host: StrategyHost | None = None

    async def open(self, now: datetime) -> Opened:
        if self._host is None:
            self._host = StrategyHost(StrategyStore(await create_pool(self._dsn, 1)), self._id)
        return await self._host.open(now)

    async def step(self, inputs: Sequence[Input], cursor: int, done: Collection[int]) -> Stepped:
        return await self._opened().step(inputs, cursor, done)

    async def ack(self, done: Collection[int]) -> None:
        await self._opened().ack(done)

    def _opened(self) -> StrategyHost:
        if self._host is None:
            raise NotOpen(f"strategy {self._id} is not loaded")
        return self._host
