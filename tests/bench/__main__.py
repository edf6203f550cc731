"""PlaceOrder throughput and latency of the daemon against a bare grpc.aio echo server, then the fan-out
of one order to many accounts (tests/bench/fanout.py), the FIFO ledger's apply rate and a 100-account
portfolio's build (tests/bench/ledger.py), recovery after kill -9 (tests/bench/recovery.py), and order events on
the stream: order → fill latency and 1,000 subscribers at once (tests/bench/stream.py).

One uvloop client process drives both PlaceOrder targets with the same code, one after the other, so that on
a 2-core machine only one server competes with the client at a time. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import uvloop

from tests.bench import UNLIMITED_API, echo_server, fanout, ledger, probes, recovery, report, stream
from tests.bench.place_order import build_requests, run_calls
from tests.integration.daemon import Daemon
from tests.integration.daemon import test_config as config_text
from trademaster.v1 import orders_pb2_grpc

WARMUP_CALLS = 100

ECHO_TOKEN = "tm_000000000000_" + "0" * 43  # the shape of a real token; the echo server ignores it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--orders", type=int, default=3000, help="measured PlaceOrder calls per target")
    parser.add_argument("--concurrency", type=int, default=64, help="callers in flight at once")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for results and logs")
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark (default: all, in this order)")
    parser.add_argument("--fanout-accounts", type=int, default=50, help="paper accounts a batch goes to")
    parser.add_argument("--fanout-latency-ms", type=float, default=50.0, help="their broker's answer time")
    parser.add_argument("--fanout-rounds", type=int, default=10, help="measured batches")
    parser.add_argument("--ledger-fills", type=int, default=1_000_000, help="fills each ledger round applies")
    parser.add_argument("--ledger-accounts", type=int, default=100, help="accounts the fills are spread over")
    parser.add_argument("--ledger-instruments", type=int, default=200, help="instruments the fills are spread over")
    parser.add_argument("--ledger-rounds", type=int, default=3, help="fresh ledgers applying the same fills")
    parser.add_argument("--portfolio-accounts", type=int, default=100, help="accounts in the portfolio")
    parser.add_argument("--portfolio-positions", type=int, default=200, help="positions per account")
    parser.add_argument("--portfolio-calls", type=int, default=100, help="measured portfolio builds")
    parser.add_argument("--recovery-orders", type=int, default=100_000, help="orders written before the kill")
    parser.add_argument("--recovery-live", type=int, default=300, help="of them still open at the broker")
    parser.add_argument("--recovery-days", type=int, default=20, help="days the orders are spread over")
    parser.add_argument("--recovery-restarts", type=int, default=2, help="kill -9 restarts with and without them")
    parser.add_argument("--stream-rate", type=float, default=stream.TARGET_RATE, help="orders per second, paced")
    parser.add_argument("--stream-light-rate", type=float, default=20.0, help="a rate the machine sustains")
    parser.add_argument("--stream-seconds", type=float, default=10.0, help="how long each stream phase sends orders")
    parser.add_argument("--stream-subscribers", type=int, default=1000, help="StreamOrderEvents subscribers at once")
    parser.add_argument("--stream-processes", type=int, default=4, help="processes the subscribers are spread over")
    args = parser.parse_args(argv)
    too_few = [name for name, value in vars(args).items() if isinstance(value, int) and value < 1]
    if set(too_few) - {"recovery_live"}:
        parser.error(", ".join(f"--{name.replace('_', '-')}" for name in too_few) + " must be at least 1")
    if not 0 <= args.recovery_live <= args.recovery_orders:
        parser.error("--recovery-live must be between 0 and --recovery-orders")
    return args


async def measure(
    address: str,
    phase: str,
    args: argparse.Namespace,
    server_pid: int,
    data_dir: str | None = None,
    scrape: Callable[[], Awaitable[dict[str, tuple[float, float]]]] | None = None,
    token: str = ECHO_TOKEN,
) -> dict[str, Any]:
    """Warm up (untimed), then time `--orders` calls, reading CPU and server timings on either side.

    Both servers get the same authorization header, so the echo carries the same bytes per call.
    """
    metadata = (("authorization", f"Bearer {token}"),)
    run = secrets.token_hex(4)
    warmup = build_requests(run, f"{phase}w", WARMUP_CALLS)
    measured = build_requests(run, f"{phase}m", args.orders)
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        warm = await run_calls(stub, warmup, args.concurrency, metadata)
        timings_before = await scrape() if scrape else {}
        cpu_before = probes.cpu_snapshot(server_pid, data_dir)
        outcome = await run_calls(stub, measured, args.concurrency, metadata)
        cpu_after = probes.cpu_snapshot(server_pid, data_dir)
        timings_after = await scrape() if scrape else {}
    figures = report.summarize(outcome)
    figures["warmup_errors"] = dict(warm.errors)
    figures["cpu_s"] = probes.cpu_diff(cpu_before, cpu_after)
    if scrape:
        figures["server_mean_ms"] = probes.mean_ms(timings_before, timings_after)
    return figures


async def bench_echo(args: argparse.Namespace) -> dict[str, Any]:
    proc, port = await asyncio.to_thread(echo_server.spawn, args.out / "echo_server.log")
    try:
        return await measure(f"127.0.0.1:{port}", "e", args, proc.pid)
    finally:
        await asyncio.to_thread(echo_server.stop, proc)


async def bench_daemon(args: argparse.Namespace) -> dict[str, Any]:
    """The real daemon with the integration tests' paper config: 1 Ray CPU, two accounts of ₹10 lakh each."""
    log_path = args.out / "daemon.log"
    log_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tm-bench-", ignore_cleanup_errors=True) as tmp:
        daemon = Daemon(Path(tmp) / "data", log_path)
        # The per-token API limit and the accounts' SEBI order pace would throttle the benchmark itself;
        # both are measured apart from it.
        daemon.config.write_text(
            config_text(
                daemon.grpc_port, daemon.metrics_port, extra=UNLIMITED_API, account_extra="orders_per_second = 0"
            )
        )
        url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
        try:
            await asyncio.to_thread(daemon.start)
            assert daemon.proc is not None
            return await measure(
                daemon.address,
                "d",
                args,
                daemon.proc.pid,
                str(daemon.data_dir),
                lambda: asyncio.to_thread(probes.scrape_timings, url, daemon.admin_token),
                daemon.admin_token,
            )
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                await asyncio.to_thread(daemon.stop)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    environment = report.environment()  # dated when the run starts
    echo = await bench_echo(args)
    daemon = await bench_daemon(args)
    return {
        "benchmark": "place_order",
        "environment": environment,
        "params": {"orders": args.orders, "concurrency": args.concurrency, "warmup_calls": WARMUP_CALLS},
        "echo": echo,
        "daemon": daemon,
        "ratios": report.ratios(echo, daemon),
    }


