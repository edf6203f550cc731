"""Funds, shares and position changes claimed by orders sent since each account's last sync.

Routing and pre-trade risk read the account's latest snapshot, which does not yet know about orders sent
after it was taken; without these holds, a burst of orders would all see the same free margin, holdings
and position.
A hold lasts until a snapshot whose funds were read after the order's acknowledgement arrives
(the broker's own figure then includes it), or ends at once if the order never reached the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from engine.domain import InstrumentId, OrderRequest, Product, Side
from engine.domain.margin import margin_per_unit
from engine.routing.candidates import Reserved


@dataclass(slots=True, eq=False)  # identity, not value: two equal holds are still two claims
class Hold:
    account: str
    instrument: InstrumentId
    funds: Decimal
    shares: int
    quantity: int = 0  # signed units it adds to the position if it fills
    price: Decimal = Decimal(0)  # what values those units: its limit price, else the last price when sent
    settled_at: datetime | None = None  # when the broker acknowledged it; None while in flight
    client_order_id: str = ""  # the order it claims for, and its product: what a trading state counts
    product: Product | None = None


def claim(request: OrderRequest, price: Decimal) -> Hold:
    """What an order claims until a sync shows it, valued at `price`: a delivery sell claims its shares,
    anything else the margin of its value; either adds its quantity to the position if it fills."""
    delivery_sell = request.product is Product.CNC and request.side is Side.SELL
    funds = Decimal(0) if delivery_sell else request.quantity * margin_per_unit(request.product, price)
    shares = request.quantity if delivery_sell else 0
    quantity = request.side.sign * request.quantity
    return Hold(
        request.account, request.instrument, funds, shares, quantity, price,
        client_order_id=request.client_order_id, product=request.product,
    )  # fmt: skip


class Reservations:
    def __init__(self) -> None:
        self._holds: dict[str, list[Hold]] = {}

    def hold(self, entry: Hold) -> Hold:
        self._holds.setdefault(entry.account, []).append(entry)
        return entry

    def settle(self, entry: Hold, acknowledged_at: datetime | None) -> None:
        """Keep the hold until a later snapshot, or drop it now when the order took nothing (None).

        Dropping twice is harmless, so a caller may drop every hold whose order it never heard back about.
        """
        if acknowledged_at is not None:
            entry.settled_at = acknowledged_at
        elif entry in (held := self._holds.get(entry.account, [])):
            held.remove(entry)

    def unsynced(self, account: str, funds_at: datetime | None) -> tuple[Hold, ...]:
        """The account's holds, after forgetting those its snapshot (funds read at `funds_at`) includes.

        Positions are read after funds in a sync, so such a snapshot also has whatever the order had filled by then.
        """
        holds = self._holds.get(account, [])
        if funds_at is not None:
            holds[:] = [h for h in holds if h.settled_at is None or h.settled_at >= funds_at]
        return tuple(holds)

    def reserved(self, account: str, instrument: InstrumentId, funds_at: datetime | None) -> Reserved:
        """What holds still claim, after forgetting those the account's funds (read at `funds_at`) include."""
        holds = self.unsynced(account, funds_at)
        return Reserved(
            funds=sum((h.funds for h in holds), Decimal(0)),
            shares=sum(h.shares for h in holds if h.instrument == instrument),
        )
