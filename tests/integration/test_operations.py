"""Multi-account operations against the real daemon: batch orders, exits, cancel-all and the kill switch.

Twenty paper accounts b01..b20, all in group `fleet`. b13's limits allow one unit per order, so a batch leg
there fails. b01..b03 (group `exits`) trade INFY in several products for the exit test; b03 holds INFY.
b04 and b05 are group `halt` for the kill switch. DOTTED has an id no client order id could contain. Each test
places what it needs on its own accounts.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from clients.python import Client
from engine.domain.ids import short_code
from engine.routing.batch import batch_client_id
from tests.integration.daemon import ROOT, Daemon, wait_for
from trademaster.v1 import accounts_pb2, common_pb2, operations_pb2, orders_pb2, portfolio_pb2, security_pb2

ACCOUNTS = [f"b{i:02d}" for i in range(1, 21)]
DOTTED = "zerodha.main-with-the-longest-id-allowed"  # 40 characters, one of them '.'
MULTIPLIERS = {"b06": "2", "b07": "1.5", "b08": "0.5"}
GROUPS = {"b01": ["exits"], "b02": ["exits"], "b03": ["exits"], "b04": ["halt"], "b05": ["halt"]}
REFUSING = "b13"
NIFTY = "NFO:NIFTY26NOVFUT"  # lot 65
OP = operations_pb2
C = common_pb2


def _account(name: str) -> str:
    text = f"""
