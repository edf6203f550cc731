"""What the caller knows about the account at the moment an order is checked."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskContext:
    """The account's state as the caller sees it, so the rules stay pure and run without an actor hop.

    Every field is required: a forgotten PnL or position that defaulted to zero would quietly disable
    the rule that needs it. Positions count fills only; quantities of open orders are not included.
    """

    last_price: Decimal | None
    """Latest traded price of the instrument; None while no quote is known."""

    net_quantity: int
    """Signed units held in the instrument (long positive), every product together and delivery holdings
    included. Exposure does not care about the product, and a per-product view would let the same exposure
    be spread across products to slip under a position limit."""

    holdings_quantity: int
    """Delivery shares the account can still sell today: settled and T1 holdings less today's delivery sells."""

    gross_position_value: Decimal
    """Sum over the account's instruments of |net units| × last price, in rupees."""

    pnl_today: Decimal
    """Realised plus unrealised PnL since the day's open, in rupees; a loss is negative."""

    orders_today: int
    """Orders the account has placed today, not counting this one."""
