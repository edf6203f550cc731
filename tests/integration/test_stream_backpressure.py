"""Slow consumers on the real daemon: a StreamOrderEvents client that stops reading while hundreds of orders
flow is ended with RESOURCE_EXHAUSTED, saying where to resume, while a normal subscriber on the same daemon sees
every event and a replay from the start, far behind the lag limit, is not cut off."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tests.bench import UNLIMITED_API
from tests.bench.probes import counter_total
from tests.integration.daemon import Daemon, head_sequence, wait_for
from tests.integration.daemon import test_config as config_text
from trademaster.v1 import common_pb2, orders_pb2, orders_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 300  # about 1,200 events of some 250 bytes: several times a 64 KiB window
BLOCKED_SECONDS = 2
MAX_LAG = 200
LIMITS = f"stream_max_lag_events = {MAX_LAG}\nstream_blocked_send_seconds = {BLOCKED_SECONDS}\n"
# No BDP probing: the stalled client's window stays at 64 KiB instead of growing to megabytes.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("stream-backpressure")
    d = Daemon(base / "data", ROOT / "test-artifacts" / "daemon-stream-backpressure.log")
    d.config.write_text(
        config_text(
            d.grpc_port, d.metrics_port, extra=UNLIMITED_API, server_extra=LIMITS, account_extra="orders_per_second = 0"
        )
    )
    d.start()
    yield d
    d.stop()


def cut_offs(daemon: Daemon, reason: str) -> float:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    labels = {"log": "order_events", "reason": reason}
    return counter_total(url, daemon.admin_token, "trademaster_streams_cut_off_total", labels)


def place_many(stub: orders_pb2_grpc.OrderServiceStub, count: int, metadata: tuple[tuple[str, str], ...]) -> None:
    def one(i: int) -> None:
        request = orders_pb2.PlaceOrderRequest(
            client_order_id=f"backpressure-{i:04d}", account=("alpha", "beta")[i % 2], instrument="NSE:SBIN",
            side=common_pb2.SIDE_BUY, quantity=1, product=common_pb2.PRODUCT_MIS,
            order_type=common_pb2.ORDER_TYPE_MARKET,
        )  # fmt: skip
        stub.PlaceOrder(request, timeout=30, metadata=metadata)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(count)))


def read_all(stream: Iterator[orders_pb2.OrderEvent], into: list[int], ended_with: list[grpc.StatusCode]) -> None:
    try:
        into.extend(e.sequence for e in stream)
    except grpc.RpcError as exc:
        ended_with.append(exc.code())


def test_a_client_that_stops_reading_is_cut_off_and_the_others_see_every_event(daemon: Daemon) -> None:
    metadata = (("authorization", f"Bearer {daemon.admin_token}"),)
    with daemon.client() as client, grpc.insecure_channel(daemon.address, options=SMALL_WINDOW) as raw:
        start = head_sequence(client)
        request = orders_pb2.StreamOrderEventsRequest(after_sequence=start)
        normal: list[int] = []
        ended_with: list[grpc.StatusCode] = []
        follower = client.orders.StreamOrderEvents(request, timeout=120)
        reader = threading.Thread(target=read_all, args=(follower, normal, ended_with), daemon=True)
        reader.start()
        stalled = orders_pb2_grpc.OrderServiceStub(raw).StreamOrderEvents(request, timeout=120, metadata=metadata)
        before = cut_offs(daemon, "blocked")

        placed_at = time.monotonic()
        with ThreadPoolExecutor(1) as background:
            placing = background.submit(place_many, client.orders, ORDERS, metadata)  # `stalled` reads nothing
            wait_for(lambda: cut_offs(daemon, "blocked") > before, timeout=30)
            assert time.monotonic() - placed_at < 30

            received: list[int] = []  # read at once: a client silent for twice the limit more would be cancelled
            with pytest.raises(grpc.RpcError) as ended:
                received.extend(e.sequence for e in stalled)  # what its window held, then the status
            placing.result(timeout=60)
        details = ended.value.details()
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert "read nothing for" in details and "after_sequence" in details, details
        assert received == list(range(start + 1, start + 1 + len(received)))
        assert 0 < len(received) < ORDERS * 3

        # Once every order is filled, the normal subscriber has had every event, in order, once each.
        open_orders = orders_pb2.ListOrdersRequest(open_only=True)
        wait_for(lambda: not client.orders.ListOrders(open_orders, timeout=10).orders, timeout=60)
        wait_for(lambda: len(normal) >= head_sequence(client) - start)
        follower.cancel()
        reader.join(timeout=10)
        head = head_sequence(client)
        assert normal[: head - start] == list(range(start + 1, head + 1))
        assert ended_with == [grpc.StatusCode.CANCELLED]  # by the test, not by the daemon

        replay = orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True)
        everything = [e.sequence for e in client.orders.StreamOrderEvents(replay, timeout=60)]
    assert len(everything) > MAX_LAG * 5  # far behind all along, yet never cut off: it was not live
    assert everything == list(range(1, len(everything) + 1))
