"""Order events on the stream, against the daemon with the paper broker.

1. Order → fill on the stream: MARKET orders placed at a paced rate for a bounded time, each timed from just
   before its PlaceOrder to the arrival of its fill on a StreamOrderEvents subscriber in the same process; the
   PlaceOrder reply and the fill's own event time split that into placing, filling and delivering. At the issue's
   500/s, and at a light rate the machine sustains, which shows the latency when nothing queues.
2. Fan-out: many subscribers (1,000 by default) in a few processes of their own, while orders flow at the issue's
   rate; each event's delivery latency is its arrival less its own time (the time of the transaction that wrote
   it, PostgreSQL's now(), so the commit is included). Also counted: subscribers cut off, and the daemon's RSS
   before the subscribers connect, once they have, and after the run.
3. The floor of 2: the same subscriber processes against a bare grpc.aio server (tests/bench/echo_server.py)
   sending canned events at the event rate the daemon reached in 2, after the daemon has stopped.

The sender keeps at most `concurrency` calls open (as the PlaceOrder benchmark): when the daemon is slower than
the pace, the sender falls behind and the achieved rate is reported, rather than a queue growing on the client.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import psutil
from rich.console import Console
from rich.table import Table

from tests.bench import STEADY_PAPER, UNLIMITED_API, echo_server, probes, report
from tests.bench.place_order import build_requests
from tests.bench.report import latency_ms
from tests.bench.stream_subscribers import BIN_SECONDS, Spec
from tests.bench.stream_subscribers import run as run_subscribers
from tests.integration.daemon import Daemon
from trademaster.v1 import orders_pb2, orders_pb2_grpc

TARGET_RATE = 500.0  # orders per second, the issue's load
TARGET_DELIVERY_P99_MS = 50.0
CALL_TIMEOUT = 30.0
WARMUP_ORDERS = 50
QUIET_SECONDS = 1.0  # no event for this long after the last order: the run's events are all written
SETTLE_TIMEOUT = 30.0
STREAMS_PER_CHANNEL = 50
CUT_OFF = "trademaster_streams_cut_off_total"


@dataclass(frozen=True)
class Load:
    rate: float
    seconds: float
    in_flight: int


def config_text(daemon: Daemon) -> str:
    """Two paper accounts, unpaced, with depth enough that no market order waits for it; no API rate limit."""
    accounts = "".join(f'\n[[accounts]]\nid = "{name}"\norders_per_second = 0\n' for name in ("alpha", "beta"))
    return f"""{daemon.tables()}
{STEADY_PAPER}{UNLIMITED_API}{accounts}"""


def _event_time(event: orders_pb2.OrderEvent) -> float:
    return event.time.seconds + event.time.nanos * 1e-9


@dataclass
class Watch:
    """What one StreamOrderEvents subscriber in the sender's process saw: each order's first fill."""

    client_ids: dict[str, str] = field(default_factory=dict)  # order_id -> client_order_id, from its first event
    filled: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # client id -> perf, wall, event
    last_sequence: int = 0
    last_at: float = 0.0  # perf_counter of the last event

    def see(self, event: orders_pb2.OrderEvent) -> None:
        now, wall = time.perf_counter(), time.time()
        self.last_sequence, self.last_at = event.sequence, now
        if event.HasField("order"):
            self.client_ids.setdefault(event.order.order_id, event.order.client_order_id)
        elif event.HasField("fill"):
            client_id = self.client_ids.get(event.fill.order_id)
            if client_id is not None and client_id not in self.filled:
                self.filled[client_id] = (now, wall, _event_time(event))


async def _watch(stub: orders_pb2_grpc.OrderServiceStub, metadata: Any, after: int, watch: Watch) -> None:
    request = orders_pb2.StreamOrderEventsRequest(after_sequence=after)
    async for event in stub.StreamOrderEvents(request, metadata=metadata):
        watch.see(event)


@dataclass
class Sent:
    """The orders one paced run placed: when each left (perf and wall) and how long its reply took."""

    started: dict[str, tuple[float, float]] = field(default_factory=dict)
    replies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    first_error: str = ""
    wall: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.started) / self.wall if self.wall else 0.0


async def paced(stub: orders_pb2_grpc.OrderServiceStub, metadata: Any, run: str, phase: str, load: Load) -> Sent:
    """MARKET orders at `load.rate` per second for at most `load.seconds`, `load.in_flight` at most at once."""
    sent = Sent()
    slots = asyncio.Semaphore(load.in_flight)

    async def place(request: orders_pb2.PlaceOrderRequest) -> None:
        try:
            t0 = time.perf_counter()
            sent.started[request.client_order_id] = (t0, time.time())
            await stub.PlaceOrder(request, timeout=CALL_TIMEOUT, metadata=metadata)
            sent.replies.append(time.perf_counter() - t0)
        except grpc.aio.AioRpcError as exc:
            sent.errors[exc.code().name] += 1
            sent.first_error = sent.first_error or f"{exc.code().name}: {exc.details()}"
        finally:
            slots.release()

    begin = time.perf_counter()
    calls: list[asyncio.Task[None]] = []
    for i, request in enumerate(build_requests(run, phase, math.ceil(load.rate * load.seconds))):
        delay = begin + i / load.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        if time.perf_counter() - begin > load.seconds:
            slots.release()
            break
        calls.append(asyncio.create_task(place(request)))
    sent.wall = time.perf_counter() - begin
    await asyncio.gather(*calls)
    return sent


async def _settle(watch: Watch, sent: Sent) -> None:
    """Until every order placed has its fill on the stream and the stream has been quiet for a moment."""
    deadline = time.perf_counter() + SETTLE_TIMEOUT
    while time.perf_counter() < deadline:
        idle = time.perf_counter() - watch.last_at
        # Some may never fill (a call that failed): then stop once nothing has moved for longer.
        if idle > QUIET_SECONDS and (watch.filled.keys() >= sent.started.keys() or idle > 5 * QUIET_SECONDS):
            return
        await asyncio.sleep(0.1)


def order_figures(sent: Sent, watch: Watch, load: Load) -> dict[str, Any]:
    """Latency from just before PlaceOrder to its fill's arrival, split at the reply and at the fill's event time."""
    fill_s, to_event_s, delivery_s = [], [], []
    for client_id, (t0, wall0) in sent.started.items():
        seen = watch.filled.get(client_id)
        if seen is not None:
            arrived, arrived_wall, event_at = seen
            fill_s.append(arrived - t0)
            to_event_s.append(event_at - wall0)
            delivery_s.append(arrived_wall - event_at)
    return {
        "target_rate": load.rate,
        "seconds": load.seconds,
        "in_flight": load.in_flight,
        "orders": len(sent.started),
        "achieved_rate": sent.rate,
        "replies": len(sent.replies),
        "errors": dict(sent.errors),
        "first_error": sent.first_error,
        "fills_seen": len(fill_s),
        "fill": latency_ms(fill_s),
        "reply": latency_ms(sent.replies),
        "to_fill_event": latency_ms(to_event_s),
        "fill_delivery": latency_ms(delivery_s),
    }


async def bench_latency(address: str, metadata: Any, head: int, loads: list[Load]) -> list[dict[str, Any]]:
    """Figure 1: one subscriber, orders at each of `loads` in turn, after WARMUP_ORDERS untimed."""
    run = secrets.token_hex(3)
    figures = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orders_pb2_grpc.OrderServiceStub(channel)
        watch = Watch()
        follower = asyncio.create_task(_watch(stub, metadata, head, watch))
        await paced(stub, metadata, run, "sw", Load(100, WARMUP_ORDERS / 100, 16))
        for n, load in enumerate(loads):
            sent = await paced(stub, metadata, run, f"s{n}", load)
            await _settle(watch, sent)
            figures.append(order_figures(sent, watch, load))
        follower.cancel()
    return figures


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection

    def expect(self, what: str, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"a subscriber process did not say {what!r} within {timeout:.0f} s")
        kind, value = self.conn.recv()
        if kind != what:
            raise RuntimeError(f"a subscriber process said {kind!r}, expected {what!r}")
        return value


class Subscribers:
    """`count` StreamOrderEvents streams in `processes` processes, spawned (not forked: gRPC is running here)."""

    def __init__(self, address: str, token: str, count: int, processes: int, after: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        for n in range(processes):
            streams = count // processes + (n < count % processes)
            spec = Spec(address, token, streams, max(1, math.ceil(streams / STREAMS_PER_CHANNEL)), after)
            parent, child = context.Pipe()
            process = context.Process(target=run_subscribers, args=(child, spec), daemon=True)
            process.start()
            self.workers.append(_Worker(process, parent))

    @property
    def pids(self) -> set[int]:
        return {w.process.pid for w in self.workers if w.process.pid is not None}

    async def expect(self, what: str, timeout: float) -> list[Any]:
        return list(await asyncio.gather(*(asyncio.to_thread(w.expect, what, timeout) for w in self.workers)))

    def send(self, *message: Any) -> None:
        for worker in self.workers:
            worker.conn.send(message)

    def stop(self) -> None:
        for worker in self.workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()


def _rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def bench_fanout(
    daemon: Daemon, metadata: Any, head: int, load: Load, count: int, processes: int
) -> dict[str, Any]:
    """Figure 2: `count` streams in `processes` processes while orders flow at `load`."""
    assert daemon.proc is not None
    pid, run = daemon.proc.pid, secrets.token_hex(3)
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    rss = {"before": _rss_mb(pid)}
    subscribers = await asyncio.to_thread(Subscribers, daemon.address, daemon.admin_token, count, processes, head)
    try:
        await subscribers.expect("opened", 60)
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = orders_pb2_grpc.OrderServiceStub(channel)
            watch = Watch()
            follower = asyncio.create_task(_watch(stub, metadata, head, watch))
            live = asyncio.ensure_future(subscribers.expect("live", 90))
            pings = 0
            while not live.done():  # an event for every stream, so each is known to be open
                await paced(stub, metadata, run, f"p{pings}", Load(1, 1, 1))
                pings += 1
                await asyncio.wait([live], timeout=0.5)
            rss["subscribed"] = _rss_mb(pid)
            cut_before = await asyncio.to_thread(probes.counter_total, url, daemon.admin_token, CUT_OFF)
            since = time.time()
            subscribers.send("measure", (since, math.inf))
            cpu_before = probes.cpu_snapshot(pid, str(daemon.data_dir))
            sent = await paced(stub, metadata, run, "fm", load)
            await _settle(watch, sent)
            follower.cancel()
        rss["after"] = _rss_mb(pid)
        subscribers.send("drain", watch.last_sequence)
        results = await subscribers.expect("result", 60)
        cpu_after = probes.cpu_snapshot(pid, str(daemon.data_dir))
        cut_daemon = await asyncio.to_thread(probes.counter_total, url, daemon.admin_token, CUT_OFF) - cut_before
    finally:
        await asyncio.to_thread(subscribers.stop)
    cpu = cpu_groups(probes.cpu_diff(cpu_before, cpu_after), subscribers.pids, cpu_before, cpu_after)
    return {
        "subscribers": count,
        "processes": processes,
        "all_live": all(live.result()),
        "target_rate": load.rate,
        "seconds": load.seconds,
        "orders": len(sent.started),
        "achieved_rate": sent.rate,
        "sending_s": sent.wall,
        "order_errors": dict(sent.errors),
        "first_order_error": sent.first_error,
        "place_reply": latency_ms(sent.replies),
        **delivery_figures(results, since, cpu),
        "cut_off_by_daemon": cut_daemon,
        "rss_mb": rss,
        "rss_kb_per_subscriber": (rss["subscribed"] - rss["before"]) * 1024 / count,
    }


async def bench_bare(out: Path, events_per_second: float, seconds: float, count: int, processes: int) -> dict[str, Any]:
    """Figure 3: the same streams from a bare grpc.aio server sending `events_per_second` canned events for
    `seconds`, measured as the daemon's run: from when the events start until every stream has had the last."""
    proc, port = await asyncio.to_thread(echo_server.spawn, out / "echo_server-stream.log", True)
    assert proc.stdin is not None and proc.stdout is not None
    subscribers = await asyncio.to_thread(Subscribers, f"127.0.0.1:{port}", "bare", count, processes, 0)
    try:
        await subscribers.expect("opened", 60)
        live = await subscribers.expect("live", 90)
        since = time.time()
        subscribers.send("measure", (since, math.inf))
        cpu_before = probes.cpu_snapshot(proc.pid)
        proc.stdin.write(f"RATE {events_per_second}\n")
        proc.stdin.flush()
        await asyncio.sleep(seconds)
        proc.stdin.write("RATE 0\n")
        proc.stdin.flush()
        last = await asyncio.to_thread(proc.stdout.readline)
        subscribers.send("drain", int(last.split()[1]))
        results = await subscribers.expect("result", 60)
        cpu_after = probes.cpu_snapshot(proc.pid)
    finally:
        await asyncio.to_thread(subscribers.stop)
        await asyncio.to_thread(echo_server.stop, proc)
    cpu = cpu_groups(probes.cpu_diff(cpu_before, cpu_after), subscribers.pids, cpu_before, cpu_after)
    return {
        "events_per_second": events_per_second,
        "seconds": seconds,
        "all_live": all(live),
        **delivery_figures(results, since, cpu),
    }


