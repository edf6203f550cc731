"""Trading states, account groups and multipliers in the real daemon, over gRPC, and across a restart.

Flat prices (volatility 0) and deep books: market orders fill at once, so positions are exact. INFY trades
at 1562.40; SBIN limit buys at 100 rest far below the market.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest

from clients.python import Client
from tests.integration.daemon import ROOT, Daemon, wait_for
from trademaster.v1 import accounts_pb2, common_pb2, operations_pb2, orders_pb2, security_pb2

ACTIVE, REDUCING, HALTED = (
    common_pb2.TRADING_STATE_ACTIVE,
    common_pb2.TRADING_STATE_REDUCING,
    common_pb2.TRADING_STATE_HALTED,
)
_BUY, _SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL
_MIS, _CNC = common_pb2.PRODUCT_MIS, common_pb2.PRODUCT_CNC


def _account(account_id: str, extra: str = "") -> str:
    return f'\n[[accounts]]\nid = "{account_id}"\nvenue = "zerodha"\nsync_interval_seconds = 0.2\n{extra}'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("states") / "data", ROOT / "test-artifacts" / "daemon-states.log")
    d.config.write_text(
        f"""
{d.tables()}
[paper]
volatility = 0.0
depth_per_second = 100000
"""
        + _account(
            "r1", 'groups = ["desk"]\n[accounts.paper.holdings."NSE:INFY"]\nquantity = 20\naverage_price = "1400"\n'
        )
        + _account("r2", 'groups = ["desk"]')
        + _account("r3", 'multiplier = "2"')
    )
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def trader(daemon: Daemon) -> str:
    """A token of tina, a trader who owns r3."""
    with daemon.client() as admin:
        admin.security.AddUser(security_pb2.AddUserRequest(name="tina", role=security_pb2.ROLE_TRADER, accounts=["r3"]))
        return admin.security.CreateToken(security_pb2.CreateTokenRequest(user="tina")).secret


def _scope(kind: str, name: str = "") -> common_pb2.Scope:
    return common_pb2.Scope(kind=common_pb2.ScopeKind.Value(f"SCOPE_KIND_{kind}"), name=name)


def _set(client: Client, scope: common_pb2.Scope, state: int, reason: str = "") -> operations_pb2.TradingStateEntry:
    return client.operations.SetTradingState(
        operations_pb2.SetTradingStateRequest(scope=scope, state=state, reason=reason), timeout=30
    )


def _order(
    cid: str, account: str, side: int, quantity: int, product: int = _MIS, **fields: object
) -> orders_pb2.PlaceOrderRequest:
    base: dict[str, object] = {"instrument": "NSE:INFY", "order_type": common_pb2.ORDER_TYPE_MARKET}
    return orders_pb2.PlaceOrderRequest(
        client_order_id=cid, account=account, side=side, quantity=quantity, product=product, **{**base, **fields}
    )


def _resting(cid: str, account: str) -> orders_pb2.PlaceOrderRequest:
    return _order(cid, account, _BUY, 1, instrument="NSE:SBIN", order_type=common_pb2.ORDER_TYPE_LIMIT, price="100")


def _filled(client: Client, request: orders_pb2.PlaceOrderRequest) -> None:
    order = client.orders.PlaceOrder(request, timeout=30).order
    wait_for(
        lambda: (
            client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id)).status
            == orders_pb2.ORDER_STATUS_FILLED
        )
    )


def _synced(client: Client, account: str) -> None:
    """Wait until the gateway's snapshot of the account was synced after now, so it shows earlier fills."""
    now = datetime.now(UTC)
    wait_for(
        lambda: (
            client.accounts.GetAccount(accounts_pb2.GetAccountRequest(id=account)).health.last_sync.ToDatetime(
                tzinfo=UTC
            )
            > now
        )
    )


