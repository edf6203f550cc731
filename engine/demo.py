"""The demo a fresh machine runs: two simulated brokers (Kite and Upstox) and three accounts at them.

The daemon starts the simulators as child processes and trades with them over HTTP through the
same adapters a real account uses, so the demo exercises the real order path end to end.
"""

from __future__ import annotations

from decimal import Decimal

from engine.config import AccountSettings, ConnectionSettings, SimLoginSettings
from engine.sim.config import HoldingSeed, MarketSettings, SimAppSettings, SimSettings, SimUserSettings

KITE_APP = SimAppSettings(api_key="demo-kite-app", api_secret="demo-kite-secret")
UPSTOX_APP = SimAppSettings(api_key="demo-upstox-app", api_secret="demo-upstox-secret")


def demo_simulators(market: MarketSettings) -> dict[str, SimSettings]:
    return {
        "kite": SimSettings(
            broker="kite",
            market=market,
            apps=[KITE_APP],
            users=[
                SimUserSettings(
                    user_id="ZD0001",
                    name="Demo Main",
                    holdings={"NSE:INFY": HoldingSeed(quantity=50, average_price=Decimal("1450"))},
                ),
                SimUserSettings(user_id="ZD0002", name="Demo Family"),
            ],
        ),
        "upstox": SimSettings(
            broker="upstox",
            market=market,
            apps=[UPSTOX_APP],
            users=[SimUserSettings(user_id="UD0001", name="Demo Upstox", opening_cash=Decimal("500000"))],
        ),
    }


def _connection(app: SimAppSettings, url: str, user_id: str) -> ConnectionSettings:
    return ConnectionSettings(
        api_key=app.api_key,
        api_secret=app.api_secret,
        redirect_url=app.redirect_url,
        simulator_url=url,
        sim_login=SimLoginSettings(user_id=user_id),
    )


def demo_accounts(urls: dict[str, str]) -> list[AccountSettings]:
    """The demo accounts, given the URL each simulator listens on."""
    return [
        AccountSettings(
            id="zerodha-main",
            broker="kite",
            label="Demo: Zerodha main",
            default=True,
            connection=_connection(KITE_APP, urls["kite"], "ZD0001"),
        ),
        AccountSettings(
            id="zerodha-family",
            broker="kite",
            label="Demo: Zerodha family",
            connection=_connection(KITE_APP, urls["kite"], "ZD0002"),
        ),
        AccountSettings(
            id="upstox-main",
            broker="upstox",
            label="Demo: Upstox main",
            connection=_connection(UPSTOX_APP, urls["upstox"], "UD0001"),
        ),
    ]
