"""The CLI and the real grpcurl binary (through server reflection) against the running daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.integration.daemon import ROOT, Daemon, wait_for

GRPCURL = Path(sys.executable).parent / "grpcurl"


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args, "--server", daemon.address],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=daemon.cli_env(),
    )  # fmt: skip


def grpcurl(daemon: Daemon, method: str, body: dict | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(GRPCURL), "-plaintext", "-format-error", "-H", f"authorization: Bearer {daemon.admin_token}"]
    if body is not None:
        args += ["-d", json.dumps(body)]
    return subprocess.run([*args, daemon.address, *method.split()], capture_output=True, text=True, timeout=60)


def test_cli_place_get_list_portfolio_events(daemon: Daemon) -> None:
    placed = cli(daemon, "order", "place", "NSE:TCS", "buy", "2", "--account", "beta", "--product", "MIS", "--json")
    assert placed.returncode == 0, placed.stderr
    order = json.loads(placed.stdout)["order"]
    assert order["account"] == "beta" and order["instrument"] == "NSE:TCS"

    got = cli(daemon, "order", "get", order["order_id"], "--json")
    assert json.loads(got.stdout)["order_id"] == order["order_id"]
    listed = cli(daemon, "order", "list", "--account", "beta", "--json")
    assert order["order_id"] in [o["order_id"] for o in json.loads(listed.stdout)["orders"]]
    table = cli(daemon, "order", "list", "--account", "beta")
    assert table.returncode == 0 and order["order_id"] in table.stdout

    book = json.loads(cli(daemon, "portfolio", "--account", "beta", "--json").stdout)
    assert [a["account"] for a in book["accounts"]] == ["beta"]
    assert "Portfolio" in cli(daemon, "portfolio").stdout
    curve = wait_for(lambda: json.loads(cli(daemon, "pnl", "--account", "beta", "--json").stdout).get("points"))
    assert {"at", "realised_pnl", "unrealised_pnl", "total_pnl"} <= set(curve[-1])
    assert "PnL today" in cli(daemon, "pnl").stdout

    events = cli(daemon, "events", "--account", "beta", "--json")
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    sequences = [int(e["sequence"]) for e in lines]
    assert sequences == sorted(set(sequences)) and order["order_id"] in events.stdout
    resumed = cli(daemon, "events", "--account", "beta", "--after", str(sequences[-2]), "--json")
    assert [int(json.loads(x)["sequence"]) for x in resumed.stdout.splitlines()] == sequences[-1:]

    accounts = json.loads(cli(daemon, "accounts", "--json").stdout)["accounts"]
    assert [a["id"] for a in accounts] == ["alpha", "beta", "gamma"]


def test_cli_modify_and_cancel(daemon: Daemon) -> None:
    placed = cli(daemon, "order", "place", "NSE:SBIN", "BUY", "1", "--type", "LIMIT", "--price", "500", "--json")
    order_id = json.loads(placed.stdout)["order"]["order_id"]
    modified = json.loads(cli(daemon, "order", "modify", order_id, "--price", "501", "--json").stdout)
    assert modified["price"] == "501"
    cancelled = json.loads(cli(daemon, "order", "cancel", order_id, "--json").stdout)
    assert cancelled["status"] == "ORDER_STATUS_CANCELLED"


def test_cli_reports_server_errors_and_exits_non_zero(daemon: Daemon) -> None:
    bad = cli(daemon, "order", "place", "NSE:INFY", "BUY", "1", "--type", "LIMIT", "--price", "1500.03")
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT" in bad.stderr and "tick size" in bad.stderr
    missing = cli(daemon, "order", "get", "NOPE")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "clients.cli", "accounts", "--server", "127.0.0.1:1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unreachable.returncode == 1 and "UNAVAILABLE" in unreachable.stderr


def test_grpcurl_lists_services_and_places_an_order_by_reflection(daemon: Daemon) -> None:
    listed = grpcurl(daemon, "list")
    assert listed.returncode == 0, listed.stderr
    for service in ("trademaster.v1.OrderService", "trademaster.v1.PortfolioService",
                    "trademaster.v1.AccountService", "grpc.health.v1.Health"):  # fmt: skip
        assert service in listed.stdout
    placed = grpcurl(
        daemon,
        "trademaster.v1.OrderService/PlaceOrder",
        {"client_order_id": "grpcurl-1", "account": "beta", "instrument": "NSE:ITC", "side": "SIDE_BUY",
         "quantity": 3, "product": "PRODUCT_MIS", "order_type": "ORDER_TYPE_MARKET"},
    )  # fmt: skip
    assert placed.returncode == 0, placed.stderr
    order = json.loads(placed.stdout)["order"]
    assert order["client_order_id"] == "grpcurl-1" and order["account"] == "beta"
    fetched = grpcurl(daemon, "trademaster.v1.OrderService/GetOrder", {"client_order_id": "grpcurl-1"})
    assert json.loads(fetched.stdout)["order_id"] == order["order_id"]
    book = grpcurl(daemon, "trademaster.v1.PortfolioService/GetPortfolio", {"accounts": ["beta"]})
    assert json.loads(book.stdout)["accounts"][0]["account"] == "beta"
    refused = grpcurl(daemon, "trademaster.v1.OrderService/PlaceOrder", {"client_order_id": "x", "quantity": 1})
    assert refused.returncode != 0
    assert json.loads(refused.stderr) == {"code": 3, "message": "instrument: required"}  # 3 = INVALID_ARGUMENT
    health = grpcurl(daemon, "grpc.health.v1.Health/Check", {})
    assert json.loads(health.stdout)["status"] == "SERVING"


def test_metrics_endpoint_exposes_orders_latency_and_streams(daemon: Daemon) -> None:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    token = daemon.admin_token
    wrong_secret = token[:-1] + ("B" if token.endswith("A") else "A")
    for presented, reason in ((None, "missing API token"), ("tm_nosuch", "malformed"), (wrong_secret, "wrong secret")):
        headers = {"authorization": f"Bearer {presented}"} if presented else {}
        refused = httpx.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", refused.text
        assert reason in refused.text and refused.text.count("\n") == 1
    reply = httpx.get(url, headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert reply.status_code == 200, reply.text
    text = reply.text
    assert 'trademaster_orders_total{account="alpha"' in text
    assert 'trademaster_rpc_duration_seconds_bucket{code="OK"' in text and 'method="PlaceOrder"' in text
    assert 'trademaster_actor_call_duration_seconds_count{actor="account",method="submit"}' in text
    assert "trademaster_open_streams" in text


def test_serve_refuses_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlisten = "nowhere"\nlisen = "x"\n[[accounts]]\nid = "ok"\nbroker = "nosuch"\n')
    result = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve", "--config", str(config), "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    for named in ("server.listen", "server.lisen: unknown setting", "accounts.0.broker"):
        assert named in result.stderr
