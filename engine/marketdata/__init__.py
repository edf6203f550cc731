"""Market data: which account asks its broker for which quotes, within each broker's quote limits (pure)."""

from engine.marketdata.limits import QuoteLimits, quote_limits
from engine.marketdata.planner import Planner, QuoteRequest, QuoteSource
from engine.marketdata.poller import Fetch, MarketDataPoller
from engine.marketdata.store import QuoteStore, same_prices, stale_after
from engine.marketdata.subscriptions import Subscriptions

__all__ = [
    "Fetch",
    "MarketDataPoller",
    "Planner",
    "QuoteLimits",
    "QuoteRequest",
    "QuoteSource",
    "QuoteStore",
    "Subscriptions",
    "quote_limits",
    "same_prices",
    "stale_after",
]
