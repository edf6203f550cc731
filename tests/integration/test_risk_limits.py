"""Pre-trade risk limits in the real daemon, over gRPC: limits at the global, group and account layers.

Each rule gets its own paper account, so one test's orders never use up another's limit. Prices are flat
(volatility 0): INFY trades at the instrument master's 1562.40, tick 0.10, so the edges below are exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from clients.python import Client
from tests.integration.daemon import ROOT, Daemon
from trademaster.v1 import common_pb2, orders_pb2

S = orders_pb2


def _account(account_id: str, extra: str = "", groups: tuple[str, ...] = ()) -> str:
    listed = ", ".join(f'"{g}"' for g in groups)
    return f'\n[[accounts]]\nid = "{account_id}"\nvenue = "zerodha"\ngroups = [{listed}]\n{extra}'


HOLDS_20_INFY = '[accounts.paper.holdings."NSE:INFY"]\nquantity = 20\naverage_price = "1400"\n'
P1 = '[accounts.paper]\nopening_cash = "100000"\n[accounts.risk]\nmax_order_quantity = 30\n'


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("risk") / "data", ROOT / "test-artifacts" / "daemon-risk.log")
    d.config.write_text(
        f"""
{d.tables()}
[paper]
volatility = 0.0
depth_per_second = 100000

[risk]
max_order_quantity = 100
allow_short_selling = false

[group_risk.capped]
max_order_value = "15624"

[group_risk.loose]
max_order_value = "1000000000"

