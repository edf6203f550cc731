"""Funds and shares claimed by orders routed since each account's last sync.

Routing reads funds from the account's latest snapshot, which does not yet know about orders sent
after it was taken; without these holds, a burst of orders would all see the same free margin.
A hold lasts until a snapshot whose funds were read after the order's acknowledgement arrives
(the broker's own figure then includes it), or ends at once if the order never reached the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.domain import InstrumentId
from engine.routing.candidates import Reserved


@dataclass(slots=True, eq=False)  # identity, not value: two equal holds are still two claims
class Hold:
    account: str
    instrument: InstrumentId
    funds: Decimal
    shares: int
    settled_at: datetime | None = None  # when the broker acknowledged it; None while in flight


class Reservations:
    def __init__(self) -> None:
        self._holds: dict[str, list[Hold]] = {}

    def hold(self, account: str, instrument: InstrumentId, funds: Decimal, shares: int) -> Hold:
        entry = Hold(account, instrument, funds, shares)
        self._holds.setdefault(account, []).append(entry)
        return entry

    def settle(self, entry: Hold, acknowledged_at: datetime | None) -> None:
        """Keep the hold until a later snapshot, or drop it now when the order took nothing (None)."""
        if acknowledged_at is None:
            self._holds[entry.account].remove(entry)
        else:
            entry.settled_at = acknowledged_at

    def reserved(self, account: str, instrument: InstrumentId, funds_at: datetime | None) -> Reserved:
        """What holds still claim, after forgetting those the account's funds (read at `funds_at`) include."""
        holds = self._holds.get(account, [])
        if funds_at is not None:
            holds[:] = [h for h in holds if h.settled_at is None or h.settled_at >= funds_at]
        return Reserved(
            funds=sum((h.funds for h in holds), Decimal(0)),
            shares=sum(h.shares for h in holds if h.instrument == instrument),
        )