async def run_fanout(args: argparse.Namespace) -> dict[str, Any]:
    environment = report.environment()
    figures = await fanout.bench_fanout(args.out, args.fanout_accounts, args.fanout_latency_ms, args.fanout_rounds)
    return {"benchmark": "fanout", "environment": environment, **figures}


def _place_order(args: argparse.Namespace) -> dict[str, Any]:
    return uvloop.run(run(args))


def _fanout(args: argparse.Namespace) -> dict[str, Any]:
    return uvloop.run(run_fanout(args))


def _ledger(args: argparse.Namespace) -> dict[str, Any]:
    environment = report.environment()
    figures = ledger.bench_apply(args.ledger_fills, args.ledger_accounts, args.ledger_instruments, args.ledger_rounds)
    return {"benchmark": "ledger", "environment": environment, **figures}


def _portfolio(args: argparse.Namespace) -> dict[str, Any]:
    environment = report.environment()
    figures = ledger.bench_portfolio(args.portfolio_accounts, args.portfolio_positions, args.portfolio_calls)
    return {"benchmark": "portfolio", "environment": environment, **figures}


def _recovery(args: argparse.Namespace) -> dict[str, Any]:
    environment = report.environment()
    figures = recovery.bench_recovery(
        args.out, args.recovery_orders, args.recovery_live, args.recovery_days, args.recovery_restarts
    )
    return {"benchmark": "recovery", "environment": environment, **figures}


def _stream(args: argparse.Namespace) -> dict[str, Any]:
    environment = report.environment()
    loads = [
        stream.Load(rate, args.stream_seconds, args.concurrency) for rate in (args.stream_light_rate, args.stream_rate)
    ]
    figures = uvloop.run(
        stream.bench_stream(args.out, loads, loads[-1], args.stream_subscribers, args.stream_processes)
    )
    return {"benchmark": "stream", "environment": environment, **figures}


Run = Callable[[argparse.Namespace], dict[str, Any]]
Show = Callable[[dict[str, Any]], None]
# name -> (run it, print its table); each writes <name>.json under --out
BENCHMARKS: dict[str, tuple[Run, Show]] = {
    "place_order": (_place_order, report.print_tables),
    "fanout": (_fanout, fanout.print_table),
    "ledger": (_ledger, ledger.print_apply),
    "portfolio": (_portfolio, ledger.print_portfolio),
    "recovery": (_recovery, recovery.print_table),
    "stream": (_stream, stream.print_table),
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, (bench, show) in BENCHMARKS.items():
        if args.only in (None, name):
            result = bench(args)
            show(result)
            path = args.out / f"{name}.json"
            report.write_json(result, path)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
