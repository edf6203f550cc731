"""One process of StreamOrderEvents subscribers for the stream benchmark (tests/bench/stream.py).

Many streams over a few grpc.aio channels on uvloop. Each counts its events and, for those of the parent's
measured window, the delivery latency: the time it arrived less the event's own time, in 0.1 ms bins so a million
of them cost a few kilobytes to send back. The parent and this process share
the machine's clock. It imports only gRPC and the generated messages, so it starts fast.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc
import uvloop

from trademaster.v1 import orders_pb2, orders_pb2_grpc

BIN_SECONDS = 1e-4
LIVE_S = 60.0
DRAIN_S = 30.0


@dataclass(frozen=True)
class Spec:
    address: str
    token: str
    streams: int
    channels: int
    after: int  # every stream starts after this sequence, so each has the same events


@dataclass
class _State:
    streams: int
    since: float | None = None  # events of this wall time or later are measured, ...
    until: float = math.inf  # ... up to this one
    last: list[int] = field(default_factory=list)  # per stream: the last sequence received
    last_at: list[float] = field(default_factory=list)  # per stream: the last event's time
    measured: list[int] = field(default_factory=list)  # per stream: events measured
    latency: Counter[int] = field(default_factory=Counter)  # 0.1 ms bins
    errors: Counter[str] = field(default_factory=Counter)
    closing: bool = False
    last_arrival: float = 0.0  # wall time the last measured event arrived
    first_error: str = ""

    def __post_init__(self) -> None:
        self.last = [0] * self.streams
        self.last_at = [0.0] * self.streams
        self.measured = [0] * self.streams


async def _follow(stub: orders_pb2_grpc.OrderServiceStub, index: int, spec: Spec, state: _State) -> None:
    request = orders_pb2.StreamOrderEventsRequest(after_sequence=spec.after)
    metadata = (("authorization", f"Bearer {spec.token}"),)
    try:
        async for event in stub.StreamOrderEvents(request, metadata=metadata):
            arrived = time.time()
            state.last[index] = event.sequence
            state.last_at[index] = at = event.time.seconds + event.time.nanos * 1e-9
            if state.since is not None and state.since <= at < state.until:
                state.latency[round((arrived - at) / BIN_SECONDS)] += 1
                state.measured[index] += 1
                state.last_arrival = arrived
    except grpc.aio.AioRpcError as exc:
        if state.closing:
            return  # ended by this process, once the run is over
        state.errors[exc.code().name] += 1
        state.first_error = state.first_error or f"{exc.code().name}: {exc.details()}"


def _past(state: _State, index: int, through: int) -> bool:
    """Whether stream `index` has had every event measured: the `through`-th, or one of a time past the window."""
    return state.last[index] >= through or state.last_at[index] >= state.until


async def _until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _main(conn: Connection, spec: Spec) -> None:
    state = _State(spec.streams)
    channels = [grpc.aio.insecure_channel(spec.address) for _ in range(spec.channels)]
    stubs = [orders_pb2_grpc.OrderServiceStub(c) for c in channels]
    tasks = [asyncio.create_task(_follow(stubs[i % len(stubs)], i, spec, state)) for i in range(spec.streams)]
    conn.send(("opened", spec.streams))
    live = await _until(lambda: min(state.last) > spec.after or state.errors, LIVE_S)
    conn.send(("live", live))
    command, (state.since, state.until) = await asyncio.to_thread(conn.recv)
    assert command == "measure"
    command, through = await asyncio.to_thread(conn.recv)
    assert command == "drain"
    drained = await _until(lambda: all(_past(state, i, through) or t.done() for i, t in enumerate(tasks)), DRAIN_S)
    state.closing = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    conn.send(
        (
            "result",
            {
                "latency_bins": dict(state.latency),
                "measured_min": min(state.measured),
                "measured_max": max(state.measured),
                "measured_total": sum(state.measured),
                "errors": dict(state.errors),
                "first_error": state.first_error,
                "drained": drained,
                "last_arrival": state.last_arrival,
            },
        )
    )


def run(conn: Connection, spec: Spec) -> None:
    """The process's target: follow the streams until the parent says the run is over, then report."""
    uvloop.run(_main(conn, spec))
