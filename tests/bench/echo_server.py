"""A bare grpc.aio PlaceOrder server on uvloop: no Ray, no database, one canned reply.

It is the floor the daemon is compared against: the same method path, message types and reply
size through the same Python gRPC stack, so the gap between the two is what the daemon adds.
With `stream`, it also serves StreamOrderEvents: canned order events, stamped when made, sent
to every open stream at the rate its parent sets, the floor of the daemon's fan-out.
Run as `python -m tests.bench.echo_server [PORT [stream]]` (port 0 picks a free port); it
prints `PORT <n>` once it listens, so the parent never races a port it guessed.
"""

from __future__ import annotations

import asyncio
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import uvloop
from google.protobuf.timestamp_pb2 import Timestamp

from tests.bench.place_order import client_order_id
from trademaster.v1 import common_pb2, orders_pb2

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "trademaster.v1.OrderService"
READY_TIMEOUT = 30.0


def canned_reply() -> orders_pb2.PlaceOrderResponse:
    """A reply shaped like the daemon's for an acknowledged paper market order, field by field."""
    now = Timestamp()
    now.FromDatetime(datetime.now(UTC))  # microseconds set, as in the daemon's timestamps
    return orders_pb2.PlaceOrderResponse(
        order=orders_pb2.Order(
            order_id="AGB3CUZQMJ4F2KXA",  # 16 base32 characters, like engine.domain.ids.new_order_id
            client_order_id=client_order_id("00000000", "em", 0),
            account="alpha",
            broker="zerodha-paper",
            instrument="NSE:INFY",
            side=common_pb2.SIDE_BUY,
            quantity=1,
            product=common_pb2.PRODUCT_MIS,
            order_type=common_pb2.ORDER_TYPE_MARKET,
            status=orders_pb2.ORDER_STATUS_OPEN,
            broker_order_id="260000000001",  # the paper exchange's numeric ids
            created_at=now,
            updated_at=now,
        )
    )


class Broadcast:
    """Order events, each sent to every open StreamOrderEvents the way the daemon's hub does: each stream keeps a
    cursor into the events made so far and waits for more. The parent sets the rate on stdin (`RATE <per second>`;
    one a second at first, so new streams see an event); `RATE 0` stops it and answers `LAST <sequence>`."""

    def __init__(self) -> None:
        self.per_second = 1.0
        self.events: list[orders_pb2.OrderEvent] = []
        self.changed = asyncio.Condition()

    async def publish(self) -> None:
        """Forever, every few milliseconds, the events due by then at the current rate."""
        started, base = time.perf_counter(), 0
        while True:
            if select.select([sys.stdin], [], [], 0)[0]:  # a command: RATE <per second>
                self.per_second = float(sys.stdin.readline().split()[1])
                started, base = time.perf_counter(), len(self.events)
                if not self.per_second:
                    print(f"LAST {len(self.events)}", flush=True)
            made, due = len(self.events), base + int((time.perf_counter() - started) * self.per_second)
            for sequence in range(made + 1, due + 1):
                event = orders_pb2.OrderEvent(sequence=sequence, order=canned_reply().order)
                event.time.GetCurrentTime()
                self.events.append(event)
            if due > made:
                async with self.changed:
                    self.changed.notify_all()
            await asyncio.sleep(0.002)

    async def follow(
        self, request: orders_pb2.StreamOrderEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orders_pb2.OrderEvent]:
        cursor = len(self.events)
        while True:
            async with self.changed:
                while len(self.events) <= cursor:
                    await self.changed.wait()
            batch, cursor = self.events[cursor:], len(self.events)
            for event in batch:
                yield event


async def serve(port: int, stream: bool) -> None:
    reply = canned_reply()

    async def place_order(
        request: orders_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_pb2.PlaceOrderResponse:
        return reply

    methods = {
        "PlaceOrder": grpc.unary_unary_rpc_method_handler(
            place_order,
            request_deserializer=orders_pb2.PlaceOrderRequest.FromString,
            response_serializer=orders_pb2.PlaceOrderResponse.SerializeToString,
        )
    }
    if stream:
        broadcast = Broadcast()
        publishing = asyncio.create_task(broadcast.publish())
        methods["StreamOrderEvents"] = grpc.unary_stream_rpc_method_handler(
            broadcast.follow,
            request_deserializer=orders_pb2.StreamOrderEventsRequest.FromString,
            response_serializer=orders_pb2.OrderEvent.SerializeToString,
        )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"PORT {bound}", flush=True)
    await server.wait_for_termination()
    if stream:
        publishing.cancel()


def spawn(log_path: Path, stream: bool = False) -> tuple[subprocess.Popen[str], int]:
    """Start the echo server in its own process (its own GIL, like the daemon) and return it with its port;
    `stream`: serve StreamOrderEvents too, at the rate written to its stdin (`Broadcast`)."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.echo_server", "0", *(["stream"] if stream else [])],
            cwd=ROOT, stdin=subprocess.PIPE if stream else None, stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"echo server did not start; see {log_path}")
        return proc, int(line.split()[1])
    except BaseException:
        stop(proc)
        raise


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0, sys.argv[2:] == ["stream"]))
