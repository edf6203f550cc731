"""Fan a durable, numbered event log out to stream subscribers.

One pump reads new events from PostgreSQL (woken by NOTIFY, with a polling fallback) into a bounded
ring buffer. Each subscriber keeps only a cursor: it reads from the ring when its cursor is inside
it and from the database when it has fallen behind, so a slow or resuming subscriber costs memory
for nothing and can never see a gap or a repeat. The order event log and the strategy event log
each have one hub.

A remote subscriber (a gRPC stream, `SequencedHub.follow`) that cannot keep up is ended rather than
followed forever; `StreamLimits` says when.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Generic, NoReturn, Protocol, TypeVar

import asyncpg
import grpc
from prometheus_client import Counter

from engine.api.interceptors import status_for
from engine.api.metrics import EVENTS_PUBLISHED, STREAMS_CUT_OFF
from engine.config import ServerSettings
from engine.domain import OrderEvent
from engine.errors import ResourceExhausted
from engine.store.database import connect, database_unreachable
from engine.store.orders import EVENT_CHANNEL, OrderStore

log = logging.getLogger(__name__)

_BATCH = 500
_POLL_SECONDS = 0.5
_WATCH_SECONDS = 1.0  # the watchdog's tick, shorter when the blocked-send limit is below 4 s


class Sequenced(Protocol):
    @property
    def sequence(self) -> int: ...


E = TypeVar("E", bound=Sequenced)
M = TypeVar("M")


class EventLog(Protocol[E]):
    """Where a hub reads its events: numbered without gaps for readers, announced on a NOTIFY channel."""

    async def events_after(self, sequence: int, limit: int) -> list[E]: ...

    async def head_sequence(self) -> int: ...


class Call(Protocol):
    """What the hub needs of a gRPC call it may end (grpc.aio.ServicerContext has it)."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn: ...

    def peer(self) -> str: ...


@dataclass(frozen=True)
class StreamLimits:
    """When `SequencedHub.follow` ends a subscriber with RESOURCE_EXHAUSTED, telling it where to resume.

    `max_lag`: a live subscriber, one that has caught up with the newest event at least once, that is then more
    than this many events behind the newest. One replaying from an old after_sequence is not live until it has
    caught up: it reads the database at its own pace, which costs no memory. `blocked_seconds`: any subscriber
    whose client has not taken the event handed to it for this long; its send is stuck behind HTTP/2 flow
    control, so the client has stopped reading.
    """

    max_lag: int = 20_000
    blocked_seconds: float = 30.0

    @classmethod
    def of(cls, server: ServerSettings) -> StreamLimits:
        return cls(server.stream_max_lag_events, server.stream_blocked_send_seconds)


class _Follower:
    """One remote subscriber as the hub and its watchdog see it."""

    __slots__ = ("aborting", "call", "handed_at", "live", "sent", "task")

    def __init__(self, call: Call, sent: int, live: bool) -> None:
        self.call = call
        self.sent = sent  # the last event it has taken (the one before the event being sent, if any)
        self.live = live
        self.handed_at: float | None = None  # when the event being sent was handed over; None between sends
        self.aborting: asyncio.Task[None] | None = None  # the watchdog's abort, once it has cut the stream off
        self.task = asyncio.current_task()  # the call's handler, cancelled if even the abort is never read


