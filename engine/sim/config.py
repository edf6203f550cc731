"""Settings of the simulated market and of the simulated brokers' users and apps.

Shared by the daemon's paper accounts (`[paper]`, `accounts.paper`) and by `trademaster sim`, so a
paper account and a simulator user are described the same way.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator

from engine.domain import InstrumentId
from engine.instrument_master import InstrumentMaster
from engine.settings_base import StrictModel

SimBroker = Literal["kite", "upstox"]


class MarketSettings(StrictModel):
    """The simulated market every paper account and simulator user trades in."""

    seed: int = 7
    volatility: float = Field(0.00005, ge=0, le=0.05, description="per-second log-return standard deviation")
    half_spread_ticks: int = Field(1, ge=0, le=100)
    depth_per_second: int = Field(5000, ge=1, description="units that fill per instrument, side and second")
    price_band_percent: Decimal = Field(
        Decimal(0), ge=0, le=100, description="refuse prices this far from the previous close; 0 disables"
    )
    enforce_sessions: bool = Field(False, description="refuse orders outside exchange hours and on holidays")


class HoldingSeed(StrictModel):
    quantity: int = Field(gt=0)
    average_price: Decimal = Field(gt=0)


class BookSettings(StrictModel):
    """What a fresh simulated account starts with."""

    opening_cash: Decimal = Field(Decimal("1000000"), ge=0)
    holdings: dict[str, HoldingSeed] = Field(default_factory=dict)

    @field_validator("holdings")
    @classmethod
    def _instruments_parse(cls, value: dict[str, HoldingSeed]) -> dict[str, HoldingSeed]:
        master = InstrumentMaster.default()
        for key in value:
            if InstrumentId.parse(key) not in master:
                raise ValueError(f"unknown instrument {key}")
        return value

    def holding_map(self) -> dict[InstrumentId, tuple[int, Decimal]]:
        return {InstrumentId.parse(k): (h.quantity, h.average_price) for k, h in self.holdings.items()}


class PaperBookSettings(BookSettings):
    """A paper account's book, and how slowly its imitated broker answers."""

    latency_ms: float = Field(
        0,
        ge=0,
        le=10_000,
        description="wait this long in every place, modify and cancel, as a real broker's round trip takes;"
        " for benchmarks and tests of what runs in parallel",
    )


class SimAppSettings(StrictModel):
    """A developer app registered at the simulated broker (Kite's api_key, Upstox's client_id)."""

    api_key: str = Field(min_length=1)
    api_secret: str = Field(min_length=1)
    redirect_url: str = "http://127.0.0.1:8765/callback"
    postback_url: str = Field("", description="Kite: where order updates are POSTed; empty sends none")


class SimUserSettings(BookSettings):
    user_id: str = Field(min_length=1, max_length=20)
    password: str = "sim"
    name: str = "Sim User"
    email: str = "sim@example.invalid"


class SimSettings(StrictModel):
    broker: SimBroker
    market: MarketSettings = Field(default_factory=MarketSettings)
    apps: list[SimAppSettings] = Field(
        default_factory=lambda: [SimAppSettings(api_key="sim_api_key", api_secret="sim_api_secret")]
    )
    users: list[SimUserSettings] = Field(default_factory=lambda: [SimUserSettings(user_id="SIM001")])
    clock_start: datetime | None = Field(None, description="start the simulator's clock at this instant")
    fault_seed: int = 0
