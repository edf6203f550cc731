"""The web dashboard in a real browser against the real daemon: sign in, place an order from the ticket after its
routing preview, see the fill stream in and the position appear, send a batch and an exit, press the kill switch
and see the next order refused with the daemon's own message, resume, reload (the PnL chart reads the day's
history), sign out, and lose a revoked token's session; at desktop width and at phone width.

Debian's chromium (`make test` installs it) runs headless through Playwright; the built dashboard
(clients/web/dist, `make web`) is served by the daemon itself on server.web_listen. Screenshots of each step go
to test-artifacts/. With UPDATE_DOCS_SCREENSHOT=1 the 1280x800 view with data is also written to
docs/dashboard.png, the README's picture.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from engine.sim.config import SimSettings
from engine.sim.server import SimServer
from tests.integration.daemon import ROOT, Daemon, free_port, server_tables, wait_for
from tests.integration.sims import APP, FLAT, LAKH, pin_price, serving, sim_account, sim_user
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, security_pb2

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DIST = ROOT / "clients" / "web" / "dist"
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ACCOUNTS = ("zerodha-main", "zerodha-family", "upstox-main")
INFY = "NSE:INFY"
OPENING_PRICE = Decimal("1500")
KILL_REASON = "e2e kill switch"
TIMEOUT_MS = 30_000
EXPECT_TIMEOUT_MS = 15_000  # a shared two-core machine runs the daemon, Ray, two simulators and the browser


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, SimServer]]:
    """The demo's brokers: a Kite with a main account (holding 50 INFY) and a family one, and an Upstox."""
    kite = SimSettings(broker="kite", market=FLAT, apps=[APP], users=[sim_user("ZD0001", infy=50), sim_user("ZD0002")])
    upstox = SimSettings(broker="upstox", market=FLAT, apps=[APP], users=[sim_user("UD0001", 5 * LAKH)])
    with serving({"kite": kite, "upstox": upstox}, price=int(OPENING_PRICE)) as running:
        yield running


@pytest.fixture(scope="module")
def web_address() -> str:
    """Where the daemon serves the dashboard and gRPC-web."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def daemon(sims: dict[str, SimServer], web_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    assert (DIST / "index.html").is_file(), f"the dashboard is not built in {DIST}: run `make web`"
    d = Daemon(tmp_path_factory.mktemp("dashboard") / "data", ARTIFACTS / "daemon-dashboard.log")
    web = f'web_listen = "{web_address}"\nweb_root = "{DIST}"\n'
    kite, upstox = sims["kite"].url, sims["upstox"].url
    extra = "sync_interval_seconds = 0.2\n"
    d.config.write_text(
        server_tables(d.grpc_port, d.metrics_port, server_extra=web)
        + "\n[portfolio]\npnl_sample_seconds = 1\n"
        + sim_account("zerodha-main", "kite", kite, "ZD0001", ["family"], f'default = true\nlabel = "Main"\n{extra}')
        + sim_account("zerodha-family", "kite", kite, "ZD0002", ["family"], f'label = "Family"\n{extra}')
        + sim_account("upstox-main", "upstox", upstox, "UD0001", [], f'label = "Upstox"\n{extra}')
    )
    d.start()
    with d.client() as client:
        wait_for(lambda: _all_active(client), timeout=60, interval=0.5)
    yield d
    d.stop()


def _all_active(client) -> bool:
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
    return len(accounts) == len(ACCOUNTS) and all(a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE for a in accounts)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Session:
    """One browser page on the dashboard, keeping every request on 127.0.0.1 and every page error."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.outside: list[str] = []
        self.errors: list[str] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.route("**/*", self._local_only)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _local_only(self, route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == "127.0.0.1" or request.url.startswith("data:"):
            route.continue_()
        else:
            self.outside.append(request.url)
            route.abort()

    def by(self, testid: str):
        return self.page.get_by_test_id(testid)

    def step(self, name: str) -> None:
        """Screenshots at desktop and phone width; at phone width the page must not scroll sideways."""
        self.page.screenshot(path=ARTIFACTS / f"dashboard-{name}-1280.png", full_page=True)
        self.page.set_viewport_size(PHONE)
        try:
            width = self.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"{name}: the page is {width[0]} px wide at a {width[1]} px phone"
            self.page.screenshot(path=ARTIFACTS / f"dashboard-{name}-phone.png", full_page=True)
        finally:
            self.page.set_viewport_size(DESKTOP)


@pytest.fixture
def session(browser: Browser, daemon: Daemon, web_address: str) -> Iterator[Session]:
    context = browser.new_context(viewport=DESKTOP)
    s = Session(context.new_page(), f"http://{web_address}/")
    yield s
    context.close()
    assert not s.outside, f"the dashboard reached beyond 127.0.0.1: {s.outside}"
    assert not s.errors, f"the page threw: {s.errors}"


def _fill_of(client, order_id: str) -> orders_pb2.Fill | None:
    request = orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True)
    for event in client.orders.StreamOrderEvents(request, timeout=30):
        if event.WhichOneof("event") == "fill" and event.fill.order_id == order_id:
            return event.fill
    return None


