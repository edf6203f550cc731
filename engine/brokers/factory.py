"""Build the adapter an account's settings ask for, and the simulator auto-login if it has one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from engine.brokers.base import BrokerAdapter
from engine.brokers.kite import KiteAdapter
from engine.brokers.paper import PaperBroker
from engine.brokers.upstox import UpstoxAdapter
from engine.config import AccountSettings
from engine.domain.sessions import TradingSessions
from engine.instrument_master import InstrumentMaster
from engine.sim.autologin import form_login
from engine.sim.config import MarketSettings
from engine.sim.prices import PricePath

KITE_API = "https://api.kite.trade"
KITE_LOGIN = "https://kite.zerodha.com/connect/login"
UPSTOX_API = "https://api.upstox.com"
UPSTOX_ORDERS = "https://api-hft.upstox.com"
UPSTOX_LOGIN = "https://api.upstox.com/v2/login/authorization/dialog"
UPSTOX_INSTRUMENTS = "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"

AutoLogin = Callable[[str], Awaitable[str]]


def build_adapter(account: AccountSettings, market: MarketSettings, data_dir: Path) -> BrokerAdapter:
    if account.broker == "kite":
        return _kite(account, data_dir)
    if account.broker == "upstox":
        return _upstox(account, data_dir)
    state_dir = data_dir / "paper"
    state_dir.mkdir(parents=True, exist_ok=True)
    return PaperBroker.open(
        account.broker_name,
        InstrumentMaster.default(),
        PricePath(market.seed, market.volatility),
        state_path=state_dir / f"{account.id}.json",
        opening_cash=account.paper.opening_cash,
        holdings=account.paper.holding_map(),
        half_spread_ticks=market.half_spread_ticks,
        depth_per_second=market.depth_per_second,
        price_band_percent=market.price_band_percent,
        sessions=TradingSessions() if market.enforce_sessions else None,
        latency_ms=account.paper.latency_ms,
    )


def build_auto_login(account: AccountSettings) -> AutoLogin | None:
    login = account.connection.sim_login
    if login is None or not account.connection.simulator_url:
        return None
    return partial(form_login, user_id=login.user_id, password=login.password)


def _cache_dir(data_dir: Path) -> Path:
    path = data_dir / "instruments"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kite(account: AccountSettings, data_dir: Path) -> KiteAdapter:
    c = account.connection
    sim = c.simulator_url.rstrip("/")
    return KiteAdapter(
        account.broker_name,
        api_key=c.api_key,
        api_secret=c.secret(),
        base_url=sim or c.base_url or KITE_API,
        login_url=f"{sim}/connect/login" if sim else c.login_url or KITE_LOGIN,
        cache_dir=_cache_dir(data_dir),
    )


def _upstox(account: AccountSettings, data_dir: Path) -> UpstoxAdapter:
    c = account.connection
    sim = c.simulator_url.rstrip("/")
    return UpstoxAdapter(
        account.broker_name,
        api_key=c.api_key,
        api_secret=c.secret(),
        redirect_url=c.redirect_url,
        base_url=sim or c.base_url or UPSTOX_API,
        order_url=sim or c.order_url or UPSTOX_ORDERS,
        login_url=f"{sim}/v2/login/authorization/dialog" if sim else c.login_url or UPSTOX_LOGIN,
        instruments_url=f"{sim}/market-quote/instruments/exchange/complete.json.gz"
        if sim
        else c.instruments_url or UPSTOX_INSTRUMENTS,
        cache_dir=_cache_dir(data_dir),
        master=InstrumentMaster.default(),
    )