def cpu_groups(
    spent: dict[str, float], worker_pids: set[int], before: probes.CpuSnapshot | None, after: probes.CpuSnapshot | None
) -> dict[str, float]:
    """probes' CPU groups, with the subscriber processes taken out of "other"."""
    if before is None or after is None:
        return spent
    theirs = sum(after[p][1] - (before[p][1] if p in before else 0.0) for p in worker_pids if p in after)
    other = "other (not this benchmark)"
    regrouped = {**spent, "subscriber processes": theirs, other: max(0.0, spent.get(other, 0.0) - theirs)}
    return dict(sorted(regrouped.items(), key=lambda kv: -kv[1]))


def _bins_ms(bins: Counter[int], q: float) -> float:
    """The q-th percentile of latencies kept in BIN_SECONDS bins, in milliseconds (nearest rank)."""
    total = sum(bins.values())
    rank, seen = max(1, math.ceil(q / 100 * total)), 0
    for value in sorted(bins):
        seen += bins[value]
        if seen >= rank:
            return value * BIN_SECONDS * 1000
    return math.nan


def delivery_figures(results: list[dict[str, Any]], since: float, cpu: dict[str, float]) -> dict[str, Any]:
    """The subscriber processes' results as one: latency percentiles over every event of every stream, the rate
    they were delivered at from `since` to the last arrival, and the server's CPU time per message delivered."""
    bins: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for result in results:
        bins.update({int(k): v for k, v in result["latency_bins"].items()})
        errors.update(result["errors"])
    delivered = sum(bins.values())
    took = max(r["last_arrival"] for r in results) - since
    per_message = 1e6 / delivered if delivered else math.nan
    return {
        "delivered": delivered,
        "delivered_per_s": delivered / took if took > 0 else math.nan,
        "server_cpu_us_per_message": cpu.get("server process", math.nan) * per_message,
        "client_cpu_us_per_message": cpu.get("subscriber processes", math.nan) * per_message,
        "events_per_subscriber_min": min(r["measured_min"] for r in results),
        "events_per_subscriber_max": max(r["measured_max"] for r in results),
        "delivery_p50_ms": _bins_ms(bins, 50),
        "delivery_p99_ms": _bins_ms(bins, 99),
        "delivery_max_ms": _bins_ms(bins, 100),
        "cut_off_seen_by_clients": errors.get("RESOURCE_EXHAUSTED", 0),
        "stream_errors": dict(errors),
        "first_stream_error": next((r["first_error"] for r in results if r["first_error"]), ""),
        "all_drained": all(r["drained"] for r in results),
        "cpu_s": cpu,
    }


