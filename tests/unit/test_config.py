"""Configuration: defaults, the demo, file < environment < flags, and errors that name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.config import ConfigError, load_settings
from engine.demo import demo_accounts, demo_simulators


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_no_config_is_the_demo_with_embedded_database_and_local_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    s = load_settings()
    assert s.accounts == []  # the daemon starts the demo simulators and accounts
    demo = demo_accounts({"kite": "http://127.0.0.1:1", "upstox": "http://127.0.0.1:2"})
    assert [a.id for a in demo] == ["zerodha-main", "zerodha-family", "upstox-main"]
    assert [a.broker_name for a in demo] == ["zerodha-sim", "zerodha-sim", "upstox-sim"]
    assert s.model_copy(update={"accounts": demo}).default_account == "zerodha-main"
    sims = demo_simulators(s.paper)
    users = {a.connection.sim_login.user_id for a in demo if a.connection.sim_login}
    assert users == {u.user_id for sim in sims.values() for u in sim.users}
    assert s.database.url == "" and s.ray.address == ""
    assert s.server.listen == "127.0.0.1:50051" and s.server.metrics_listen == "127.0.0.1:9464"


def test_file_values_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        '[server]\nlisten = "127.0.0.1:7000"\n[database]\nurl = "postgresql://file"\n'
        '[[accounts]]\nid = "solo"\n[accounts.paper]\nopening_cash = "2500.50"\n',
    )
    monkeypatch.setenv("TRADEMASTER_DATABASE__URL", "postgresql://env")
    s = load_settings(path, data_dir=tmp_path / "flag")
    assert s.server.listen == "127.0.0.1:7000"
    assert s.database.url == "postgresql://env"
    assert s.data_dir == tmp_path / "flag"
    assert [a.id for a in s.accounts] == ["solo"] and s.default_account == "solo"
    assert s.accounts[0].paper.opening_cash == Decimal("2500.50")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[server]\nlistne = "x"\n', "server.listne: unknown setting"),
        ('[server]\nlisten = "no-port"\n', "server.listen"),
        ("bogus = 1\n", "bogus: unknown setting"),
        ('[[accounts]]\nid = "bad id!"\n', "accounts.0.id"),
        ('[[accounts]]\nid = "a"\nbroker = "nosuch"\n', "accounts.0.broker"),
        ('[[accounts]]\nid = "a"\n[[accounts]]\nid = "a"\n', "duplicate id a"),
        ('[[accounts]]\nid = "a"\ndefault = true\n[[accounts]]\nid = "b"\ndefault = true\n', "more than one"),
        ('[paper]\nvolatility = -1\n', "paper.volatility"),
        ('[[accounts]]\nid = "a"\n[accounts.paper.holdings."NSE:NOPE"]\nquantity = 1\naverage_price = "1"\n',
         "unknown instrument NSE:NOPE"),
        ("[server\n", "not valid TOML"),
        ('[[accounts]]\nid = "a"\nray_resources = { egress_ip_a = 0 }\n', "accounts.0.ray_resources"),
        ('[[accounts]]\nid = "k"\nbroker = "kite"\n', "connection.api_key is required"),
        ('[[accounts]]\nid = "k"\nbroker = "kite"\n[accounts.connection]\napi_key = "x"\napi_secret_env = "NOPE_X"\n',
         "API secret is missing (NOPE_X)"),
    ],
)  # fmt: skip
def test_bad_config_is_refused_naming_the_problem(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, text))
    assert named in str(refused.value)


def test_missing_file_and_bad_environment_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
    monkeypatch.setenv("TRADEMASTER_RAY__NUM_CPUS", "many")
    with pytest.raises(ConfigError, match=r"ray\.num_cpus"):
        load_settings()
