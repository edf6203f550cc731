"""The latest quote of each instrument with a version counter, so readers fetch only what changed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from engine.brokers.base import Quote
from engine.domain import InstrumentId


def _same_prices(a: Quote, b: Quote) -> bool:
    return (a.last_price, a.bid, a.ask, a.broker) == (b.last_price, b.bid, b.ask, b.broker)


class QuoteStore:
    """Each change takes the next version; `since(v)` is every instrument whose latest change is after v."""

    def __init__(self) -> None:
        self.version = 0
        self._latest: dict[InstrumentId, tuple[int, Quote]] = {}
        self._wake = asyncio.Event()

    def put(self, quotes: Iterable[Quote]) -> list[Quote]:
        """Keep the quotes whose prices moved (an unchanged price keeps its first time); return those."""
        changed = []
        for quote in quotes:
            held = self._latest.get(quote.instrument)
            if held is not None and _same_prices(held[1], quote):
                continue
            self.version += 1
            self._latest[quote.instrument] = (self.version, quote)
            changed.append(quote)
        if changed:
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