[group_risk.delivery]
allowed_products = ["CNC"]
"""
        + _account("qty")
        + _account("big", "[accounts.risk]\nmax_order_quantity = 500\n")
        + _account("valued", groups=("capped",))
        + _account("layered", groups=("capped", "loose"))
        + _account("banded", "[accounts.risk]\nprice_band_percent = 25\n")
        + _account("counted", "[accounts.risk]\nmax_orders_per_day = 3\n")
        + _account("cnc-only", groups=("delivery",))
        + _account("noshort", HOLDS_20_INFY)
        + _account("position", HOLDS_20_INFY + "[accounts.risk]\nmax_position_quantity_per_instrument = 30\n")
        + _account("p1", P1, groups=("pair", "solo", "delivery"))
        + _account("p2", '[accounts.paper]\nopening_cash = "100000"\n', groups=("pair",))
    )
    d.start()
    yield d
    d.stop()


_MIS, _CNC = common_pb2.PRODUCT_MIS, common_pb2.PRODUCT_CNC
_BUY, _SELL = common_pb2.SIDE_BUY, common_pb2.SIDE_SELL


def _order(client_id: str, account: str, quantity: int, price: str = "", **fields: object) -> S.PlaceOrderRequest:
    base: dict[str, object] = {
        "instrument": "NSE:INFY",
        "side": _BUY,
        "product": _MIS,
        "order_type": common_pb2.ORDER_TYPE_LIMIT if price else common_pb2.ORDER_TYPE_MARKET,
        "price": price,
    }
    return S.PlaceOrderRequest(client_order_id=client_id, account=account, quantity=quantity, **{**base, **fields})


def _placed(client: Client, request: S.PlaceOrderRequest) -> S.Order:
    order = client.orders.PlaceOrder(request, timeout=30).order
    assert order.status != S.ORDER_STATUS_REJECTED, order.status_message
    return order


def _refused(client: Client, request: S.PlaceOrderRequest, rule: str) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        client.orders.PlaceOrder(request, timeout=30)
    details = caught.value.details() or ""
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, details
    assert f"risk {rule}: " in details, details
    return details


def test_global_order_quantity_and_an_account_lifting_it(daemon: Daemon) -> None:
    with daemon.client() as client:
        _placed(client, _order("qty-at", "qty", 100, "1500.0"))
        details = _refused(client, _order("qty-over", "qty", 101, "1500.0"), "max_order_quantity")
        assert details == "account qty: risk max_order_quantity: order quantity 101 exceeds the limit 100"
        _placed(client, _order("big-at", "big", 500, "1500.0"))
        _refused(client, _order("big-over", "big", 501, "1500.0"), "max_order_quantity")


def test_group_order_value_and_a_later_group_lifting_it(daemon: Daemon) -> None:
    with daemon.client() as client:
        _placed(client, _order("value-at", "valued", 10, "1562.4"))
        details = _refused(client, _order("value-over", "valued", 10, "1562.5"), "max_order_value")
        assert "order value ₹15,625.00 exceeds the limit ₹15,624.00" in details
        _placed(client, _order("value-lifted", "layered", 10, "1562.5"))  # loose comes after capped


def test_price_band_around_the_last_price(daemon: Daemon) -> None:
    with daemon.client() as client:
        _placed(client, _order("band-top", "banded", 1, "1953.0"))  # 1562.40 + 25%
        details = _refused(client, _order("band-over-top", "banded", 1, "1953.1"), "price_band_percent")
        assert "from the last price ₹1,562.40; the band is ±25%" in details
        _placed(client, _order("band-bottom", "banded", 1, "1171.8"))  # 1562.40 - 25%
        _refused(client, _order("band-under-bottom", "banded", 1, "1171.7"), "price_band_percent")


def test_orders_per_day_counts_a_quick_run_of_orders(daemon: Daemon) -> None:
    with daemon.client() as client:
        for n in range(3):
            _placed(client, _order(f"day-{n}", "counted", 1, "1500.0"))
        details = _refused(client, _order("day-3", "counted", 1, "1500.0"), "max_orders_per_day")
        assert "3 orders already placed today; the limit is 3" in details
        again = client.orders.PlaceOrder(_order("day-2", "counted", 1, "1500.0"), timeout=30)
        assert again.duplicate, "a retry still gets its order back once the cap is reached"


def test_allowed_products_from_a_group(daemon: Daemon) -> None:
    with daemon.client() as client:
        _placed(client, _order("product-cnc", "cnc-only", 1, "1500.0", product=_CNC))
        details = _refused(client, _order("product-mis", "cnc-only", 1, "1500.0"), "allowed_products")
        assert "product MIS is not allowed (allowed: CNC)" in details


def test_no_short_selling_counts_the_holdings(daemon: Daemon) -> None:
    with daemon.client() as client:
        details = _refused(client, _order("short-over", "noshort", 21, side=_SELL), "allow_short_selling")
        assert "would leave a net position of -1" in details
        _placed(client, _order("short-at", "noshort", 20, side=_SELL))


def test_position_limit_sees_an_order_sent_a_moment_ago(daemon: Daemon) -> None:
    with daemon.client() as client:
        _placed(client, _order("position-at", "position", 10))  # 20 held + 10
        details = _refused(client, _order("position-over", "position", 1), "max_position_quantity_per_instrument")
        assert "would be 31 units; the limit is ±30" in details
        _placed(client, _order("position-cut", "position", 5, side=_SELL))  # reducing is always allowed


def _routed(client_id: str, quantity: int, group: str, product: int = _CNC) -> S.PlaceOrderRequest:
    return _order(client_id, "", quantity, "1562.4", product=product, group=group, mode=S.ROUTING_MODE_ORCHESTRATOR)


def test_one_refused_leg_refuses_the_whole_routed_order(daemon: Daemon) -> None:
    with daemon.client() as client:
        # 100,000 of cash buys 64 shares for delivery: the order must split, and p1 takes no more than 30.
        request = _routed("pair-split", 100, "pair")
        details = _refused(client, request, "max_order_quantity")
        assert details.startswith("account p1: risk max_order_quantity: order quantity ")
        with pytest.raises(grpc.RpcError) as preview:
            client.orders.PreviewRoute(request, timeout=30)
        assert preview.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (preview.value.details() or "").startswith("account p1: risk max_order_quantity")
        for account in ("p1", "p2"):
            listed = client.orders.ListOrders(S.ListOrdersRequest(account=account), timeout=30).orders
            assert list(listed) == [], f"nothing may reach {account}"


def test_routing_leaves_out_an_account_its_limits_shut(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = client.orders.PlaceOrder(_routed("pair-mis", 10, "pair", _MIS), timeout=30)
        assert [leg.account for leg in reply.legs] == ["p2"]
        p1 = next(c for c in reply.route.candidates if c.account == "p1")
        assert p1.excluded == "risk allowed_products: product MIS is not allowed (allowed: CNC)"
        details = _refused(client, _routed("solo-mis", 10, "solo", _MIS), "allowed_products")
        assert "p1: risk allowed_products" in details