class SequencedHub(Generic[E]):
    def __init__(
        self,
        source: EventLog[E],
        dsn: str,
        channel: str,
        ring_size: int = 20_000,
        published: Counter | None = None,
        limits: StreamLimits | None = None,
    ) -> None:
        self._store = source
        self._dsn = dsn
        self._channel = channel
        self._published = published
        self._limits = limits or StreamLimits()
        self._ring: list[E] = []
        self._ring_size = ring_size
        self._head = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._followers: set[_Follower] = set()
        self._closed = False

    @property
    def head(self) -> int:
        return self._head

    async def start(self) -> None:
        self._head = await self._store.head_sequence()
        self._tasks = [
            asyncio.create_task(self._pump(), name=f"event-pump-{self._channel}"),
            asyncio.create_task(self._watch(), name=f"stream-watchdog-{self._channel}"),
        ]

    async def stop(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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

    async def _batches(self, after: int | None, catch_up_only: bool) -> AsyncIterator[list[E]]:
        """Batches of the events with sequence > after (None: from now on), in order; forever unless
        catch_up_only."""
        cursor = self._head if after is None else after
        end = self._head if catch_up_only else None
        while not self._closed and (end is None or cursor < end):
            limit = self._head if end is None else end
            batch = [e for e in await self._after(cursor) if e.sequence <= limit]
            if not batch:
                await self._wait_beyond(cursor)
                continue
            yield batch
            cursor = batch[-1].sequence

    async def stream(
        self, after: int | None, keep: Callable[[E], bool] | None = None, *, catch_up_only: bool = False
    ) -> AsyncIterator[E]:
        """Events with sequence > after (None: from now on), in order, those `keep` accepts (None: all);
        forever unless catch_up_only. Never cut off: for the daemon's own readers (the strategy runner)."""
        async for batch in self._batches(after, catch_up_only):
            for event in batch:
                if keep is None or keep(event):
                    yield event

    async def follow(
        self, call: Call, after: int | None, keep: Callable[[E], bool] | None = None, *, catch_up_only: bool = False
    ) -> AsyncIterator[E]:
        """`stream` for a remote subscriber, `call`, ended when it cannot keep up (`StreamLimits`).

        Falling behind is checked here each time the subscriber takes an event, and raises ResourceExhausted,
        which the API maps to its status. A stuck send cannot be seen from here: a grpc.aio async-generator
        servicer is suspended at its `yield` while gRPC writes what it yielded, and a write blocked on flow
        control never returns control to it. So each event is stamped when handed over, and a watchdog task
        (`_watch`) aborts the call of a subscriber still holding one after the limit; the status is queued behind
        the messages the client has yet to read. When gRPC's write does return (the client read again), this
        generator waits for that abort and ends, so the call is not ended twice.
        """
        me = _Follower(call, self._head if after is None else after, live=after is None)
        self._followers.add(me)
        try:
            async for batch in self._batches(after, catch_up_only):
                for event in batch:
                    if keep is None or keep(event):
                        me.handed_at = time.monotonic()
                        yield event
                        me.handed_at = None
                        if me.aborting is not None:
                            await me.aborting
                            return
                        me.sent = event.sequence
                        lag = self._head - event.sequence
                        if me.live and lag > self._limits.max_lag:
                            raise self._cut_off(me, "lag", self._lag_message(lag, event.sequence))
                me.live = me.live or batch[-1].sequence >= self._head  # it has been through the newest event
        finally:
            self._followers.discard(me)

    def _lag_message(self, lag: int, sent: int) -> str:
        return (
            f"stream cut off: it fell {lag:,} events behind the newest (the limit is {self._limits.max_lag:,},"
            f" server.stream_max_lag_events); read faster or narrow the stream, and resume with"
            f" after_sequence={sent}, the last event sent, to go on without a gap"
        )

    def _blocked_message(self, me: _Follower) -> str:
        return (
            f"stream cut off: its client has read nothing for {self._limits.blocked_seconds:g} s (the limit,"
            f" server.stream_blocked_send_seconds) and is {self._head - me.sent:,} events behind the newest; resume"
            f" with after_sequence = the sequence of the last event received (at least {me.sent}) to go on without"
            " a gap"
        )

    def _cut_off(self, me: _Follower, reason: str, message: str) -> ResourceExhausted:
        STREAMS_CUT_OFF.labels(self._channel, reason).inc()
        log.warning("%s stream of %s: %s", self._channel, me.call.peer(), message)
        return ResourceExhausted(message)

    async def _watch(self) -> None:
        """Forever: abort the call of every subscriber that has held an event longer than the blocked-send limit."""
        limit = self._limits.blocked_seconds
        while True:
            await asyncio.sleep(min(_WATCH_SECONDS, limit / 4))
            stuck_since = time.monotonic() - limit
            for me in self._followers:
                if me.aborting is None and me.handed_at is not None and me.handed_at < stuck_since:
                    error = self._cut_off(me, "blocked", self._blocked_message(me))
                    me.aborting = asyncio.create_task(
                        _abort(me, error, 2 * limit), name=f"stream-cut-off-{self._channel}"
                    )


async def _abort(me: _Follower, error: ResourceExhausted, grace: float) -> None:
    """End the follower's call with `error`'s status from outside its task. gRPC queues the status behind the
    messages the client has yet to read, so this returns once it has read them, or has gone. A client that reads
    nothing for another `grace` (twice the blocked-send limit) holds its call, its buffers and its handler for
    nothing: the handler is then cancelled, which cancels the call (the client sees CANCELLED, and resumes after
    the last event it got)."""
    code, message = status_for(error)
    try:
        async with asyncio.timeout(grace):
            with contextlib.suppress(grpc.aio.AbortError):  # what abort raises, for the task it was meant to stop
                await me.call.abort(code, message)
    except TimeoutError:
        log.warning("stream of %s: its client read nothing for another %g s; cancelling it", me.call.peer(), grace)
        if me.task is not None:
            me.task.cancel()
    except Exception as exc:  # the client went away first: there is no one left to tell
        log.debug("stream cut off, but its call had already ended: %r", exc)


class SharedMessages(Generic[E, M]):
    """Each recent event's API message, built once and shared by every stream that sends it: with many subscribers,
    building it per stream cost more than sending it. gRPC only reads a message it serializes, so sharing is safe."""

    def __init__(self, build: Callable[[E], M], size: int = 4096) -> None:
        self._build = build
        self._size = size
        self._built: dict[int, M] = {}

    def __call__(self, event: E) -> M:
        message = self._built.get(event.sequence)
        if message is None:
            message = self._built[event.sequence] = self._build(event)
            if len(self._built) > self._size:
                del self._built[next(iter(self._built))]  # the oldest built
        return message


class EventHub(SequencedHub[OrderEvent]):
    """The order event log's hub: StreamOrderEvents and the strategy runner read it."""

    def __init__(
        self, store: OrderStore, dsn: str, ring_size: int = 20_000, limits: StreamLimits | None = None
    ) -> None:
        super().__init__(store, dsn, EVENT_CHANNEL, ring_size, EVENTS_PUBLISHED, limits)

    def subscribe(
        self, call: Call, after: int | None, accounts: Collection[str] | None = None, *, catch_up_only: bool = False
    ) -> AsyncIterator[OrderEvent]:
        """Order events of ``accounts`` (None: all) for `call`; see `follow`."""
        keep = None if accounts is None else (lambda e: e.account in accounts)
        return self.follow(call, after, keep, catch_up_only=catch_up_only)
