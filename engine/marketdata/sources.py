"""Which configured accounts can answer for which prices."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import AccountSettings
from engine.marketdata.planner import QuoteSource


def quote_sources(accounts: Sequence[AccountSettings]) -> list[QuoteSource]:
    """Accounts as quote sources. Accounts at one endpoint share a feed, and so do paper accounts: they all
    price off the one seeded path of [paper], so asking one of them is asking all."""
    sources = []
    for account in accounts:
        if account.broker == "paper":
            feed = "paper"
        else:
            feed = f"{account.broker}:{account.connection.simulator_url or account.connection.base_url}"
        sources.append(QuoteSource(account.id, account.broker, feed, account.broker_name))
    return sources
