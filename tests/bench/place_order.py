"""The load generator: many concurrent PlaceOrder calls over one grpc.aio channel, timed one by one.

The same code drives the echo server and the daemon, so their figures differ only by the server.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from trademaster.v1 import common_pb2, orders_pb2, orders_pb2_grpc

ACCOUNTS = ("alpha", "beta")  # alternate, so both account actors work
INSTRUMENTS = ("NSE:INFY", "NSE:TCS", "NSE:SBIN")
CALL_TIMEOUT = 10.0
PHASE_BUDGET = 120.0  # stop sending after this, so a stuck server cannot hold the run for long


def client_order_id(run: str, phase: str, index: int) -> str:
    """Unique per run, phase and call: the daemon treats a repeat as a duplicate and sends nothing."""
    return f"bench-{run}-{phase}-{index:06d}"


def build_requests(run: str, phase: str, count: int) -> list[orders_pb2.PlaceOrderRequest]:
    """MARKET MIS BUY 1, built ahead so building them is not timed."""
    return [
        orders_pb2.PlaceOrderRequest(
            client_order_id=client_order_id(run, phase, i),
            account=ACCOUNTS[i % len(ACCOUNTS)],
            instrument=INSTRUMENTS[i % len(INSTRUMENTS)],
            side=common_pb2.SIDE_BUY,
            quantity=1,
            product=common_pb2.PRODUCT_MIS,
            order_type=common_pb2.ORDER_TYPE_MARKET,
        )
        for i in range(count)
    ]


@dataclass
class Outcome:
    """What one batch of calls did; latencies are seconds in request order, NaN where no reply came."""

    latencies: list[float]
    wall: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    first_error: str = ""
    statuses: Counter[str] = field(default_factory=Counter)  # the reply's order status, by name
    first_rejection: str = ""
    no_order_id: int = 0
    duplicates: int = 0
    not_sent: int = 0
    reply_bytes: int = 0  # summed over the replies

    @property
    def rejected(self) -> int:
        return self.statuses["ORDER_STATUS_REJECTED"]

    @property
    def replies(self) -> int:
        return sum(not math.isnan(x) for x in self.latencies)


async def run_calls(
    stub: orders_pb2_grpc.OrderServiceStub,
    requests: list[orders_pb2.PlaceOrderRequest],
    concurrency: int,
    metadata: tuple[tuple[str, str], ...] = (),
) -> Outcome:
    """Send every request from `concurrency` callers sharing one queue; a caller sends its next call on a reply."""
    out = Outcome(latencies=[math.nan] * len(requests))
    pending = iter(range(len(requests)))  # shared: each caller takes the next index
    started = time.perf_counter()
    stop_at = started + PHASE_BUDGET

    async def caller() -> None:
        for i in pending:
            if time.perf_counter() > stop_at:
                out.not_sent += 1
                continue
            t0 = time.perf_counter()
            try:
                reply = await stub.PlaceOrder(requests[i], timeout=CALL_TIMEOUT, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                out.errors[exc.code().name] += 1
                out.first_error = out.first_error or f"{exc.code().name}: {exc.details()}"
                continue
            out.latencies[i] = time.perf_counter() - t0
            order = reply.order
            out.no_order_id += not order.order_id
            out.duplicates += reply.duplicate
            out.reply_bytes += reply.ByteSize()
            out.statuses[orders_pb2.OrderStatus.Name(order.status)] += 1
            if order.status == orders_pb2.ORDER_STATUS_REJECTED:
                out.first_rejection = out.first_rejection or order.status_message

    await asyncio.gather(*(caller() for _ in range(max(1, min(concurrency, len(requests))))))
    out.wall = time.perf_counter() - started
    return out
