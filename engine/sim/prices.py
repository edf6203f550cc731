"""Deterministic simulated prices: the same (seed, instrument, instant) gives the same price anywhere.

Several paper accounts may run in different processes; they must see one market, so the random walk is
seeded with a stable digest (never Python's salted `hash`) and depends on nothing but its inputs.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from engine.domain import Instrument, InstrumentId

SECONDS_PER_DAY = 86_400
DEFAULT_VOLATILITY = 0.00005  # per-second sigma of log returns: roughly 1.5% over a day
_BLOCK = 60  # steps drawn from one seeded generator; only block sums are kept per day


@dataclass(slots=True)
class _DayWalk:
    """Cumulative log return at the start of each block computed so far, plus the last block's steps.

    Keeping block sums instead of all 86,400 steps holds a day in ~12 KB, while any second is still
    reachable by redrawing at most one block.
    """

    block_starts: array[float] = field(default_factory=lambda: array("d", [0.0]))
    cached_block: int = -1
    cached_partials: list[float] = field(default_factory=list)  # partial sums within cached_block


class PricePath:
    """Geometric random walk per instrument and UTC day, one step per second, starting at `last_price`."""

    def __init__(self, seed: int = 0, volatility: float = DEFAULT_VOLATILITY, *, cache_size: int = 1024) -> None:
        if volatility < 0:
            raise ValueError("volatility must not be negative")
        self.seed = seed
        self.volatility = volatility
        self._cache_size = cache_size
        self._walks: OrderedDict[tuple[str, date], _DayWalk] = OrderedDict()
        self._pinned: dict[InstrumentId, Decimal] = {}

    def price_at(self, instrument: Instrument, at: datetime) -> Decimal:
        """Last traded price of `instrument` at `at` (naive datetimes are taken as UTC), on tick."""
        pinned = self._pinned.get(instrument.id)
        if pinned is not None:
            return pinned
        if self.volatility == 0:
            return _to_tick(float(instrument.last_price), instrument.tick_size)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
        step = int((at - midnight).total_seconds())
        log_return = self._cumulative(str(instrument.id), at.date(), step)
        return _to_tick(float(instrument.last_price) * math.exp(log_return), instrument.tick_size)

    def set_price(self, instrument_id: InstrumentId, price: Decimal) -> None:
        """Pin `instrument_id` at `price` (for tests and demos) until `clear_price`."""
        if not price.is_finite() or price <= 0:
            raise ValueError("pinned price must be a positive number")
        self._pinned[instrument_id] = price

    def clear_price(self, instrument_id: InstrumentId) -> None:
        self._pinned.pop(instrument_id, None)

    def _cumulative(self, key: str, day: date, step: int) -> float:
        """Sum of the first `step` log returns of `key` on `day`."""
        walk = self._walks.get((key, day))
        if walk is None:
            walk = self._walks[(key, day)] = _DayWalk()
            if len(self._walks) > self._cache_size:
                self._walks.popitem(last=False)
        else:
            self._walks.move_to_end((key, day))
        block, offset = divmod(step, _BLOCK)
        starts = walk.block_starts
        while len(starts) <= block:
            done = len(starts) - 1
            starts.append(starts[done] + sum(self._draw(key, day, done)))
        if walk.cached_block != block:
            partials = [starts[block]]
            for value in self._draw(key, day, block):
                partials.append(partials[-1] + value)
            walk.cached_block, walk.cached_partials = block, partials
        return walk.cached_partials[offset]

    def _draw(self, key: str, day: date, block: int) -> list[float]:
        rng = random.Random(_stable_seed(self.seed, key, day, block))
        sigma = self.volatility
        return [rng.gauss(0.0, sigma) for _ in range(_BLOCK)]


def _stable_seed(seed: int, key: str, day: date, block: int) -> int:
    digest = hashlib.sha256(f"{seed}|{key}|{day.isoformat()}|{block}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _to_tick(price: float, tick: Decimal) -> Decimal:
    ticks = max(1, round(price / float(tick)))
    return tick * ticks
