"""Fixtures shared by the simulator and paper-broker tests: a hand-driven clock and flat prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from engine.domain import InstrumentId
from engine.instrument_master import InstrumentMaster
from engine.sim.prices import PricePath

T0 = datetime(2026, 11, 23, 4, 0, 0, tzinfo=UTC)  # a Monday, 09:30 IST


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def master() -> InstrumentMaster:
    return InstrumentMaster.default()


@pytest.fixture
def prices() -> PricePath:
    path = PricePath(seed=1, volatility=0)
    path.set_price(InstrumentId.parse("NSE:INFY"), Decimal("1500.0"))  # tick 0.1: bid 1499.9, ask 1500.1
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
