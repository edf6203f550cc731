"""Turn outcomes into figures, a rich table and a JSON record that later runs can be compared with."""

from __future__ import annotations

import json
import math
import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from tests.bench.place_order import Outcome


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values: always a latency that some call really had."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _p50_ms(values: list[float]) -> float:
    return percentile(sorted(x for x in values if not math.isnan(x)), 50) * 1000


def summarize(outcome: Outcome) -> dict[str, Any]:
    """Figures for one target; the quarter p50s show whether calls slow down as orders pile up."""
    ordered = sorted(x for x in outcome.latencies if not math.isnan(x))
    quarter = max(1, len(outcome.latencies) // 4)
    replies = len(ordered)
    return {
        "calls": len(outcome.latencies),
        "replies": replies,
        "errors": dict(outcome.errors),
        "first_error": outcome.first_error,
        "not_sent": outcome.not_sent,
        "rejected": outcome.rejected,
        "first_rejection": outcome.first_rejection,
        "no_order_id": outcome.no_order_id,
        "duplicates": outcome.duplicates,
        "statuses": dict(outcome.statuses),
        "wall_s": outcome.wall,
        "throughput_per_s": replies / outcome.wall if outcome.wall else 0.0,
        "mean_ms": sum(ordered) / replies * 1000 if replies else math.nan,
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
        "p50_first_quarter_ms": _p50_ms(outcome.latencies[:quarter]),
        "p50_last_quarter_ms": _p50_ms(outcome.latencies[-quarter:]),
        "reply_bytes_mean": outcome.reply_bytes / replies if replies else 0.0,
    }


def latency_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p99, mean and max in milliseconds of timings taken in seconds."""
    ordered = sorted(seconds)
    return {
        "p50_ms": percentile(ordered, 50) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "mean_ms": sum(ordered) / len(ordered) * 1000 if ordered else math.nan,
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
    }


def against(target: str, met: bool) -> str:
    """How a figure stands against its target, for the tables: "(target ≤ 5 s: met)"."""
    return f"(target {target}: {'met' if met else 'not met'})"


def ratios(echo: dict[str, Any], daemon: dict[str, Any]) -> dict[str, float]:
    """daemon/echo for each figure: throughput below 1 and latency above 1 are the daemon's cost."""

    def ratio(key: str) -> float:
        return daemon[key] / echo[key] if echo[key] else math.nan

    return {"throughput": ratio("throughput_per_s"), "p50": ratio("p50_ms"), "p99": ratio("p99_ms")}


def environment() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "grpcio": grpc.__version__,
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.{digits}f}"
    return str(value)


def print_tables(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    echo, daemon, ratio = result["echo"], result["daemon"], result["ratios"]
    table = Table(title=f"PlaceOrder: {result['params']['orders']} calls, {result['params']['concurrency']} callers")
    for column in ("", "echo (bare grpc.aio)", "daemon", "daemon/echo"):
        table.add_column(column, justify="right")
    rows = [
        ("throughput (calls/s)", "throughput_per_s", ratio["throughput"]),
        ("p50 (ms)", "p50_ms", ratio["p50"]),
        ("p99 (ms)", "p99_ms", ratio["p99"]),
        ("mean (ms)", "mean_ms", None),
        ("p90 (ms)", "p90_ms", None),
        ("max (ms)", "max_ms", None),
        ("p50 first quarter (ms)", "p50_first_quarter_ms", None),
        ("p50 last quarter (ms)", "p50_last_quarter_ms", None),
        ("wall (s)", "wall_s", None),
        ("reply bytes (mean)", "reply_bytes_mean", None),
        ("replies", "replies", None),
        ("errors", "errors", None),
        ("rejected", "rejected", None),
        ("no order_id", "no_order_id", None),
        ("not sent", "not_sent", None),
    ]
    for label, key, r in rows:
        table.add_row(label, _fmt(echo[key]), _fmt(daemon[key]), "" if r is None else _fmt(r, 3))
    console.print(table)

    cpu = Table(title="CPU seconds during the measured phase (machine has "
                f"{result['environment']['cpu_count']} cores)")  # fmt: skip
    cpu.add_column("process group")
    cpu.add_column("echo run", justify="right")
    cpu.add_column("daemon run", justify="right")
    for group in dict.fromkeys([*daemon["cpu_s"], *echo["cpu_s"]]):
        cpu.add_row(group, _fmt(echo["cpu_s"].get(group, math.nan)), _fmt(daemon["cpu_s"].get(group, math.nan)))
    console.print(cpu)

    server = daemon.get("server_mean_ms", {})
    if server:
        console.print(
            "daemon's own timings, mean per call: "
            + ", ".join(f"{name} {ms:.2f} ms" for name, ms in server.items())
            + f" (client-seen mean {daemon['mean_ms']:.2f} ms)"
        )
    for name, figures in (("echo", echo), ("daemon", daemon)):
        if figures["first_error"] or figures["first_rejection"]:
            console.print(f"[yellow]{name}: {figures['first_error'] or figures['first_rejection']}[/]")


def print_rows(title: str, rows: list[tuple[str, str]], console: Console | None = None) -> None:
    """A two-column table of figures already formatted, as each benchmark but PlaceOrder prints them."""
    table = Table(title=title)
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    (console or Console()).print(table)


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # NaN is not JSON: write null instead
    clean = json.loads(json.dumps(result), parse_constant=lambda _: None)
    path.write_text(json.dumps(clean, indent=2) + "\n")
