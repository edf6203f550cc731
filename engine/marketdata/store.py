"""The latest quote of each instrument with a version counter, so readers fetch only what changed.

A quote's `at` is when a broker last confirmed its prices, give or take `confirm_every`: an unchanged quote is
published again (new version, new `at`) once the one held is that old, so a reader can tell a quiet instrument
from a feed that stopped answering (engine.api.quotes drops quotes older than `stale_after` from ticks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import timedelta

from engine.brokers.base import Quote
from engine.domain import InstrumentId

STALE_FLOOR_SECONDS = 5.0


def stale_after(poll_interval: float) -> float:
    """How old a quote's confirmation may get before strategies stop acting on it: three polls missed, but
    never less than STALE_FLOOR_SECONDS (a fast poll would otherwise drop quotes over one slow answer)."""
    return max(3 * poll_interval, STALE_FLOOR_SECONDS)


def same_prices(a: Quote, b: Quote) -> bool:
    return (a.last_price, a.bid, a.ask, a.broker) == (b.last_price, b.bid, b.ask, b.broker)


class QuoteStore:
    """Each change takes the next version; `since(v)` is every instrument whose latest change is after v."""

    def __init__(self, confirm_every: float | None = None) -> None:
        """`confirm_every`: seconds after which an unchanged quote is published again with its new time (None:
        never)."""
        self.version = 0
        self._confirm_every = None if confirm_every is None else timedelta(seconds=confirm_every)
        self._latest: dict[InstrumentId, tuple[int, Quote]] = {}
        self._wake = asyncio.Event()

    def put(self, quotes: Iterable[Quote]) -> list[Quote]:
        """Keep the quotes whose prices moved, and return those; an unchanged price keeps its first time until it
        is `confirm_every` old, then is published again as confirmed (not returned: nothing changed)."""
        changed = []
        published = False
        for quote in quotes:
            held = self._latest.get(quote.instrument)
            if held is not None and same_prices(held[1], quote):
                if self._confirm_every is None or quote.at - held[1].at < self._confirm_every:
                    continue
            else:
                changed.append(quote)
            self.version += 1
            self._latest[quote.instrument] = (self.version, quote)
            published = True
        if published:
            self._wake.set()
            self._wake = asyncio.Event()
        return changed

    def latest(self, instrument: InstrumentId) -> Quote | None:
        held = self._latest.get(instrument)
        return held[1] if held else None

    def since(self, version: int) -> list[Quote]:
        """Quotes changed after `version`, oldest change first; a version from the future (a reader of an
        earlier store) gets everything."""
        if version > self.version:
            version = 0
        newer = sorted((held for held in self._latest.values() if held[0] > version), key=lambda held: held[0])
        return [quote for _, quote in newer]

    async def wait_since(self, version: int, timeout: float) -> tuple[int, list[Quote]]:
        """What changed after `version`, waiting up to `timeout` seconds for a change if nothing has yet."""
        if version == self.version:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        return self.version, self.since(version)
