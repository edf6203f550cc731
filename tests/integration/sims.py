"""Simulated brokers for integration tests: flat prices the test pins, and the config of accounts at them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal

import httpx

from engine.sim.config import HoldingSeed, MarketSettings, SimAppSettings, SimSettings, SimUserSettings
from engine.sim.server import SimServer

APP = SimAppSettings(api_key="integration-test", api_secret="integration-secret")
FLAT = MarketSettings(volatility=0, depth_per_second=100_000)
LAKH = 100_000


def sim_user(user_id: str, cash: int = 10 * LAKH, infy: int = 0) -> SimUserSettings:
    """A simulated broker user with `cash` and, if `infy`, that many NSE:INFY shares held at 1400."""
    holdings = {"NSE:INFY": HoldingSeed(quantity=infy, average_price=1400)} if infy else {}
    return SimUserSettings(user_id=user_id, opening_cash=cash, holdings=holdings)


def pin_price(url: str, instrument: str, price: Decimal | float | str) -> None:
    """Hold `instrument` at `price` at the simulator until the test pins it elsewhere."""
    httpx.post(f"{url}/__sim__/prices", json={"instrument": instrument, "price": str(price)}).raise_for_status()


@contextlib.contextmanager
def serving(
    sims: Mapping[str, SimSettings], instruments: Sequence[str] = ("NSE:INFY",), price: int = 1000
) -> Iterator[dict[str, SimServer]]:
    """Simulators by name on 127.0.0.1, each with `instruments` pinned at `price`, stopped on the way out."""
    running = {name: SimServer(settings) for name, settings in sims.items()}
    try:
        for server in running.values():
            server.start()
            for instrument in instruments:
                pin_price(server.url, instrument, price)
        yield running
    finally:
        for server in running.values():
            server.stop()


def sim_account(
    account_id: str,
    broker: str,
    url: str,
    user: str,
    groups: Sequence[str] = (),
    extra: str = "",
    app: SimAppSettings = APP,
) -> str:
    """An [[accounts]] entry that logs in to the simulator at `url` as `user` by itself; `extra` adds keys."""
    listed = ", ".join(f'"{g}"' for g in groups)
    return f"""
[[accounts]]
id = "{account_id}"
broker = "{broker}"
groups = [{listed}]
{extra}
[accounts.connection]
api_key = "{app.api_key}"
api_secret = "{app.api_secret}"
simulator_url = "{url}"
[accounts.connection.sim_login]
user_id = "{user}"
"""
