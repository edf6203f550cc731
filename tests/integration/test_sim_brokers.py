"""The daemon trading at a simulated Kite and a simulated Upstox over HTTP: orders, portfolio, logins."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from engine.sim.autologin import form_login
from engine.sim.config import HoldingSeed, MarketSettings, SimAppSettings, SimSettings, SimUserSettings
from engine.sim.launcher import SimProcess
from engine.sim.server import SimServer
from tests.integration.daemon import ROOT, Daemon, wait_for
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2

APP = SimAppSettings(api_key="daemon-test", api_secret="daemon-secret")
ARTIFACTS = ROOT / "test-artifacts"
FLAT = MarketSettings(volatility=0, depth_per_second=1000)


def _account(account_id: str, broker: str, url: str, user: str | None, default: bool = False) -> str:
    login = f'\n[accounts.connection.sim_login]\nuser_id = "{user}"\n' if user else ""
    return f"""
[[accounts]]
id = "{account_id}"
broker = "{broker}"
default = {str(default).lower()}
sync_interval_seconds = 0.2
[accounts.connection]
api_key = "{APP.api_key}"
api_secret = "{APP.api_secret}"
simulator_url = "{url}"
{login}"""


def _config(daemon: Daemon, body: str) -> str:
    return f"""
{daemon.tables()}
[paper]
volatility = 0.0
{body}"""


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    kite = SimSettings(
        broker="kite",
        market=FLAT,
        apps=[APP],
        users=[
            SimUserSettings(user_id="KA0001", holdings={"NSE:INFY": HoldingSeed(quantity=7, average_price=1500)}),
            SimUserSettings(user_id="KM0001"),
        ],
    )
    upstox = SimSettings(broker="upstox", market=FLAT, apps=[APP], users=[SimUserSettings(user_id="UA0001")])
    running = {"kite": SimServer(kite).start(), "upstox": SimServer(upstox).start()}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture(scope="module")
def daemon(sims: dict[str, SimServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    ARTIFACTS.mkdir(exist_ok=True)
    d = Daemon(tmp_path_factory.mktemp("simd") / "data", ARTIFACTS / "daemon-sim-brokers.log")
    accounts = (
        _account("kite-a", "kite", sims["kite"].url, "KA0001", default=True)
        + _account("upstox-a", "upstox", sims["upstox"].url, "UA0001")
        + _account("kite-manual", "kite", sims["kite"].url, None)
    )
    d.config.write_text(_config(d, accounts))
    d.start()
    yield d
    d.stop()


def _accounts(d: Daemon) -> dict[str, accounts_pb2.Account]:
    with d.client() as client:
        return {a.id: a for a in client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest()).accounts}


def _status(d: Daemon, account: str) -> str:
    return accounts_pb2.AccountStatus.Name(_accounts(d)[account].status)


def _buy(d: Daemon, account: str, client_id: str, quantity: int = 3) -> orders_pb2.Order:
    with d.client() as client:
        return client.orders.PlaceOrder(
            orders_pb2.PlaceOrderRequest(
                client_order_id=client_id,
                account=account,
                instrument="NSE:INFY",
                side=common_pb2.SIDE_BUY,
                quantity=quantity,
                product=common_pb2.PRODUCT_MIS,
                order_type=common_pb2.ORDER_TYPE_MARKET,
            ),
            timeout=30,
        ).order


def _filled(d: Daemon, order_id: str) -> bool:
    with d.client() as client:
        order = client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id))
    return order.status == orders_pb2.ORDER_STATUS_FILLED


def test_orders_at_both_brokers_show_in_one_portfolio(daemon: Daemon) -> None:
    wait_for(lambda: _status(daemon, "kite-a") == "ACCOUNT_STATUS_ACTIVE", timeout=60)
    wait_for(lambda: _status(daemon, "upstox-a") == "ACCOUNT_STATUS_ACTIVE", timeout=60)
    assert {a.broker for a in _accounts(daemon).values()} == {"zerodha-sim", "upstox-sim"}
    at_kite = _buy(daemon, "kite-a", "both-kite-1", 3)
    at_upstox = _buy(daemon, "upstox-a", "both-upstox-1", 4)
    assert at_kite.broker_order_id and at_upstox.broker_order_id
    wait_for(lambda: _filled(daemon, at_kite.order_id) and _filled(daemon, at_upstox.order_id), timeout=30)

    def consolidated() -> portfolio_pb2.Portfolio | None:
        with daemon.client() as client:
            view = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=["kite-a", "upstox-a"]))
        infy = [p for p in view.positions if p.instrument == "NSE:INFY"]
        return view if infy and infy[0].quantity == 7 else None

    view = wait_for(consolidated, timeout=30)
    accounts = {book.account: book for book in view.accounts}
    assert set(accounts) == {"kite-a", "upstox-a"}
    assert {h.instrument for h in view.holdings} == {"NSE:INFY"}  # kite-a's 7 shares held at the broker


def test_manual_login_through_the_cli(daemon: Daemon) -> None:
    account = wait_for(lambda: _accounts(daemon)["kite-manual"].login_url and _accounts(daemon)["kite-manual"])
    assert accounts_pb2.AccountStatus.Name(account.status) == "ACCOUNT_STATUS_LOGIN_REQUIRED"
    with pytest.raises(grpc.RpcError) as refused:
        _buy(daemon, "kite-manual", "manual-before-login")
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "trademaster accounts login kite-manual" in (refused.value.details() or "")

    redirect = asyncio.run(form_login(account.login_url, "KM0001", "sim"))
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "accounts", "login", "kite-manual", "--redirect", redirect,
         "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=daemon.cli_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "kite-manual" in done.stdout
    assert _status(daemon, "kite-manual") in ("ACCOUNT_STATUS_ACTIVE", "ACCOUNT_STATUS_RECONCILING")
    order = _buy(daemon, "kite-manual", "manual-after-login", 2)
    wait_for(lambda: _filled(daemon, order.order_id), timeout=30)

    bad = subprocess.run(
        [sys.executable, "-m", "clients.cli", "accounts", "login", "kite-manual", "--redirect", "http://x/cb?a=1",
         "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=daemon.cli_env(),
    )  # fmt: skip
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "request_token" in bad.stderr


def test_revoked_token_stops_only_that_account(daemon: Daemon, sims: dict[str, SimServer]) -> None:
    wait_for(lambda: _status(daemon, "upstox-a") == "ACCOUNT_STATUS_ACTIVE", timeout=60)
    httpx.post(f"{sims['kite'].url}/__sim__/revoke", json={"user_id": "KA0001"})
    wait_for(lambda: _status(daemon, "kite-a") == "ACCOUNT_STATUS_LOGIN_REQUIRED", timeout=30)
    with pytest.raises(grpc.RpcError) as refused:
        _buy(daemon, "kite-a", "after-revoke")
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    still = _buy(daemon, "upstox-a", "upstox-carries-on", 1)
    wait_for(lambda: _filled(daemon, still.order_id), timeout=30)


def test_demo_runs_on_simulated_brokers(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "daemon-demo.log"
    d = Daemon(tmp_path / "data", log)
    d.config.write_text(_config(d, ""))  # no accounts: the demo
    d.start()
    try:
        wait_for(lambda: all(a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE for a in _accounts(d).values()), 60)
        accounts = _accounts(d)
        assert sorted(accounts) == ["upstox-main", "zerodha-family", "zerodha-main"]
        assert accounts["zerodha-main"].is_default and accounts["zerodha-main"].broker == "zerodha-sim"
        order = _buy(d, "", "demo-1", 1)
        wait_for(lambda: _filled(d, order.order_id), timeout=30)
    finally:
        assert d.stop() == 0
    urls = re.findall(r"simulated \w+ broker at (http://\S+)", log.read_text())
    assert len(urls) >= 2
    for url in urls[-2:]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/__sim__/health", timeout=2)


def test_sim_command_serves_until_stopped(tmp_path: Path) -> None:
    process = SimProcess.start(SimSettings(broker="upstox"), tmp_path)
    try:
        health = httpx.get(f"{process.url}/__sim__/health", timeout=5).json()
        assert health["broker"] == "upstox" and health["status"] == "ok"
    finally:
        process.stop()
    bad = subprocess.run(
        [sys.executable, "-m", "clients.cli", "sim", "--broker", "nyse"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "broker" in bad.stderr
