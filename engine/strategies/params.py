"""What a user asks each strategy kind to do, validated before anything runs.

The models mirror proto/trademaster/v1/strategies.proto field for field, with two additions that the
service fills in at creation from facts the strategy cannot look up itself: `tick_size` (from the
instrument master, so stop and target levels land on valid prices) and, for a trailing stop, `position`
(the signed net quantity it protects, so it knows the closing side and the "whole position" size).
Every check raises on the field it is about, so a pydantic error's `loc` is the path to name in an
INVALID_ARGUMENT. All models round-trip through `model_dump(mode="json")` / `model_validate`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.domain import InstrumentId, OrderType, Product, Side
from engine.risk.states import Scope, ScopeKind, TradingState
from engine.strategies.base import OrderSpec

__all__ = [
    "DEFAULT_TICK_SIZE",
    "BracketParams",
    "MtmGuardParams",
    "OrderSpecParams",
    "ReEntry",
    "ScheduleParams",
    "Trail",
    "TrailingStopParams",
]

# NSE and BSE equities trade in 5-paise steps; the service replaces it with the instrument's own.
DEFAULT_TICK_SIZE = Decimal("0.05")


def _parse_instrument(value: Any) -> InstrumentId:
    """Accept `EXCHANGE:SYMBOL` text (the API and JSON form) or an InstrumentId."""
    return value if isinstance(value, InstrumentId) else InstrumentId.parse(str(value))


Instrument = Annotated[InstrumentId, BeforeValidator(_parse_instrument), PlainSerializer(str)]
Positive = Annotated[Decimal, Field(gt=0)]
TickSize = Annotated[Decimal, Field(gt=0)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderSpecParams(_Params):
    """One order a strategy places; prices are required exactly when the order type uses them."""

    account: str = Field(min_length=1, max_length=64)
    instrument: Instrument
    side: Side
    quantity: int = Field(gt=0)
    product: Product
    order_type: OrderType
    price: Positive | None = Field(None, validate_default=True)
    trigger_price: Positive | None = Field(None, validate_default=True)

    @field_validator("price")
    @classmethod
    def _price_matches_type(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        return _needed(value, info, "needs_price")

    @field_validator("trigger_price")
    @classmethod
    def _trigger_matches_type(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        return _needed(value, info, "needs_trigger")

    def to_spec(self) -> OrderSpec:
        return OrderSpec(
            account=self.account,
            instrument=self.instrument,
            side=self.side,
            quantity=self.quantity,
            product=self.product,
            order_type=self.order_type,
            price=self.price,
            trigger_price=self.trigger_price,
        )


def _needed(value: Decimal | None, info: ValidationInfo, needs: str) -> Decimal | None:
    order_type = info.data.get("order_type")
    if order_type is None:  # itself invalid; that error is reported on order_type
        return value
    needed = getattr(order_type, needs)
    if needed and value is None:
        raise ValueError(f"required for {order_type} orders")
    if not needed and value is not None:
        raise ValueError(f"must be empty for {order_type} orders")
    return value


class Trail(_Params):
    """Keep a stop `points` rupees or `percent` percent behind the best price seen; exactly one is given."""

    points: Positive | None = None
    percent: Annotated[Decimal, Field(gt=0, lt=100)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trail:
        if (self.points is None) == (self.percent is None):
            raise ValueError("give exactly one of points or percent")
        return self

    def distance(self, best: Decimal) -> Decimal:
        """How far behind `best` the stop belongs."""
        return self.points if self.points is not None else best * (self.percent or Decimal(0)) / 100


class ReEntry(_Params):
    max_attempts: int = Field(0, ge=0, le=100, description="further entries after the first")
    cooldown_seconds: int = Field(0, ge=0, le=86_400, description="wait this long before each further entry")
    after_reject: bool = False
    after_stop_loss: bool = False


class BracketParams(_Params):
    entry: OrderSpecParams
    stop_loss: Positive
    target: Positive
    trail: Trail | None = None
    reentry: ReEntry | None = None
    tick_size: TickSize = DEFAULT_TICK_SIZE


class TrailingStopParams(_Params):
    account: str = Field(min_length=1, max_length=64)
    instrument: Instrument
    product: Product
    position: int = Field(description="signed net quantity of the position when the strategy was created")
    quantity: int = Field(0, ge=0, description="0: the whole position")
    trail: Trail
    tick_size: TickSize = DEFAULT_TICK_SIZE

    @field_validator("position")
    @classmethod
    def _has_position(cls, value: int) -> int:
        if value == 0:
            raise ValueError("there is no open position to protect")
        return value

    @field_validator("quantity")
    @classmethod
    def _within_position(cls, value: int, info: ValidationInfo) -> int:
        position = info.data.get("position")
        if position is not None and value > abs(position):
            raise ValueError(f"{value} is more than the open position of {abs(position)}")
        return value

    @property
    def protected_quantity(self) -> int:
        return self.quantity or abs(self.position)

    @property
    def closing_side(self) -> Side:
        return Side.SELL if self.position > 0 else Side.BUY


class ScheduleParams(_Params):
    cron: str = Field(description='five fields in IST: minute hour day-of-month month day-of-week, e.g. "15 9 * * 1-5"')
    order: OrderSpecParams
    max_runs: int = Field(0, ge=0, description="0: until stopped")

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(value.split(" ")) != 5:
            raise ValueError(f"expected five fields (minute hour day-of-month month day-of-week), got {value!r}")
        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        try:  # "0 9 30 2 *" parses but never fires
            croniter(value, datetime(2000, 1, 1)).get_next(datetime)
        except Exception:
            raise ValueError(f"{value!r} never fires") from None
        return value


class MtmGuardParams(_Params):
    scope: Scope
    stop_loss: Positive | None = Field(None, description="rupees of loss")
    target: Positive | None = Field(None, validate_default=True, description="rupees of profit")
    then: TradingState

    @field_validator("scope")
    @classmethod
    def _account_or_group(cls, value: Scope) -> Scope:
        if value.kind not in (ScopeKind.ACCOUNT, ScopeKind.GROUP):
            raise ValueError("must be an ACCOUNT or a GROUP")
        if not value.name:
            raise ValueError(f"a {value.kind} scope needs a name")
        return value

    @field_validator("target")
    @classmethod
    def _some_threshold(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        # stop_loss is absent from info.data only when it failed its own check, which is reported already
        if value is None and "stop_loss" in info.data and info.data["stop_loss"] is None:
            raise ValueError("give a stop_loss, a target or both")
        return value

    @field_validator("then")
    @classmethod
    def _restrictive(cls, value: TradingState) -> TradingState:
        if value is TradingState.ACTIVE:
            raise ValueError("must be REDUCING or HALTED")
        return value
