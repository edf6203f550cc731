"""Build the adapter an account's settings ask for."""

from __future__ import annotations

from pathlib import Path

from engine.brokers.base import BrokerAdapter
from engine.brokers.paper import PaperBroker
from engine.config import AccountSettings
from engine.domain import InstrumentId
from engine.instrument_master import InstrumentMaster
from engine.sim.config import MarketSettings
from engine.sim.prices import PricePath


def build_adapter(account: AccountSettings, paper: MarketSettings, data_dir: Path) -> BrokerAdapter:
    state_dir = data_dir / "paper"
    state_dir.mkdir(parents=True, exist_ok=True)
    return PaperBroker.open(
        account.broker_name,
        InstrumentMaster.default(),
        PricePath(paper.seed, paper.volatility),
        state_path=state_dir / f"{account.id}.json",
        opening_cash=account.paper.opening_cash,
        holdings={
            InstrumentId.parse(key): (seed.quantity, seed.average_price) for key, seed in account.paper.holdings.items()
        },
        half_spread_ticks=paper.half_spread_ticks,
        depth_per_second=paper.depth_per_second,
    )
