"""Each broker's quote limits as the market-data planner needs them: instruments per request, requests per window.

The windows are the same client-side ones the adapters pace their quote calls with (engine/brokers/pacing.py),
so a request the planner admits finds the adapter's pacer free instead of waiting in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.brokers.pacing import (
    KITE_LIMITS,
    KITE_QUOTE_BATCH,
    QUOTES,
    UPSTOX_LIMITS,
    UPSTOX_QUOTE_BATCH,
    Window,
    cautious,
)

PAPER_QUOTE_BATCH = 500  # the paper broker has no HTTP limit; batches keep each actor call small


@dataclass(frozen=True, slots=True)
class QuoteLimits:
    batch: int  # instruments per request
    windows: tuple[Window, ...]  # at most `count` requests per `seconds` per account; empty: unlimited
    parallel: int  # requests one account may have in flight at once

    @property
    def per_second(self) -> float:
        """Requests one account may make per second (infinity when unlimited): a feed's capacity."""
        if not self.windows:
            return float("inf")
        return min(count / seconds for count, seconds in self.windows)


def _paced(windows: Sequence[Window], batch: int, parallel: int) -> QuoteLimits:
    return QuoteLimits(batch, tuple(cautious({QUOTES: windows})[QUOTES]), parallel)


_LIMITS = {
    "kite": _paced(KITE_LIMITS[QUOTES], KITE_QUOTE_BATCH, 1),  # one request a second: never two at once
    "upstox": _paced(UPSTOX_LIMITS[QUOTES], UPSTOX_QUOTE_BATCH, 4),
    "paper": QuoteLimits(PAPER_QUOTE_BATCH, (), 1),
}


def quote_limits(broker: str) -> QuoteLimits:
    """The limits of a configured `broker` (kite, upstox or paper)."""
    return _LIMITS[broker]