def _refused(client: Client, request: orders_pb2.PlaceOrderRequest) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        client.orders.PlaceOrder(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value.details()
    return caught.value.details() or ""


def _code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def test_account_reducing_allows_exactly_the_reducing_orders(daemon: Daemon) -> None:
    with daemon.client() as admin:
        _filled(admin, _order("red-open", "r1", _BUY, 10))
        _synced(admin, "r1")
        entry = _set(admin, _scope("ACCOUNT", "r1"), REDUCING, "MTM loss")
        assert (entry.state, entry.set_by, entry.reason) == (REDUCING, "admin", "MTM loss")
        account = admin.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r1"))
        assert account.trading_state == REDUCING
        assert account.trading_state_reason == "account r1: REDUCING by admin (MTM loss)"

        details = _refused(admin, _order("red-add", "r1", _BUY, 1))
        assert details.startswith("account r1: trading is REDUCING (account r1: REDUCING by admin (MTM loss))")
        details = _refused(admin, _order("red-flip", "r1", _SELL, 11))
        assert "SELL 11 NSE:INFY MIS would not (the MIS position +10)" in details
        _refused(admin, _order("red-cnc-over", "r1", _SELL, 21, _CNC))  # 20 held
        _refused(admin, _order("red-rest", "r1", _SELL, 1, instrument="NSE:SBIN"))  # no position there

        half = admin.orders.PlaceOrder(
            _order("red-half", "r1", _SELL, 6, order_type=common_pb2.ORDER_TYPE_LIMIT, price="2000.0")
        ).order  # rests above the market: 6 of the 10 are now being sold
        details = _refused(admin, _order("red-rest-of", "r1", _SELL, 5))
        assert "and 6 already working on that side" in details
        modified = admin.orders.ModifyOrder(orders_pb2.ModifyOrderRequest(order_id=half.order_id, price="1999.0"))
        assert modified.price == "1999.0"  # re-pricing a reducing order is allowed
        with pytest.raises(grpc.RpcError) as enlarged:
            admin.orders.ModifyOrder(orders_pb2.ModifyOrderRequest(order_id=half.order_id, quantity=11))
        assert enlarged.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"order {half.order_id} cannot be modified" in (enlarged.value.details() or "")
        admin.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=half.order_id))

        _filled(admin, _order("red-close", "r1", _SELL, 10))  # exactly the position
        _filled(admin, _order("red-cnc", "r1", _SELL, 20, _CNC))  # exactly the holdings
        _synced(admin, "r1")
        _refused(admin, _order("red-after", "r1", _SELL, 1))  # flat now: nothing reduces
        _set(admin, _scope("ACCOUNT", "r1"), ACTIVE)
        assert admin.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r1")).trading_state == ACTIVE


def test_group_halt_refuses_everything_but_cancels_and_routing_avoids_it(daemon: Daemon) -> None:
    with daemon.client() as admin:
        resting = admin.orders.PlaceOrder(_resting("halt-rest", "r2")).order
        _set(admin, _scope("GROUP", "desk"), HALTED, "kill switch")
        details = _refused(admin, _order("halt-buy", "r2", _BUY, 1))
        assert details == (
            "account r2: trading is HALTED (group desk: HALTED by admin (kill switch)): only cancels are allowed"
        )
        retry = admin.orders.PlaceOrder(_resting("halt-rest", "r2"))  # placed before the halt: the original
        assert retry.duplicate and retry.order.order_id == resting.order_id
        with pytest.raises(grpc.RpcError) as modify:
            admin.orders.ModifyOrder(orders_pb2.ModifyOrderRequest(order_id=resting.order_id, price="101"))
        assert modify.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        cancelled = admin.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=resting.order_id))
        assert cancelled.status == orders_pb2.ORDER_STATUS_CANCELLED

        routed = _order("halt-route", "", _BUY, 1, mode=orders_pb2.ROUTING_MODE_ORCHESTRATOR)
        decision = admin.orders.PreviewRoute(routed)
        assert [leg.account for leg in decision.legs] == ["r3"]
        excluded = {c.account: c.excluded for c in decision.candidates}
        assert (
            excluded["r1"]
            == excluded["r2"]
            == ("trading is HALTED (group desk: HALTED by admin (kill switch)): only cancels are allowed")
        )
        routed.group = "desk"
        assert _code(lambda: admin.orders.PreviewRoute(routed)) == grpc.StatusCode.FAILED_PRECONDITION

        states = admin.operations.GetTradingStates(operations_pb2.GetTradingStatesRequest())
        assert [(e.scope.name, e.state) for e in states.entries] == [("desk", HALTED)]
        assert {a.account: a.state for a in states.accounts} == {"r1": HALTED, "r2": HALTED, "r3": ACTIVE}
        _set(admin, _scope("GROUP", "desk"), ACTIVE)


