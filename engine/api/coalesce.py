"""Orders for one unpaced account that reach the gateway close together cross the Ray boundary as one call.

A Ray actor call costs about half a millisecond of CPU on each side here, as much as the rest of the gateway's
work on an order. So while a call to an account is out, the next orders for it gather for at most `WINDOW`
(or until that call returns) and go as one `submit_many`; an order for an idle account leaves at once. The
window bounds what an order can wait for: never for a call already out, only for its own batch. A batch is
answered when its slowest order is, which is why only accounts without a pace use this (engine/api/placement.py):
a paced account's orders can wait for a pacing turn, or for a broker that hangs, and a batch-mate would wait
with them; at ten orders a second its Ray calls cost about 1 % of a core anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


WINDOW = 0.01  # seconds an order may wait for others while a call to its account is out


class Coalescer(Generic[Req, Res]):
    """Calls `send` with the requests gathered as above, at most `limit` at a time. `send` answers each request in
    order with its result or the exception it raised; an exception from `send` itself (the actor is gone) is
    every request's answer, as it would have been for each alone."""

    def __init__(
        self, send: Callable[[list[Req]], Awaitable[Sequence[Res | BaseException]]], limit: int, window: float = WINDOW
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._send = send
        self._limit = limit
        self._window = window
        self._queued: list[tuple[Req, asyncio.Future[Res]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, request: Req) -> Res:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Res] = loop.create_future()
        self._queued.append((request, answer))
        if not self._sending:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self._flush)
        return await answer  # a caller that goes away leaves its order to go on, as an actor call would

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), self._limit):
            task = asyncio.create_task(self._deliver(queued[start : start + self._limit]), name="submit-batch")
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if self._queued and not self._sending:
            self._flush()

    async def _deliver(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        try:
            results = await self._send([request for request, _ in batch])
        except BaseException as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        try:
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} answers to a batch of {len(batch)} orders")
            for (_, answer), result in zip(batch, results, strict=True):
                if answer.done():
                    continue  # its caller went away
                if isinstance(result, BaseException):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)
        except Exception as exc:  # no caller is left waiting for an answer that will not come
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
