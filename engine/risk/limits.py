"""Risk limits, and how the global, account-group and account layers combine into the ones that apply."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import Field

from engine.domain import Product
from engine.settings_base import StrictModel


class RiskLimits(StrictModel):
    """One layer of limits. None means no limit; only fields written explicitly override earlier layers.

    Because "written" is what counts, a later layer can lift an inherited limit by setting it to null,
    while leaving a field out inherits it.
    """

    max_order_quantity: int | None = Field(None, gt=0, description="most units one order may carry")
    max_order_value: Decimal | None = Field(
        None, gt=0, description="most rupees one order may be worth (quantity × limit price, else last price)"
    )
    max_position_quantity_per_instrument: int | None = Field(
        None,
        ge=0,
        description="most units, long or short, the account may hold in one instrument after the order",
    )
    max_position_value_per_account: Decimal | None = Field(
        None, ge=0, description="most rupees of gross open position value the account may hold after the order"
    )
    price_band_percent: Decimal | None = Field(
        None,
        gt=0,
        description="a limit or trigger price must lie within ± this percentage of the last price (fat-finger guard)",
    )
    max_daily_loss: Decimal | None = Field(
        None,
        gt=0,
        description="once today's realised + unrealised PnL is at or below minus this many rupees, "
        "only orders that reduce a position are accepted",
    )
    max_orders_per_day: int | None = Field(None, ge=0, description="most orders the account may place in a day")
    enforce_sessions: bool | None = Field(
        None, description="refuse orders outside the exchange's trading session and on its holidays"
    )
    allowed_products: frozenset[Product] | None = Field(None, description="products the account may trade")
    allow_short_selling: bool | None = Field(
        None,
        description="allow intraday (MIS) and carry-forward (NRML) sells that leave a net short position; "
        "delivery (CNC) sells always need holdings",
    )


def effective_limits(
    global_: RiskLimits, groups: Sequence[RiskLimits] = (), account: RiskLimits | None = None
) -> RiskLimits:
    """Layer field by field, later winning, so an account can tighten or lift one limit without restating the rest.

    The result keeps which fields were set, so it can itself be layered again.
    """
    layers = [global_, *groups] if account is None else [global_, *groups, account]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update((name, getattr(layer, name)) for name in layer.model_fields_set)
    return RiskLimits.model_validate(merged)