def test_global_state_and_who_may_set_what(daemon: Daemon, trader: str) -> None:
    with daemon.client() as admin, daemon.client(token=trader) as tina:
        assert _code(lambda: _set(tina, _scope("GLOBAL"), HALTED)) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: _set(tina, _scope("ACCOUNT", "r1"), HALTED)) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: _set(tina, _scope("GROUP", "desk"), HALTED)) == grpc.StatusCode.PERMISSION_DENIED
        assert _code(lambda: _set(tina, _scope("GROUP", "nope"), HALTED)) == grpc.StatusCode.INVALID_ARGUMENT
        assert _code(lambda: _set(tina, _scope("ACCOUNT", "r3"), 0)) == grpc.StatusCode.INVALID_ARGUMENT

        _set(admin, _scope("GLOBAL"), REDUCING, "market halt")
        details = _refused(tina, _order("glob-buy", "r3", _BUY, 1))
        assert "trading is REDUCING (global: REDUCING by admin (market halt))" in details
        _set(admin, _scope("GLOBAL"), ACTIVE)

        _set(admin, _scope("ACCOUNT", "r3"), HALTED, "risk review")
        assert _code(lambda: _set(tina, _scope("ACCOUNT", "r3"), ACTIVE)) == grpc.StatusCode.PERMISSION_DENIED
        _set(tina, _scope("ACCOUNT", "r3"), HALTED, "mine now")  # tightening (or re-setting) is allowed ...
        assert _code(lambda: _set(tina, _scope("ACCOUNT", "r3"), ACTIVE)) == grpc.StatusCode.PERMISSION_DENIED
        _set(admin, _scope("ACCOUNT", "r3"), ACTIVE)  # ... lifting an admin's halt is not
        _set(tina, _scope("ACCOUNT", "r3"), REDUCING, "own")
        _set(tina, _scope("ACCOUNT", "r3"), ACTIVE)  # her own state she may lift
        seen = tina.operations.GetTradingStates(operations_pb2.GetTradingStatesRequest())
        assert [a.account for a in seen.accounts] == ["r3"]


def test_groups_and_multipliers_validate_their_input(daemon: Daemon, trader: str) -> None:
    bad = [
        (accounts_pb2.SetGroupRequest(name="empty"), "accounts: "),
        (accounts_pb2.SetGroupRequest(name="x", accounts=["r1", "zz"]), "accounts: unknown account 'zz'"),
        (accounts_pb2.SetGroupRequest(name="bad name", accounts=["r1"]), "name: "),
        (accounts_pb2.SetGroupRequest(name="x", accounts=["r1", "r1"]), "accounts: listed more than once: r1"),
        (accounts_pb2.SetMultiplierRequest(account="r1", multiplier="abc"), "multiplier: not a decimal"),
        (accounts_pb2.SetMultiplierRequest(account="r1", multiplier="1000.5"), "multiplier: must be between 0"),
        (accounts_pb2.SetMultiplierRequest(account="r1", multiplier="-1"), "multiplier: must be between 0"),
        (accounts_pb2.SetMultiplierRequest(account="zz", multiplier="1"), "account: unknown account 'zz'"),
    ]
    with daemon.client() as admin:
        for request, message in bad:
            call = (
                admin.accounts.SetGroup
                if isinstance(request, accounts_pb2.SetGroupRequest)
                else admin.accounts.SetMultiplier
            )
            with pytest.raises(grpc.RpcError) as refused:
                call(request)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
            assert (refused.value.details() or "").startswith(message), refused.value.details()
        assert _code(lambda: admin.accounts.DeleteGroup(accounts_pb2.DeleteGroupRequest(name="nope"))) == (
            grpc.StatusCode.NOT_FOUND
        )
    with daemon.client(token=trader) as tina:
        assert (
            tina.accounts.SetMultiplier(accounts_pb2.SetMultiplierRequest(account="r3", multiplier="2")).multiplier
            == "2"
        )
        denied = _code(
            lambda: tina.accounts.SetMultiplier(accounts_pb2.SetMultiplierRequest(account="r1", multiplier="2"))
        )
        assert denied == grpc.StatusCode.PERMISSION_DENIED


def test_groups_multipliers_and_states_survive_a_restart(daemon: Daemon) -> None:
    with daemon.client() as admin:
        assert admin.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r3")).multiplier == "2"  # config
        made = admin.accounts.SetGroup(accounts_pb2.SetGroupRequest(name="pair", accounts=["r3", "r2"]))
        assert (list(made.accounts), made.source) == (["r3", "r2"], "api")
        admin.accounts.DeleteGroup(accounts_pb2.DeleteGroupRequest(name="desk"))  # a config file's group
        admin.accounts.SetMultiplier(accounts_pb2.SetMultiplierRequest(account="r1", multiplier="0.5"))
        _set(admin, _scope("GROUP", "pair"), REDUCING, "before restart")
        _set(admin, _scope("ACCOUNT", "r1"), HALTED)
    daemon.stop()
    daemon.start()
    with daemon.client() as admin:
        groups = admin.accounts.ListGroups(accounts_pb2.ListGroupsRequest()).groups
        assert [(g.name, list(g.accounts), g.source) for g in groups] == [("pair", ["r3", "r2"], "api")]
        r1 = admin.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r1"))
        assert (r1.multiplier, list(r1.groups), r1.trading_state) == ("0.5", [], HALTED)
        r2 = admin.accounts.GetAccount(accounts_pb2.GetAccountRequest(id="r2"))
        assert (list(r2.groups), r2.trading_state) == (["pair"], REDUCING)
        assert r2.trading_state_reason == "group pair: REDUCING by admin (before restart)"
        _refused(admin, _order("after-restart", "r1", _BUY, 1))
