"""Orders through the real daemon: place, fill, modify, cancel, idempotency, bad input, streams."""

from __future__ import annotations

import uuid
from decimal import Decimal

import grpc
import pytest

from engine.brokers.paper import read_state
from engine.domain import InstrumentId
from engine.instrument_master import InstrumentMaster
from tests.integration.daemon import Daemon, head_sequence, wait_for
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2

INFY = InstrumentMaster.default().get(InstrumentId.parse("NSE:INFY"))
assert INFY is not None
ASK = INFY.last_price + INFY.tick_size  # flat prices, one tick of half spread
BID = INFY.last_price - INFY.tick_size
S = orders_pb2.OrderStatus


def place(client, **fields) -> orders_pb2.PlaceOrderResponse:
    request = orders_pb2.PlaceOrderRequest(
        client_order_id=fields.pop("client_order_id", f"t-{uuid.uuid4().hex[:16]}"),
        instrument=fields.pop("instrument", "NSE:INFY"),
        side=fields.pop("side", common_pb2.SIDE_BUY),
        quantity=fields.pop("quantity", 1),
        product=fields.pop("product", common_pb2.PRODUCT_MIS),
        order_type=fields.pop("order_type", common_pb2.ORDER_TYPE_MARKET),
        **fields,
    )
    return client.orders.PlaceOrder(request, timeout=30)


def order_in(client, order_id: str, *statuses: int) -> orders_pb2.Order | None:
    order = client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), timeout=10)
    return order if order.status in statuses else None


def test_market_order_fills_and_the_live_stream_shows_it(daemon: Daemon) -> None:
    with daemon.client() as client:
        start = head_sequence(client)
        stream = client.orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest(after_sequence=start), timeout=30)
        reply = place(client, quantity=7)
        assert reply.order.account == "alpha" and not reply.duplicate
        assert reply.order.status in (S.ORDER_STATUS_OPEN, S.ORDER_STATUS_FILLED)
        seen, fills = [], []
        for event in stream:
            seen.append(event.sequence)
            if event.HasField("fill"):
                fills.append(event.fill)
            if event.HasField("order") and event.order.status == S.ORDER_STATUS_FILLED:
                break
        stream.cancel()
    assert seen == list(range(start + 1, start + 1 + len(seen)))
    assert [(f.order_id, f.quantity, Decimal(f.price)) for f in fills] == [(reply.order.order_id, 7, ASK)]


