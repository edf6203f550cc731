"""Fan-out benchmark: one order to many paper accounts whose broker answers after a fixed latency.

Legs go out in parallel, so a batch to 50 accounts should take about one broker round trip, not 50. The
figure reported is the ratio of a BatchOrder's completion time to one broker round trip (the configured
latency), with a single PlaceOrder to one of the same accounts alongside for the daemon's own share.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psutil
from rich.console import Console

from tests.bench import STEADY_PAPER, UNLIMITED_API, probes, report
from tests.bench.report import percentile
from tests.integration.daemon import Daemon
from trademaster.v1 import common_pb2, operations_pb2, operations_pb2_grpc, orders_pb2, orders_pb2_grpc

TARGET = 1.5  # fan-out time over one broker round trip
WARMUP = 2
IDLE_SECONDS = 3.0
CALL_TIMEOUT = 60.0
Scrape = Callable[[], Awaitable[dict[str, tuple[float, float]]]]


def config_text(daemon: Daemon, accounts: int, latency_ms: float) -> str:
    """Paper accounts, unpaced, each answering order calls after `latency_ms` (accounts[].paper.latency_ms)."""
    head = f"""
{daemon.tables(num_cpus=2)}
{STEADY_PAPER}{UNLIMITED_API}"""
    account = """
[[accounts]]
id = "f{index:02d}"
orders_per_second = 0
sync_interval_seconds = 2
[accounts.paper]
latency_ms = {latency}
"""
    return head + "".join(account.format(index=i, latency=latency_ms) for i in range(1, accounts + 1))


def _order(run: str, index: int) -> orders_pb2.PlaceOrderRequest:
    return orders_pb2.PlaceOrderRequest(
        client_order_id=f"one-{run}-{index}", account="f01", instrument="NSE:SBIN", side=common_pb2.SIDE_BUY,
        quantity=1, product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_MARKET,
    )  # fmt: skip


def _batch(run: str, index: int) -> operations_pb2.BatchOrderRequest:
    """1 × each account's multiplier (1) to every account."""
    return operations_pb2.BatchOrderRequest(
        client_batch_id=f"fan-{run}-{index}", instrument="NSE:SBIN", side=common_pb2.SIDE_BUY, base_quantity=1,
        product=common_pb2.PRODUCT_MIS, order_type=common_pb2.ORDER_TYPE_MARKET,
    )  # fmt: skip


async def _timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    reply = await call
    return time.perf_counter() - started, reply


