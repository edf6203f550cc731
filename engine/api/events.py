"""Fan a durable, numbered event log out to stream subscribers.

One pump reads new events from PostgreSQL (woken by NOTIFY, with a polling fallback) into a bounded
ring buffer. Each subscriber keeps only a cursor: it reads from the ring when its cursor is inside
it and from the database when it has fallen behind, so a slow or resuming subscriber costs memory
for nothing and can never see a gap or a repeat. The order event log and the strategy event log
each have one hub.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from typing import Generic, Protocol, TypeVar

import asyncpg
from prometheus_client import Counter

from engine.api.metrics import EVENTS_PUBLISHED
from engine.domain import OrderEvent
from engine.store.database import connect, database_unreachable
from engine.store.orders import EVENT_CHANNEL, OrderStore

log = logging.getLogger(__name__)

_BATCH = 500
_POLL_SECONDS = 0.5


class Sequenced(Protocol):
    @property
    def sequence(self) -> int: ...


E = TypeVar("E", bound=Sequenced)


class EventLog(Protocol[E]):
    """Where a hub reads its events: numbered without gaps for readers, announced on a NOTIFY channel."""

    async def events_after(self, sequence: int, limit: int) -> list[E]: ...

    async def head_sequence(self) -> int: ...


class SequencedHub(Generic[E]):
    def __init__(
        self, source: EventLog[E], dsn: str, channel: str, ring_size: int = 20_000, published: Counter | None = None
    ) -> None:
        self._store = source
        self._dsn = dsn
        self._channel = channel
        self._published = published
        self._ring: list[E] = []
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
        """Forever, whatever fails: a pump that died would stall every stream until a restart. While the database
        is unreachable it retries every poll interval, then drains what was committed meanwhile."""
        conn: asyncpg.Connection | None = None
        down = False
        while True:
            try:
                if conn is None or conn.is_closed():
                    conn = await connect(self._dsn)
                    await conn.add_listener(self._channel, lambda *_: self._wake.set())
                with contextlib.suppress(TimeoutError):  # asyncio.timeout never swallows a racing cancel
                    async with asyncio.timeout(_POLL_SECONDS):
                        await self._wake.wait()
                self._wake.clear()
                await self._drain()
                if down:
                    log.info("event pump %s: the database is back; caught up to %d", self._channel, self._head)
                    down = False
            except asyncio.CancelledError:
                if conn is not None:
                    await conn.close()
                raise
            except Exception as exc:
                if not database_unreachable(exc):
                    log.exception("event pump %s failed; retrying", self._channel)
                elif not down:
                    log.warning("event pump %s: the database is unreachable (%s); retrying", self._channel, exc)
                    down = True
                if conn is not None:
                    conn.terminate()  # a listener on a broken session may never hear again: start afresh
                    conn = None
                await asyncio.sleep(_POLL_SECONDS)

    async def _drain(self) -> None:
        while batch := await self._store.events_after(self._head, _BATCH):
            self._ring.extend(batch)
            if len(self._ring) > 2 * self._ring_size:
                del self._ring[: -self._ring_size]
            self._head = batch[-1].sequence
            if self._published is not None:
                self._published.inc(len(batch))
            async with self._changed:
                self._changed.notify_all()

    async def _wait_beyond(self, cursor: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._head > cursor or self._closed)

    async def _after(self, cursor: int) -> list[E]:
        ring = self._ring
        if ring and cursor >= ring[0].sequence - 1:
            start = bisect.bisect_right(ring, cursor, key=lambda e: e.sequence)
            return ring[start : start + _BATCH]
        if cursor >= self._head:
            return []
        return await self._store.events_after(cursor, _BATCH)

    async def stream(
        self, after: int | None, keep: Callable[[E], bool] | None = None, *, catch_up_only: bool = False
    ) -> AsyncIterator[E]:
        """Events with sequence > after (None: from now on), in order, those `keep` accepts (None: all);
        forever unless catch_up_only."""
        cursor = self._head if after is None else after
        end = self._head if catch_up_only else None
        while not self._closed and (end is None or cursor < end):
            limit = self._head if end is None else end
            batch = [e for e in await self._after(cursor) if e.sequence <= limit]
            if not batch:
                await self._wait_beyond(cursor)
                continue
            for event in batch:
                if keep is None or keep(event):
                    yield event
            cursor = batch[-1].sequence


class EventHub(SequencedHub[OrderEvent]):
    """The order event log's hub: StreamOrderEvents and the strategy runner read it."""

    def __init__(self, store: OrderStore, dsn: str, ring_size: int = 20_000) -> None:
        super().__init__(store, dsn, EVENT_CHANNEL, ring_size, EVENTS_PUBLISHED)

    def subscribe(
        self, after: int | None, accounts: Collection[str] | None = None, *, catch_up_only: bool = False
    ) -> AsyncIterator[OrderEvent]:
        """Order events of ``accounts`` (None: all); see `stream`."""
        keep = None if accounts is None else (lambda e: e.account in accounts)
        return self.stream(after, keep, catch_up_only=catch_up_only)
