"""Fan the durable order event log out to stream subscribers.

One pump reads new events from PostgreSQL (woken by NOTIFY, with a polling fallback) into a bounded
ring buffer. Each subscriber keeps only a cursor: it reads from the ring when its cursor is inside
it and from the database when it has fallen behind, so a slow or resuming subscriber costs memory
for nothing and can never see a gap or a repeat.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Collection

import asyncpg

from engine.api.metrics import EVENTS_PUBLISHED
from engine.domain import OrderEvent
from engine.store.orders import EVENT_CHANNEL, OrderStore

log = logging.getLogger(__name__)

_BATCH = 500
_POLL_SECONDS = 0.5


class EventHub:
    def __init__(self, store: OrderStore, dsn: str, ring_size: int = 20_000) -> None:
        self._store = store
        self._dsn = dsn
        self._ring: list[OrderEvent] = []
        self._ring_size = ring_size
        self._head = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def head(self) -> int:
        return self._head

    async def start(self) -> None:
        self._head = await self._store.head_sequence()
        self._task = asyncio.create_task(self._pump(), name="event-pump")

    async def stop(self) -> None:
        self._closed = True
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._changed:
            self._changed.notify_all()

    async def _pump(self) -> None:
        conn: asyncpg.Connection | None = None
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self._dsn)
                    await conn.add_listener(EVENT_CHANNEL, lambda *_: self._wake.set())
                with contextlib.suppress(TimeoutError):  # asyncio.timeout never swallows a racing cancel
                    async with asyncio.timeout(_POLL_SECONDS):
                        await self._wake.wait()
                self._wake.clear()
                await self._drain()
            except asyncio.CancelledError:
                if conn is not None:
                    await conn.close()
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("event pump: database unavailable (%s); retrying", exc)
                conn = None
                await asyncio.sleep(_POLL_SECONDS)

    async def _drain(self) -> None:
        while batch := await self._store.events_after(self._head, _BATCH):
            self._ring.extend(batch)
            if len(self._ring) > 2 * self._ring_size:
                del self._ring[: -self._ring_size]
            self._head = batch[-1].sequence
            EVENTS_PUBLISHED.inc(len(batch))
            async with self._changed:
                self._changed.notify_all()

    async def _wait_beyond(self, cursor: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._head > cursor or self._closed)

    async def _after(self, cursor: int) -> list[OrderEvent]:
        ring = self._ring
        if ring and cursor >= ring[0].sequence - 1:
            start = bisect.bisect_right(ring, cursor, key=lambda e: e.sequence)
            return ring[start : start + _BATCH]
        if cursor >= self._head:
            return []
        return await self._store.events_after(cursor, _BATCH)

    async def subscribe(
        self, after: int | None, accounts: Collection[str] | None = None, *, catch_up_only: bool = False
    ) -> AsyncIterator[OrderEvent]:
        """Events with sequence > after (None: from now on), in order, of ``accounts`` (None: all); forever
        unless catch_up_only."""
        cursor = self._head if after is None else after
        end = self._head if catch_up_only else None
        while not self._closed and (end is None or cursor < end):
            limit = self._head if end is None else end
            batch = [e for e in await self._after(cursor) if e.sequence <= limit]
            if not batch:
                await self._wait_beyond(cursor)
                continue
            for event in batch:
                if accounts is None or event.account in accounts:
                    yield event
            cursor = batch[-1].sequence