def test_partial_fills_arrive_as_depth_replenishes(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = place(client, quantity=250, account="beta")
        done = wait_for(lambda: order_in(client, reply.order.order_id, S.ORDER_STATUS_FILLED), timeout=20)
        events = list(
            client.orders.StreamOrderEvents(
                orders_pb2.StreamOrderEventsRequest(after_sequence=0, account="beta", catch_up_only=True), timeout=30
            )
        )
    fills = [e.fill for e in events if e.HasField("fill") and e.fill.order_id == reply.order.order_id]
    statuses = [e.order.status for e in events if e.HasField("order") and e.order.order_id == reply.order.order_id]
    assert [f.quantity for f in fills] == [100, 100, 50]
    assert S.ORDER_STATUS_PARTIALLY_FILLED in statuses and statuses[-1] == S.ORDER_STATUS_FILLED
    assert done.filled_quantity == 250 and Decimal(done.average_price) == ASK


def test_repeated_client_order_id_returns_the_original_and_sends_nothing(daemon: Daemon) -> None:
    with daemon.client() as client:
        first = place(client, client_order_id="idem-1", quantity=2)
        again = place(client, client_order_id="idem-1", quantity=2)
    assert again.duplicate and not first.duplicate
    assert again.order.order_id == first.order.order_id
    broker_book = read_state(daemon.data_dir / "paper" / "alpha.json")
    assert sum(1 for o in broker_book["orders"] if o["tag"] == first.order.order_id) == 1


def test_limit_order_rests_then_modify_makes_it_fill(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = place(client, order_type=common_pb2.ORDER_TYPE_LIMIT, price=str(INFY.last_price - 50), quantity=3)
        assert reply.order.status == S.ORDER_STATUS_OPEN
        modified = client.orders.ModifyOrder(
            orders_pb2.ModifyOrderRequest(order_id=reply.order.order_id, quantity=4, price=str(ASK + 5)), timeout=30
        )
        assert modified.quantity == 4 and Decimal(modified.price) == ASK + 5
        filled = wait_for(lambda: order_in(client, reply.order.order_id, S.ORDER_STATUS_FILLED))
    assert filled.filled_quantity == 4 and Decimal(filled.average_price) == ASK


def test_cancel_an_open_order_and_not_a_finished_one(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = place(client, order_type=common_pb2.ORDER_TYPE_LIMIT, price=str(INFY.last_price - 100))
        cancelled = client.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=reply.order.order_id), timeout=30)
        assert cancelled.status == S.ORDER_STATUS_CANCELLED
        with pytest.raises(grpc.RpcError) as again:
            client.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id=reply.order.order_id), timeout=30)
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "CANCELLED" in again.value.details()
        with pytest.raises(grpc.RpcError) as missing:
            client.orders.CancelOrder(orders_pb2.CancelOrderRequest(order_id="NOSUCHORDER"), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_broker_rejection_is_a_rejected_order_not_an_error(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = place(client, quantity=100_000, product=common_pb2.PRODUCT_CNC, account="beta")
    assert reply.order.status == S.ORDER_STATUS_REJECTED
    assert "insufficient funds" in reply.order.status_message


BAD_REQUESTS = [
    ({"client_order_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "client_order_id"),
    ({"client_order_id": "x" * 65}, grpc.StatusCode.INVALID_ARGUMENT, "client_order_id"),
    ({"client_order_id": "has space"}, grpc.StatusCode.INVALID_ARGUMENT, "client_order_id"),
    ({"client_order_id": "SAGQ73BFWEJDBZSAL-stop-1-1"}, grpc.StatusCode.INVALID_ARGUMENT, "reserved for strategies"),
    ({"account": "nobody"}, grpc.StatusCode.INVALID_ARGUMENT, "account"),
    ({"account": "a" * 200}, grpc.StatusCode.INVALID_ARGUMENT, "account"),
    ({"instrument": "NSE:NOSUCH"}, grpc.StatusCode.INVALID_ARGUMENT, "instrument"),
    ({"instrument": "INFY"}, grpc.StatusCode.INVALID_ARGUMENT, "instrument"),
    ({"quantity": 0}, grpc.StatusCode.INVALID_ARGUMENT, "quantity"),
    ({"quantity": -5}, grpc.StatusCode.INVALID_ARGUMENT, "quantity"),
    ({"side": 0}, grpc.StatusCode.INVALID_ARGUMENT, "side"),
    ({"product": 0}, grpc.StatusCode.INVALID_ARGUMENT, "product"),
    ({"order_type": 0}, grpc.StatusCode.INVALID_ARGUMENT, "order_type"),
    ({"order_type": common_pb2.ORDER_TYPE_LIMIT}, grpc.StatusCode.INVALID_ARGUMENT, "price"),
    ({"order_type": common_pb2.ORDER_TYPE_LIMIT, "price": "0"}, grpc.StatusCode.INVALID_ARGUMENT, "price"),
    ({"order_type": common_pb2.ORDER_TYPE_LIMIT, "price": "-3"}, grpc.StatusCode.INVALID_ARGUMENT, "price"),
    ({"order_type": common_pb2.ORDER_TYPE_LIMIT, "price": "1500.03"}, grpc.StatusCode.INVALID_ARGUMENT, "tick"),
    ({"order_type": common_pb2.ORDER_TYPE_LIMIT, "price": "abc"}, grpc.StatusCode.INVALID_ARGUMENT, "price"),
    ({"price": "1500"}, grpc.StatusCode.INVALID_ARGUMENT, "price"),
    ({"order_type": common_pb2.ORDER_TYPE_SL_M}, grpc.StatusCode.INVALID_ARGUMENT, "trigger_price"),
    ({"instrument": "NFO:NIFTY26NOVFUT", "quantity": 10}, grpc.StatusCode.INVALID_ARGUMENT, "lot size"),
]


@pytest.mark.parametrize(("fields", "code", "named"), BAD_REQUESTS)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    daemon: Daemon, fields: dict, code: grpc.StatusCode, named: str
) -> None:
    fields = {"client_order_id": f"bad-{uuid.uuid4().hex[:16]}", **fields}
    with daemon.client() as client:
        before = head_sequence(client)
        with pytest.raises(grpc.RpcError) as refused:
            place(client, **fields)
        assert refused.value.code() == code
        assert named in refused.value.details()
        # Other tests' orders may still move (a late fill, an order given up as never sent): none may be this one.
        request = orders_pb2.StreamOrderEventsRequest(after_sequence=before, catch_up_only=True)
        since = list(client.orders.StreamOrderEvents(request, timeout=30))
        assert not [e for e in since if e.order.client_order_id == fields["client_order_id"]], since
        assert len(client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts) == 3


def test_stream_resumes_after_any_sequence_without_gap_or_repeat(daemon: Daemon) -> None:
    with daemon.client() as client:
        for account in ("alpha", "beta"):
            placed = place(client, quantity=1, account=account)
            wait_for(lambda p=placed: order_in(client, p.order.order_id, S.ORDER_STATUS_FILLED))

        def catch_up(after: int) -> list[int]:
            request = orders_pb2.StreamOrderEventsRequest(after_sequence=after, catch_up_only=True)
            return [e.sequence for e in client.orders.StreamOrderEvents(request, timeout=30)]

        everything = catch_up(0)
        assert everything == list(range(1, len(everything) + 1))
        for cut in (0, 1, len(everything) // 2, len(everything) - 1, len(everything)):
            resumed = catch_up(cut)  # orders still settling may add events meanwhile: compare what both saw
            assert resumed[: len(everything) - cut] == everything[cut:]
            assert resumed == list(range(cut + 1, cut + 1 + len(resumed)))


def test_list_and_get_orders(daemon: Daemon) -> None:
    with daemon.client() as client:
        reply = place(client, client_order_id="list-me", account="beta", quantity=1)
        by_client = client.orders.GetOrder(orders_pb2.GetOrderRequest(client_order_id="list-me"), timeout=10)
        assert by_client.order_id == reply.order.order_id
        listed = client.orders.ListOrders(orders_pb2.ListOrdersRequest(account="beta", limit=500), timeout=10).orders
        assert reply.order.order_id in [o.order_id for o in listed]
        assert all(o.account == "beta" for o in listed)
        with pytest.raises(grpc.RpcError) as bad:
            client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=999_999), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in bad.value.details()