async def _head(address: str, metadata: Any) -> int:
    """The newest event's sequence, as a client learns it: the last of a catch-up from the start."""
    last = 0
    async with grpc.aio.insecure_channel(address) as channel:
        request = orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True)
        async for event in orders_pb2_grpc.OrderServiceStub(channel).StreamOrderEvents(request, metadata=metadata):
            last = event.sequence
    return last


async def bench_stream(
    out: Path, loads: list[Load], fanout_load: Load, subscribers: int, processes: int
) -> dict[str, Any]:
    log_path = out / "daemon-stream.log"
    log_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="tm-bench-stream-", ignore_cleanup_errors=True) as tmp:
        daemon = Daemon(Path(tmp) / "data", log_path)
        daemon.config.write_text(config_text(daemon))
        try:
            await asyncio.to_thread(daemon.start)
            metadata = (("authorization", f"Bearer {daemon.admin_token}"),)
            latency = await bench_latency(daemon.address, metadata, await _head(daemon.address, metadata), loads)
            head = await _head(daemon.address, metadata)
            fanout = await bench_fanout(daemon, metadata, head, fanout_load, subscribers, processes)
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                await asyncio.to_thread(daemon.stop)
    events_per_second = fanout["events_per_subscriber_max"] / fanout["sending_s"]
    bare = await bench_bare(out, events_per_second, fanout_load.seconds, subscribers, processes)
    ratio = fanout["delivery_p99_ms"] / bare["delivery_p99_ms"] if bare["delivery_p99_ms"] else math.nan
    return {"latency": latency, "fanout": fanout, "bare": bare, "p99_ratio": ratio, "cores": psutil.cpu_count()}