def _busy_seconds() -> float:
    """CPU time the whole machine has spent busy so far, summed over its cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


async def measure(address: str, token: str, rounds: int, scrape: Scrape) -> dict[str, Any]:
    """Single orders, then batches, one call at a time; the daemon's mean AccountActor.submit time is read
    around the batches, to tell the legs' own time from the fan-out's, and so is the machine's busy CPU time:
    a batch cannot finish before that work is done on the cores there are."""
    metadata = (("authorization", f"Bearer {token}"),)
    run = secrets.token_hex(3)
    single: list[float] = []
    fanout: list[float] = []
    legs = legs_failed = 0
    first_failure = ""
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        orders = orders_pb2_grpc.OrderServiceStub(channel)
        operations = operations_pb2_grpc.OperationsServiceStub(channel)
        for i in range(WARMUP + rounds):
            took, _ = await _timed(orders.PlaceOrder(_order(run, i), timeout=CALL_TIMEOUT, metadata=metadata))
            if i >= WARMUP:
                single.append(took)
        await operations.BatchOrder(_batch(run, -1), timeout=CALL_TIMEOUT, metadata=metadata)  # warm-up
        idle_from = _busy_seconds()
        await asyncio.sleep(IDLE_SECONDS)  # what the accounts' syncs and quote polling cost with no orders
        background = (_busy_seconds() - idle_from) / IDLE_SECONDS
        before = await scrape()
        busy_before = _busy_seconds()
        started = time.perf_counter()
        for i in range(rounds):
            spread, reply = await _timed(
                operations.BatchOrder(_batch(run, i), timeout=CALL_TIMEOUT, metadata=metadata)
            )
            fanout.append(spread)
            legs, legs_failed = len(reply.legs), legs_failed + reply.failed
            failures = [f"{leg.account}: {leg.error}" for leg in reply.legs if leg.error]
            first_failure = first_failure or (failures[0] if failures else "")
        busy = _busy_seconds() - busy_before
        elapsed = time.perf_counter() - started
        after = await scrape()
    return {
        "cpu_ms_per_batch": busy / rounds * 1000,
        "background_cpu_ms_per_s": background * 1000,
        "order_cpu_ms_per_leg": (busy - background * elapsed) / rounds / max(legs, 1) * 1000,
        "cores": psutil.cpu_count() or 1,
        "legs_per_batch": legs,
        "legs_failed": legs_failed,
        "first_failure": first_failure,
        "single_ms": [x * 1000 for x in single],
        "fanout_ms": [x * 1000 for x in fanout],
        "leg_submit_mean_ms": probes.mean_ms(before, after).get("actor_submit", math.nan),
    }


async def bench_fanout(out: Path, accounts: int, latency_ms: float, rounds: int) -> dict[str, Any]:
    log_path = out / "daemon-fanout.log"
    log_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tm-bench-fanout-", ignore_cleanup_errors=True) as tmp:
        daemon = Daemon(Path(tmp) / "data", log_path)
        daemon.config.write_text(config_text(daemon, accounts, latency_ms))
        try:
            started = time.perf_counter()
            await asyncio.to_thread(daemon.start)
            ready_s = time.perf_counter() - started
            url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
            scrape = partial(asyncio.to_thread, probes.scrape_timings, url, daemon.admin_token)
            figures = await measure(daemon.address, daemon.admin_token, rounds, scrape)
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                await asyncio.to_thread(daemon.stop)
    return summarize(figures, accounts, latency_ms, rounds, ready_s)


def summarize(
    figures: dict[str, Any], accounts: int, latency_ms: float, rounds: int, ready_s: float
) -> dict[str, Any]:
    fan, one = sorted(figures["fanout_ms"]), sorted(figures["single_ms"])
    fan_p50, one_p50 = percentile(fan, 50), percentile(one, 50)
    return {
        "accounts": accounts,
        "broker_latency_ms": latency_ms,
        "rounds": rounds,
        "daemon_ready_s": ready_s,
        **figures,
        "fanout_p50_ms": fan_p50,
        "fanout_max_ms": fan[-1] if fan else math.nan,
        "single_p50_ms": one_p50,
        "ratio_to_round_trip": fan_p50 / latency_ms if latency_ms else math.nan,
        "ratio_to_single_order": fan_p50 / one_p50 if one_p50 else math.nan,
        "cpu_floor_ms": figures["cpu_ms_per_batch"] / figures["cores"],
        "target": TARGET,
    }


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    title = (
        f"Fan-out: one order to {result['accounts']} paper accounts, broker latency"
        f" {result['broker_latency_ms']:g} ms, {result['rounds']} rounds"
    )
    rows = [
        ("BatchOrder p50 (ms)", f"{result['fanout_p50_ms']:.1f}"),
        ("BatchOrder max (ms)", f"{result['fanout_max_ms']:.1f}"),
        ("single PlaceOrder p50 (ms)", f"{result['single_p50_ms']:.1f}"),
        ("a leg's AccountActor.submit, mean (ms)", f"{result['leg_submit_mean_ms']:.1f}"),
        ("fan-out / broker round trip", f"{result['ratio_to_round_trip']:.2f} (target ≤ {result['target']})"),
        ("fan-out / single PlaceOrder", f"{result['ratio_to_single_order']:.2f}"),
        ("machine CPU busy per batch (core-ms)", f"{result['cpu_ms_per_batch']:.0f} on {result['cores']} cores"),
        ("CPU floor: that over the cores (ms)", f"{result['cpu_floor_ms']:.0f}"),
        ("background CPU with no orders (core-ms/s)", f"{result['background_cpu_ms_per_s']:.0f}"),
        ("CPU per leg beyond that (core-ms)", f"{result['order_cpu_ms_per_leg']:.1f}"),
        ("legs per batch", str(result["legs_per_batch"])),
        ("legs failed (all rounds)", str(result["legs_failed"])),
        ("daemon start with its accounts (s)", f"{result['daemon_ready_s']:.1f}"),
    ]
    report.print_rows(title, rows, console)
    if result["first_failure"]:
        console.print(f"[yellow]fan-out: {result['first_failure']}[/]")