def _refusal(client) -> str:
    """What the daemon says to an order while the kill switch is on, as the dashboard prints it."""
    request = orders_pb2.PlaceOrderRequest(
        client_order_id="e2e-refused", account="upstox-main", instrument=INFY, side=common_pb2.SIDE_BUY, quantity=1,
        product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_MARKET,
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as refused:
        client.orders.PlaceOrder(request, timeout=30)
    return f"{refused.value.code().name}: {refused.value.details()}"


def _move_prices(sims: dict[str, SimServer], prices: list[str]) -> None:
    """A few price moves a second and a half apart, so the PnL curve has a shape."""
    for price in prices:
        for server in sims.values():
            pin_price(server.url, INFY, price)
        time.sleep(1.5)


def test_dashboard_trading_day(session: Session, daemon: Daemon, sims: dict[str, SimServer]) -> None:
    page, by = session.page, session.by

    # Sign in: a wrong token is refused with the daemon's status, the admin's opens the dashboard.
    page.goto(session.base_url)
    by("signin-token").fill("tm_nobody_wrong")
    by("signin-submit").click()
    expect(by("signin-error")).to_contain_text("UNAUTHENTICATED")
    session.step("signin")
    by("signin-token").fill(daemon.admin_token)
    by("signin-submit").click()
    expect(by("whoami")).to_contain_text("admin")
    for account in ACCOUNTS:
        expect(by(f"account-status-{account}")).to_have_text("ACTIVE")
    expect(by("total-total-pnl")).to_contain_text("₹")
    expect(by("holdings-table-row").filter(has_text=INFY)).to_contain_text("50")
    session.step("signed-in")

    # The ticket: routed ("auto") the preview names an account and why, with every candidate's scores.
    by("ticket-instrument").fill(INFY)
    by("ticket-quantity").fill("10")
    by("ticket-side").select_option(label="BUY")
    by("ticket-type").select_option(label="MARKET")
    by("ticket-product").select_option(label="MIS")
    by("ticket-account").select_option("auto")
    legs = by("ticket-preview-legs").locator("li")
    expect(legs).to_have_count(1)
    routed_to = legs.first.get_attribute("data-account")
    assert routed_to in ACCOUNTS
    expect(by("ticket-preview-reason")).to_contain_text(routed_to)
    expect(by("ticket-preview-candidates").locator("tbody tr")).to_have_count(len(ACCOUNTS))
    session.step("preview-routed")

    # A chosen account overrides routing, and the preview says so; then the order is placed.
    by("ticket-account").select_option("account:upstox-main")
    expect(by("ticket-preview-legs").locator("li")).to_have_attribute("data-account", "upstox-main")
    expect(by("ticket-preview-reason")).to_contain_text("names this account")
    by("ticket-place").click()
    order_id = by("ticket-result-order").inner_text(timeout=TIMEOUT_MS)
    assert order_id

    # The fill arrives on the live stream with its account, quantity and price, and the order shows FILLED.
    with daemon.client() as client:
        fill = wait_for(lambda: _fill_of(client, order_id), timeout=30, interval=0.5)
    fill_row = by("fill-row").filter(has_text=f"@ {fill.price}")
    expect(fill_row).to_have_attribute("data-account", "upstox-main")
    expect(fill_row).to_contain_text(f"BUY 10 {INFY}")
    expect(by(f"order-status-{order_id}")).to_have_text("FILLED")
    expect(by("ticket-result-status")).to_have_text("FILLED")  # the ticket's own result follows the stream too

    # The position, consolidated; prices move and the PnL curve follows them.
    position = by("positions-table-row").filter(has_text="MIS")
    expect(position).to_have_attribute("data-instrument", INFY)
    expect(position).to_contain_text("upstox-main")
    _move_prices(sims, ["1503", "1508", "1506", "1512"])
    expect(position).to_contain_text("1512")
    expect(by("holdings-table-row")).to_contain_text("1512")
    expect(by("pnl-chart").locator("path.line")).to_be_visible()
    by("ticket-account").select_option("auto")
    expect(by("ticket-preview-candidates")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=ARTIFACTS / "dashboard-1280x800.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(ARTIFACTS / "dashboard-1280x800.png", DOCS_SCREENSHOT)

    # The drill-down: upstox-main's own positions and funds.
    by("account-toggle-upstox-main").click()
    expect(by("account-positions-upstox-main-row")).to_contain_text("10")
    expect(by("account-funds-upstox-main")).to_contain_text("Available")
    session.step("filled")

    # A batch to the family group (base quantity × multiplier), then an exit of that group's INFY, each confirmed.
    by("ops-tab-batch").click()
    by("batch-instrument").fill(INFY)
    by("batch-target").select_option("group:family")
    by("batch-base-qty").fill("2")
    by("batch-submit").click()
    expect(by("confirm-dialog")).to_contain_text("group family")
    by("confirm-ok").click()
    expect(by("ops-summary")).to_contain_text("2 placed, 0 failed, 0 skipped")
    expect(by("ops-leg").and_(page.locator("[data-outcome=PLACED]"))).to_have_count(2)
    mis_quantity = position.locator("td").nth(2)  # the consolidated INFY MIS row: instrument, product, quantity
    expect(mis_quantity).to_have_text("14")
    expect(position).to_contain_text("zerodha-family")
    session.step("batch")
    by("ops-tab-exit").click()
    by("exit-instrument").fill(INFY)
    by("exit-scope").select_option("group:family")
    by("exit-submit").click()
    expect(by("confirm-dialog")).to_contain_text("Close every NSE:INFY position in group family")
    by("confirm-ok").click()
    expect(by("ops-leg").and_(page.locator("[data-outcome=PLACED]"))).to_have_count(2)
    expect(mis_quantity).to_have_text("10")  # the family's 2 + 2 sold; the accounts stay listed with today's PnL
    session.step("exit")

    # The kill switch asks first: cancelling changes nothing, confirming halts every account.
    by("ops-tab-kill").click()
    by("kill-scope").select_option("all")
    by("kill-reason").fill(KILL_REASON)
    by("kill-switch").click()
    expect(by("confirm-dialog")).to_contain_text("Halt every account")
    by("confirm-cancel").click()
    expect(by("confirm-dialog")).to_have_count(0)
    expect(by("ops-summary")).to_have_count(0)
    by("kill-switch").click()
    session.step("kill-confirm")
    by("confirm-ok").click()
    expect(by("ops-summary")).to_contain_text(re.compile(rf"every account: HALTED by admin \({KILL_REASON}\)"))
    for account in ACCOUNTS:
        expect(by(f"account-state-{account}")).to_have_text("HALTED")

    # The next order is refused, and the ticket shows the daemon's status and message as they are.
    with daemon.client() as client:
        refusal = _refusal(client)
    assert refusal.startswith("FAILED_PRECONDITION: ") and KILL_REASON in refusal, refusal
    by("ticket-account").select_option("account:upstox-main")
    by("ticket-place").click()
    expect(by("ticket-error")).to_have_text(refusal)
    expect(by("ticket-preview-error")).to_contain_text("HALTED")
    session.step("refused")

    # Resuming (confirmed) lifts the halt; the token survives a reload; signing out forgets it.
    by("ops-tab-kill").click()
    by("kill-resume").click()
    by("confirm-ok").click()
    expect(by("ops-summary")).to_contain_text("every account: ACTIVE by admin")
    expect(by("account-state-upstox-main")).to_have_count(0)
    page.reload()
    expect(by("whoami")).to_contain_text("admin")
    # The reloaded PnL chart starts from the day's samples (GetPnlHistory; taken every second here), not only from
    # the live snapshots that come after: a broken history call would draw a curve all the same.
    expect(by("pnl-chart")).to_have_attribute("data-history-points", re.compile(r"^[1-9][0-9]*$"))
    expect(by("pnl-error")).to_be_hidden()
    by("signout").click()
    expect(by("signin-form")).to_be_visible()
    assert page.evaluate("window.sessionStorage.length") == 0

    # A token revoked mid-session: the next call is refused and the page returns to the sign-in form, saying why.
    with daemon.client() as client:
        made = client.security.CreateToken(security_pb2.CreateTokenRequest(description="dashboard e2e"), timeout=10)
        by("signin-token").fill(made.secret)
        by("signin-submit").click()
        expect(by("whoami")).to_contain_text("admin")
        client.security.RevokeToken(security_pb2.RevokeTokenRequest(id=made.token.id), timeout=10)
    expect(by("signin-error")).to_contain_text("UNAUTHENTICATED")
    assert page.evaluate("window.sessionStorage.length") == 0