def _ms(figures: dict[str, float]) -> str:
    return f"{figures['p50_ms']:,.1f} / {figures['p99_ms']:,.1f} / {figures['max_ms']:,.1f}"


def print_latency(runs: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="Order → fill on the stream: MARKET orders, paced, one subscriber")
    table.add_column("")
    for run in runs:
        table.add_column(f"at {run['target_rate']:g}/s for {run['seconds']:g} s", justify="right")
    rows = [
        ("orders placed / fills seen", lambda r: f"{r['orders']:,} / {r['fills_seen']:,}"),
        ("achieved rate (orders/s)", lambda r: f"{r['achieved_rate']:,.1f}"),
        ("calls in flight at most", lambda r: str(r["in_flight"])),
        ("order → fill on the stream, p50 / p99 / max (ms)", lambda r: _ms(r["fill"])),
        ("  PlaceOrder's reply (ms)", lambda r: _ms(r["reply"])),
        ("  order → the fill's event time (ms)", lambda r: _ms(r["to_fill_event"])),
        ("  the fill's event time → arrival (ms)", lambda r: _ms(r["fill_delivery"])),
        ("errors", lambda r: str(r["errors"] or "none")),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in runs))
    console.print(table)
    issue = runs[-1]
    met = issue["achieved_rate"] >= TARGET_RATE * 0.99
    console.print(f"achieved rate at the issue's load {issue['achieved_rate']:,.1f}/s "
                  + report.against(f"{TARGET_RATE:g}/s", met))  # fmt: skip


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    print_latency(result["latency"], console)
    fan, bare = result["fanout"], result["bare"]
    table = Table(
        title=f"Fan-out: {fan['subscribers']:,} StreamOrderEvents subscribers in {fan['processes']} processes,"
        f" orders paced at {fan['target_rate']:g}/s for {fan['seconds']:g} s, {result['cores']} cores"
    )
    for column in ("", "daemon", f"bare grpc.aio at {bare['events_per_second']:,.0f} events/s"):
        table.add_column(column, justify="right")
    p99 = report.against(f"≤ {TARGET_DELIVERY_P99_MS:g} ms", fan["delivery_p99_ms"] <= TARGET_DELIVERY_P99_MS)
    rss = fan["rss_mb"]
    rows = [
        ("achieved order rate (orders/s)", f"{fan['achieved_rate']:,.1f}", ""),
        ("PlaceOrder reply p50 / p99 / max (ms)", _ms(fan["place_reply"]), ""),
        ("events delivered, all subscribers", f"{fan['delivered']:,}", f"{bare['delivered']:,}"),
        ("delivered per second (until the last arrived)", *(f"{f['delivered_per_s']:,.0f}" for f in (fan, bare))),
        ("server CPU per message delivered (µs)", *(f"{f['server_cpu_us_per_message']:,.0f}" for f in (fan, bare))),
        ("subscribers' CPU per message (µs)", *(f"{f['client_cpu_us_per_message']:,.0f}" for f in (fan, bare))),
        ("events per subscriber, min / max", *(f"{f['events_per_subscriber_min']:,} / "
                                               f"{f['events_per_subscriber_max']:,}" for f in (fan, bare))),
        ("delivery p50 (ms)", f"{fan['delivery_p50_ms']:,.1f}", f"{bare['delivery_p50_ms']:,.1f}"),
        ("delivery p99 (ms)", f"{fan['delivery_p99_ms']:,.1f} {p99}", f"{bare['delivery_p99_ms']:,.1f}"),
        ("delivery max (ms)", f"{fan['delivery_max_ms']:,.1f}", f"{bare['delivery_max_ms']:,.1f}"),
        ("delivery p99, daemon / bare", f"{result['p99_ratio']:,.2f}", ""),
        ("subscribers cut off (clients / daemon's count)",
         f"{fan['cut_off_seen_by_clients']} / {fan['cut_off_by_daemon']:g}", str(bare["cut_off_seen_by_clients"])),
        ("stream errors", str(fan["stream_errors"] or "none"), str(bare["stream_errors"] or "none")),
        ("daemon RSS before / subscribed / after (MiB)",
         f"{rss['before']:,.0f} / {rss['subscribed']:,.0f} / {rss['after']:,.0f}", ""),
        ("RSS per subscriber (KiB)", f"{fan['rss_kb_per_subscriber']:,.0f}", ""),
        ("all streams live / drained", f"{fan['all_live']} / {fan['all_drained']}",
         f"{bare['all_live']} / {bare['all_drained']}"),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for name, figures in (("daemon", fan), ("bare", bare)):
        cpu = ", ".join(f"{group} {seconds:.1f}" for group, seconds in figures["cpu_s"].items() if seconds >= 0.05)
        console.print(f"CPU seconds, {name} run: {cpu}")
    errors = [r["first_error"] for r in result["latency"]] + [fan["first_order_error"], fan["first_stream_error"]]
    for what in (*errors, bare["first_stream_error"]):
        if what:
            console.print(f"[yellow]{what}[/]")