[[accounts]]
id = "{name}"
venue = "zerodha"
groups = {["fleet", *GROUPS.get(name, [])]!r}
multiplier = "{MULTIPLIERS.get(name, "1")}"
sync_interval_seconds = 0.5
orders_per_second = 0
""".replace("'", '"')
    if name == "b03":
        text += '[accounts.paper.holdings."NSE:INFY"]\nquantity = 20\naverage_price = "1400"\n'
    if name == REFUSING:
        text += "[accounts.risk]\nmax_order_quantity = 1\n"
    return text


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("operations") / "data", ROOT / "test-artifacts" / "daemon-operations.log")
    d.config.write_text(
        f"""
{d.tables()}
[paper]
volatility = 0.0
depth_per_second = 100000
[security]
api_requests_per_second = 1000
api_burst = 1000
"""
        + "".join(_account(a) for a in [*ACCOUNTS, DOTTED])
    )
    d.start()
    with d.client() as client:
        wait_for(lambda: _all_active(client), timeout=120, interval=0.5)
    yield d
    d.stop()


def _all_active(client: Client) -> bool:
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
    return all(a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE for a in accounts)


def _batch(batch_id: str, instrument: str = "NSE:SBIN", **fields: object) -> OP.BatchOrderRequest:
    base: dict[str, object] = {
        "client_batch_id": batch_id,
        "instrument": instrument,
        "side": C.SIDE_BUY,
        "product": C.PRODUCT_MIS,
        "order_type": C.ORDER_TYPE_MARKET,
    }
    return OP.BatchOrderRequest(**{**base, **fields})


def _resting(batch_id: str, accounts: list[str]) -> OP.BatchOrderRequest:
    """Far below the market: the orders rest until cancelled."""
    return _batch(batch_id, order_type=C.ORDER_TYPE_LIMIT, price="100", quantities=dict.fromkeys(accounts, 1))


def _order(client_id: str, account: str, side: int, quantity: int, product: int, instrument: str = "NSE:INFY"):
    return orders_pb2.PlaceOrderRequest(
        client_order_id=client_id, account=account, instrument=instrument, side=side, quantity=quantity,
        product=product, order_type=C.ORDER_TYPE_MARKET,
    )  # fmt: skip


def _open_orders(client: Client, account: str) -> list[orders_pb2.Order]:
    request = orders_pb2.ListOrdersRequest(account=account, open_only=True)
    return list(client.orders.ListOrders(request, timeout=10).orders)


def _positions(client: Client, accounts: list[str], instrument: str) -> dict[tuple[str, int], int]:
    """(account, product) -> the daemon's net position in `instrument`; a holding counts as ("<account>", 0).

    A delivery sale out of holdings shows as a negative CNC day position beside the shrunken holding (README,
    architecture), so "flat" is a zero position in every product but CNC, and no holding left.
    """
    book = client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(accounts=accounts), timeout=10)
    found: dict[tuple[str, int], int] = {}
    for account in book.accounts:
        for p in account.positions:
            if p.instrument == instrument and p.quantity:
                found[(account.account, p.product)] = p.quantity
        for h in account.holdings:
            if h.instrument == instrument and h.quantity:
                found[(account.account, 0)] = h.quantity
    return found


def _limit(client_id: str, account: str) -> orders_pb2.PlaceOrderRequest:
    request = _order(client_id, account, C.SIDE_BUY, 1, C.PRODUCT_MIS, "NSE:SBIN")
    request.order_type, request.price = C.ORDER_TYPE_LIMIT, "100"
    return request


def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


# -- batch ------------------------------------------------------------------------------------------


def test_batch_to_twenty_accounts_reports_every_leg(daemon: Daemon) -> None:
    request = _batch("fleet-1", quantities=dict.fromkeys(ACCOUNTS, 2))
    with daemon.client() as client:
        reply = client.operations.BatchOrder(request, timeout=120)
        again = client.operations.BatchOrder(request, timeout=120)
    assert [leg.account for leg in reply.legs] == ACCOUNTS
    assert (reply.placed, reply.failed, reply.skipped) == (19, 1, 0)
    failed = next(leg for leg in reply.legs if leg.outcome == OP.LEG_OUTCOME_FAILED)
    assert failed.account == REFUSING and failed.error_code == "FAILED_PRECONDITION"
    assert "max_order_quantity" in failed.error and not failed.HasField("order"), failed.error
    for leg in reply.legs:
        if leg.account != REFUSING:
            assert leg.outcome == OP.LEG_OUTCOME_PLACED and leg.quantity == 2
            assert leg.order.client_order_id == batch_client_id("fleet-1", leg.account)
            assert leg.order.account == leg.account
    # A retry sends nothing new: the placed legs come back as duplicates, the refused one is still refused.
    assert {leg.outcome for leg in again.legs if leg.account != REFUSING} == {OP.LEG_OUTCOME_DUPLICATE}
    assert {leg.order.order_id for leg in again.legs if leg.account != REFUSING} == {
        leg.order.order_id for leg in reply.legs if leg.account != REFUSING
    }


def test_multiplier_batch_rounds_down_to_lots_and_skips(daemon: Daemon) -> None:
    """65 (one lot) times 2, 1.5 and 0.5: two lots, one lot, and nothing for the half lot."""
    request = _batch(
        "lots-1", NIFTY, base_quantity=65, accounts=["b06", "b07", "b08"], product=C.PRODUCT_NRML,
        order_type=C.ORDER_TYPE_LIMIT, price="20000",
    )  # fmt: skip
    with daemon.client() as client:
        reply = client.operations.BatchOrder(request, timeout=60)
        client.operations.CancelOpenOrders(OP.CancelOpenOrdersRequest(accounts=["b06", "b07"]), timeout=60)
    legs = {leg.account: leg for leg in reply.legs}
    assert [leg.account for leg in reply.legs] == ["b06", "b07", "b08"]
    assert legs["b06"].quantity == 130 and legs["b06"].outcome == OP.LEG_OUTCOME_PLACED
    assert legs["b07"].quantity == 65 and legs["b07"].outcome == OP.LEG_OUTCOME_PLACED
    assert legs["b08"].quantity == 0 and legs["b08"].outcome == OP.LEG_OUTCOME_SKIPPED
    assert "under one lot of 65" in legs["b08"].error
    assert (reply.placed, reply.failed, reply.skipped) == (2, 0, 1)


def test_stream_batch_yields_one_message_per_leg(daemon: Daemon) -> None:
    accounts = ["b09", "b10", "b11", "b12"]
    with daemon.client() as client:
        legs = list(client.operations.StreamBatchOrder(_resting("stream-1", accounts), timeout=60))
        client.operations.CancelOpenOrders(OP.CancelOpenOrdersRequest(accounts=accounts), timeout=60)
    assert sorted(leg.account for leg in legs) == accounts
    assert all(leg.outcome == OP.LEG_OUTCOME_PLACED and leg.order.order_id for leg in legs)


def test_batch_validation_names_the_field_and_a_foreign_account_refuses_everything(daemon: Daemon) -> None:
    with daemon.client() as client:
        cases = {
            "base_quantity": _batch("v1", quantities={"b01": 1}, base_quantity=1),
            "quantities": _batch("v2"),
            "quantities: unknown": _batch("v3", quantities={"nobody": 1}),
            "quantities: b01: must be 0 or more": _batch("v4", quantities={"b01": -1}),
            "quantities: b01": _batch("v5", NIFTY, quantities={"b01": 10}, product=C.PRODUCT_NRML),  # not a lot
            "group": _batch("v6", base_quantity=1, group="nosuch"),
            "instrument": _batch("v7", "NSE:NOSUCH", base_quantity=1),
            "client_batch_id": _batch("x" * 56, quantities={"b01": 1}),  # "-<account code>" makes it too long
        }
        for field, request in cases.items():
            refused = _error(lambda request=request: client.operations.BatchOrder(request, timeout=30))
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, refused.details())
            assert refused.details().startswith(field), (field, refused.details())
        tess = security_pb2.AddUserRequest(name="tess", role=security_pb2.ROLE_TRADER, accounts=["b20"])
        client.security.AddUser(tess)
        token = client.security.CreateToken(security_pb2.CreateTokenRequest(user="tess")).secret
    with daemon.client(token=token) as tess:
        refused = _error(lambda: tess.operations.BatchOrder(_batch("mine", quantities={"b20": 1, "b19": 1})))
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED and "b19" in refused.details()
        refused = _error(lambda: tess.operations.BatchOrder(_batch("mine", base_quantity=1, group="fleet")))
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    with daemon.client() as client:  # nothing was sent, not even to tess's own account
        leg_id = batch_client_id("mine", "b20")
        missing = _error(lambda: client.orders.GetOrder(orders_pb2.GetOrderRequest(client_order_id=leg_id)))
    assert missing.code() == grpc.StatusCode.NOT_FOUND


# -- exit -------------------------------------------------------------------------------------------


def test_exit_by_symbol_across_products_ends_flat(daemon: Daemon) -> None:
    """b01 is long INFY intraday, b02 short intraday and long delivery bought today, b03 holds INFY; b01 also
    holds SBIN, which an INFY exit leaves alone. Then NRML futures: b01 short, b02 long."""
    buy, sell = C.SIDE_BUY, C.SIDE_SELL
    exits = ["b01", "b02", "b03"]
    with daemon.client() as client:
        for request in (
            _order("x-b01-mis", "b01", buy, 10, C.PRODUCT_MIS),
            _order("x-b01-sbin", "b01", buy, 4, C.PRODUCT_MIS, "NSE:SBIN"),
            _order("x-b02-mis", "b02", sell, 5, C.PRODUCT_MIS),
            _order("x-b02-cnc", "b02", buy, 3, C.PRODUCT_CNC),
            _order("x-b01-fut", "b01", sell, 65, C.PRODUCT_NRML, NIFTY),
            _order("x-b02-fut", "b02", buy, 65, C.PRODUCT_NRML, NIFTY),
        ):
            assert client.orders.PlaceOrder(request, timeout=30).order.status != orders_pb2.ORDER_STATUS_REJECTED
        held = {("b01", C.PRODUCT_MIS): 10, ("b02", C.PRODUCT_MIS): -5, ("b02", C.PRODUCT_CNC): 3, ("b03", 0): 20}
        wait_for(lambda: _positions(client, exits, "NSE:INFY") == held, timeout=30)
        wait_for(lambda: _positions(client, ["b01"], "NSE:SBIN").get(("b01", C.PRODUCT_MIS), 0) >= 4, timeout=30)
        sbin = _positions(client, ["b01"], "NSE:SBIN")
        everything = OP.ExitPositionsRequest(
            client_exit_id="out-1", instrument="NSE:INFY", group="exits", include_holdings=True
        )
        reply = client.operations.ExitPositions(everything, timeout=60)
        sent = {(leg.account, leg.order.product, leg.order.side, leg.quantity) for leg in reply.legs}
        assert sent == {
            ("b01", C.PRODUCT_MIS, sell, 10), ("b02", C.PRODUCT_MIS, buy, 5), ("b02", C.PRODUCT_CNC, sell, 3),
            ("b03", C.PRODUCT_CNC, sell, 20),
        }  # fmt: skip
        assert all(leg.outcome == OP.LEG_OUTCOME_PLACED for leg in reply.legs), reply
        assert all(leg.order.client_order_id.startswith(f"out-1-{short_code(leg.account)}-") for leg in reply.legs)
        flat = {("b03", C.PRODUCT_CNC): -20}  # the holding sold: a delivery sale, not a short
        wait_for(lambda: _positions(client, exits, "NSE:INFY") == flat, timeout=30)
        assert _positions(client, ["b01"], "NSE:SBIN") == sbin

        futures = client.operations.ExitPositions(
            OP.ExitPositionsRequest(client_exit_id="out-2", instrument=NIFTY, accounts=["b01", "b02"]), timeout=60
        )
        sent = {(leg.account, leg.order.product, leg.order.side, leg.quantity) for leg in futures.legs}
        assert sent == {("b01", C.PRODUCT_NRML, buy, 65), ("b02", C.PRODUCT_NRML, sell, 65)}
        wait_for(lambda: not _positions(client, ["b01", "b02"], NIFTY), timeout=30)
        idle = client.operations.ExitPositions(
            OP.ExitPositionsRequest(client_exit_id="out-3", instrument=NIFTY, accounts=["b03"]), timeout=60
        )
    assert [(leg.account, leg.outcome) for leg in idle.legs] == [("b03", OP.LEG_OUTCOME_SKIPPED)]
    assert "nothing to exit" in idle.legs[0].error


# -- cancel-all and the kill switch -----------------------------------------------------------------


def test_cancel_all_cancels_the_scopes_open_orders_only(daemon: Daemon) -> None:
    with daemon.client() as client:
        client.operations.BatchOrder(_resting("rest-1", ["b14", "b15", "b16"]), timeout=60)
        nifty = _batch("rest-2", NIFTY, quantities={"b14": 65}, product=C.PRODUCT_NRML,
                       order_type=C.ORDER_TYPE_LIMIT, price="20000")  # fmt: skip
        client.operations.BatchOrder(nifty, timeout=60)
        only_sbin = client.operations.CancelOpenOrders(
            OP.CancelOpenOrdersRequest(accounts=["b14", "b15"], instrument="NSE:SBIN"), timeout=60
        )
        assert sorted(o.account for o in only_sbin.cancelled) == ["b14", "b15"] and not only_sbin.failed
        assert all(o.status == orders_pb2.ORDER_STATUS_CANCELLED for o in only_sbin.cancelled)
        assert [o.instrument for o in _open_orders(client, "b14")] == [NIFTY]
        assert len(_open_orders(client, "b16")) == 1  # not in the scope
        rest = client.operations.CancelOpenOrders(OP.CancelOpenOrdersRequest(accounts=["b14", "b16"]), timeout=60)
        assert sorted(o.account for o in rest.cancelled) == ["b14", "b16"]
        assert not _open_orders(client, "b14") and not _open_orders(client, "b16")


def test_kill_switch_cancels_halts_and_still_allows_cancels(daemon: Daemon) -> None:
    halt = C.Scope(kind=C.SCOPE_KIND_GROUP, name="halt")
    with daemon.client() as client:
        client.operations.BatchOrder(_resting("pre-kill", ["b04", "b05"]), timeout=60)
        killed = client.operations.Kill(OP.KillRequest(scope=halt, reason="test kill"), timeout=60)
        assert killed.state.state == C.TRADING_STATE_HALTED and killed.state.reason == "test kill"
        # cancelled under HALTED: the halt is set first, and cancels are always allowed
        assert sorted(o.account for o in killed.cancelled.cancelled) == ["b04", "b05"]
        assert not killed.cancelled.failed and not killed.HasField("exits")
        assert not _open_orders(client, "b04") and not _open_orders(client, "b05")
        refused = _error(lambda: client.orders.PlaceOrder(_limit("after-kill", "b04")))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "group halt" in refused.details() and "test kill" in refused.details(), refused.details()
        legs = client.operations.BatchOrder(_resting("during-kill", ["b04", "b05", "b17"]), timeout=60).legs
        assert [leg.outcome for leg in legs] == [OP.LEG_OUTCOME_FAILED, OP.LEG_OUTCOME_FAILED, OP.LEG_OUTCOME_PLACED]
        assert all("group halt" in leg.error for leg in legs[:2])

        active = OP.SetTradingStateRequest(scope=halt, state=C.TRADING_STATE_ACTIVE)
        client.operations.SetTradingState(active, timeout=30)
        resting = client.orders.PlaceOrder(_limit("halted-cancel", "b05"), timeout=30).order
        account = C.Scope(kind=C.SCOPE_KIND_ACCOUNT, name="b05")
        client.operations.SetTradingState(OP.SetTradingStateRequest(scope=account, state=C.TRADING_STATE_HALTED))
        states = client.operations.GetTradingStates(OP.GetTradingStatesRequest(), timeout=30)
        assert {a.account: a.state for a in states.accounts}["b05"] == C.TRADING_STATE_HALTED
        cancelled = client.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=resting.order_id), timeout=30)
        assert cancelled.status == orders_pb2.ORDER_STATUS_CANCELLED


def test_kill_with_flatten_closes_the_positions_then_halts(daemon: Daemon) -> None:
    scope = C.Scope(kind=C.SCOPE_KIND_ACCOUNT, name="b18")
    with daemon.client() as client:
        client.orders.PlaceOrder(_order("flat-long", "b18", C.SIDE_BUY, 7, C.PRODUCT_MIS), timeout=30)
        client.operations.BatchOrder(_resting("flat-rest", ["b18"]), timeout=60)
        wait_for(lambda: _positions(client, ["b18"], "NSE:INFY") == {("b18", C.PRODUCT_MIS): 7}, timeout=30)
        missing_id = _error(lambda: client.operations.Kill(OP.KillRequest(scope=scope, flatten=True), timeout=60))
        assert missing_id.details().startswith("client_kill_id"), missing_id.details()
        kill = OP.KillRequest(scope=scope, flatten=True, client_kill_id="k-b18")
        killed = client.operations.Kill(kill, timeout=60)
        assert killed.state.state == C.TRADING_STATE_HALTED and killed.state.reason == "kill switch"
        assert [o.account for o in killed.cancelled.cancelled] == ["b18"]
        sent = {(leg.order.instrument, leg.order.side, leg.quantity) for leg in killed.exits.legs}
        assert ("NSE:INFY", C.SIDE_SELL, 7) in sent  # and the SBIN bought by the first batch, if it ran
        assert all(leg.outcome == OP.LEG_OUTCOME_PLACED for leg in killed.exits.legs), killed.exits
        wait_for(lambda: not _positions(client, ["b18"], "NSE:INFY"), timeout=30)
        refused = _error(lambda: client.orders.PlaceOrder(_limit("after-flatten", "b18")))
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION and "account b18" in refused.details()

        # The same position again, a new one in another product, and an admin's halt; then the kill is retried.
        client.operations.SetTradingState(OP.SetTradingStateRequest(scope=scope, state=C.TRADING_STATE_ACTIVE))
        client.orders.PlaceOrder(_order("flat-long-2", "b18", C.SIDE_BUY, 7, C.PRODUCT_MIS), timeout=30)
        client.orders.PlaceOrder(_order("flat-cnc", "b18", C.SIDE_BUY, 2, C.PRODUCT_CNC), timeout=30)
        held = {("b18", C.PRODUCT_MIS): 7, ("b18", C.PRODUCT_CNC): 2}
        wait_for(lambda: _positions(client, ["b18"], "NSE:INFY") == held, timeout=30)
        halt = OP.SetTradingStateRequest(scope=scope, state=C.TRADING_STATE_HALTED, reason="admin")
        client.operations.SetTradingState(halt, timeout=30)
        retried = client.operations.Kill(kill, timeout=60)
    outcomes = {leg.order.product or leg.error: leg.outcome for leg in retried.exits.legs}
    # the MIS exit has the first attempt's id: nothing sent twice; HALTED was never lowered to REDUCING, so the
    # new CNC exit is refused rather than placed
    assert outcomes[C.PRODUCT_MIS] == OP.LEG_OUTCOME_DUPLICATE, retried.exits
    cnc = next(leg for leg in retried.exits.legs if leg.outcome == OP.LEG_OUTCOME_FAILED)
    assert "HALTED" in cnc.error and "CNC" in cnc.error, cnc.error
    assert retried.state.state == C.TRADING_STATE_HALTED


def test_an_account_id_with_a_dot_takes_batch_exit_and_kill(daemon: Daemon) -> None:
    mine = {(DOTTED, C.PRODUCT_MIS): 3}
    with daemon.client() as client:
        batch = client.operations.BatchOrder(_batch("dot-1", "NSE:INFY", quantities={DOTTED: 3}), timeout=60)
        assert [leg.outcome for leg in batch.legs] == [OP.LEG_OUTCOME_PLACED], batch
        assert batch.legs[0].order.client_order_id == batch_client_id("dot-1", DOTTED)
        wait_for(lambda: _positions(client, [DOTTED], "NSE:INFY") == mine, timeout=30)
        out = OP.ExitPositionsRequest(client_exit_id="dot-x", accounts=[DOTTED])
        exited = client.operations.ExitPositions(out, timeout=60)
        assert [leg.outcome for leg in exited.legs] == [OP.LEG_OUTCOME_PLACED], exited
        wait_for(lambda: not _positions(client, [DOTTED], "NSE:INFY"), timeout=30)
        client.operations.BatchOrder(_batch("dot-2", "NSE:INFY", quantities={DOTTED: 3}), timeout=60)
        wait_for(lambda: _positions(client, [DOTTED], "NSE:INFY") == mine, timeout=30)
        scope = C.Scope(kind=C.SCOPE_KIND_ACCOUNT, name=DOTTED)
        kill = OP.KillRequest(scope=scope, flatten=True, client_kill_id="k" * 41)  # the longest id that fits
        killed = client.operations.Kill(kill, timeout=60)
        assert [leg.outcome for leg in killed.exits.legs] == [OP.LEG_OUTCOME_PLACED], killed.exits
        wait_for(lambda: not _positions(client, [DOTTED], "NSE:INFY"), timeout=30)
        kill.client_kill_id = "k" * 42
        too_long = _error(lambda: client.operations.Kill(kill, timeout=60))
    assert too_long.details().startswith("client_kill_id"), too_long.details()


def test_cli_batch_exit_cancel_all_and_kill(daemon: Daemon) -> None:
    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clients.cli", *args, "--server", daemon.address],
            cwd=ROOT, capture_output=True, text=True, timeout=60, env=daemon.cli_env(), input=stdin,
        )  # fmt: skip

    batch = cli("batch", "NSE:SBIN", "buy", "--qty", "b19=1", "--qty", "b13=5", "--qty", "b20=0",
                "--product", "mis", "--type", "limit", "--price", "100", "--id", "cli-1")  # fmt: skip
    assert batch.returncode == 1, batch.stderr  # b13's leg failed
    assert "1 placed, 1 failed, 1 skipped" in batch.stdout and "max_order_quantity" in batch.stdout, batch.stdout
    refused = cli("kill", "--account", "b19", stdin="n\n")
    assert refused.returncode != 0 and "Aborted" in refused.stdout + refused.stderr
    cancel = cli("cancel-all", "--account", "b19")
    assert cancel.returncode == 0 and "Cancelled: 1 order(s)" in cancel.stdout, cancel.stdout
    exit_ = cli("exit", "NSE:TCS", "--account", "b19")
    assert exit_.returncode == 0 and "SKIPPED" in exit_.stdout and "nothing to exit" in exit_.stdout
    killed = cli("kill", "--account", "b19", "--flatten", "--reason", "cli test", "--yes")  # a random --id
    assert killed.returncode == 0 and "account b19: HALTED" in killed.stdout, killed.stdout + killed.stderr
