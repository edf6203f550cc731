"""Config secrets as enc:v1: values (bound to account and field), the CLI making them, redaction, the API contract."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from pkgutil import iter_modules

import pytest
from typer.testing import CliRunner

from clients.cli.main import app
from engine.config import AccountSettings, load_settings
from engine.security.credentials import ConfigSecret, encrypt_config_value, register_plaintext, reveal_account
from engine.security.redaction import PROCESS_REDACTOR, REDACTED
from engine.security.secrets import SecretBox, SecretError
from trademaster import v1

ROOT = Path(__file__).resolve().parents[2]
API_SECRET = "kite-app-secret-7f3a9c"
PASSWORD = "sim-password-41d2e8"
API_MODULES = [import_module(f"trademaster.v1.{m.name}") for m in iter_modules(v1.__path__) if m.name.endswith("_pb2")]


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(os.urandom(32))


def _account(api_secret: str, password: str, account_id: str = "ka1", **connection: str) -> AccountSettings:
    return AccountSettings.model_validate(
        {
            "id": account_id,
            "broker": "kite",
            "connection": {
                "api_key": "app",
                "api_secret": api_secret,
                "simulator_url": "http://127.0.0.1:1",
                "sim_login": {"user_id": "KA0001", "password": password},
                **connection,
            },
        }
    )


def test_encrypted_values_are_revealed_and_redacted(box: SecretBox) -> None:
    account = _account(
        encrypt_config_value(box, "ka1", ConfigSecret.API_SECRET, API_SECRET),
        encrypt_config_value(box, "ka1", ConfigSecret.PASSWORD, PASSWORD),
    )
    assert account.connection.api_secret.startswith("enc:v1:")
    revealed = reveal_account(account, box).connection
    assert revealed.secret() == API_SECRET
    assert revealed.sim_login is not None and revealed.sim_login.password == PASSWORD
    assert PROCESS_REDACTOR.redact(f"{API_SECRET} {PASSWORD}") == f"{REDACTED} {REDACTED}"


def test_plaintext_values_pass_through(box: SecretBox) -> None:
    revealed = reveal_account(_account("plain-secret", "plain-password"), box).connection
    assert revealed.secret() == "plain-secret"
    assert revealed.sim_login is not None and revealed.sim_login.password == "plain-password"


def test_encrypted_value_in_the_named_environment_variable(box: SecretBox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TM_TEST_KITE_SECRET", encrypt_config_value(box, "ka1", ConfigSecret.API_SECRET, API_SECRET))
    account = _account("", "sim", api_secret_env="TM_TEST_KITE_SECRET")
    revealed = reveal_account(account, box).connection
    assert revealed.secret() == API_SECRET and revealed.api_secret_env == ""


@pytest.mark.parametrize(
    ("account_id", "field", "context"),
    [
        ("ka2", ConfigSecret.API_SECRET, "account:ka2:api_secret"),  # pasted under another account
        ("ka1", ConfigSecret.PASSWORD, "account:ka1:password"),  # pasted as another field
    ],
)
def test_value_bound_to_its_account_and_field(
    box: SecretBox, account_id: str, field: ConfigSecret, context: str
) -> None:
    sealed = encrypt_config_value(box, "ka1", ConfigSecret.API_SECRET, API_SECRET)
    values = {ConfigSecret.API_SECRET: "plain", ConfigSecret.PASSWORD: "plain", field: sealed}
    account = _account(values[ConfigSecret.API_SECRET], values[ConfigSecret.PASSWORD], account_id)
    with pytest.raises(SecretError, match=f"cannot decrypt secret for '{context}'"):
        reveal_account(account, box)


def test_wrong_key_fails(box: SecretBox) -> None:
    account = _account(encrypt_config_value(box, "ka1", ConfigSecret.API_SECRET, API_SECRET), "sim")
    with pytest.raises(SecretError, match="wrong key"):
        reveal_account(account, SecretBox(os.urandom(32)))


def test_gateway_redacts_plaintext_config_secrets_only(box: SecretBox) -> None:
    sealed = encrypt_config_value(box, "ka1", ConfigSecret.API_SECRET, "never-seen-by-gateway")
    register_plaintext([_account(sealed, "gateway-password-9c1")])
    assert PROCESS_REDACTOR.redact("gateway-password-9c1") == REDACTED
    assert PROCESS_REDACTOR.redact(sealed) == sealed  # ciphertext is harmless, and must stay readable in a repr


def test_security_settings_default_to_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.security.key_path(settings.data_dir) == tmp_path / "secret.key"
    assert settings.security.key_env == "TRADEMASTER_SECRET_KEY"
    config = tmp_path / "config.toml"
    config.write_text('[security]\nkey_file = "/etc/trademaster/key"\nkey_env = "TM_KEY"\n')
    settings = load_settings(config, data_dir=tmp_path)
    assert settings.security.key_path(settings.data_dir) == Path("/etc/trademaster/key")
    assert settings.security.key_env == "TM_KEY"


def test_install_process_covers_root_and_ray_handlers() -> None:
    """In a fresh interpreter, as in a Ray worker: no root handler yet, and Ray's logger does not propagate."""
    script = """
import logging, sys
ray_logger = logging.getLogger("ray")
ray_logger.addHandler(logging.StreamHandler(sys.stdout))
ray_logger.propagate = False
from engine.security import redaction
redaction.install_process()
redaction.register("worker-secret-5e6f")
logging.getLogger("engine.brokers.kite").info("login with worker-secret-5e6f")
ray_logger.warning("task failed: worker-secret-5e6f")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "worker-secret" not in done.stdout + done.stderr
    assert f"engine.brokers.kite: login with {REDACTED}" in done.stderr
    assert done.stdout == f"task failed: {REDACTED}\n"


def test_cli_encrypts_stdin_with_the_daemon_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv("TRADEMASTER_SECRET_KEY", base64.b64encode(key).decode())
    args = ["secrets", "encrypt", "--account", "ka1", "--field", "api_secret", "--data-dir", str(tmp_path)]
    done = CliRunner().invoke(app, args, input=f"{API_SECRET}\n")
    assert done.exit_code == 0, done.output
    value = done.stdout.strip()
    assert API_SECRET not in done.output and not (tmp_path / "secret.key").exists()  # the environment's key
    assert reveal_account(_account(value, "sim"), SecretBox(key)).connection.secret() == API_SECRET
    refused = CliRunner().invoke(app, args, input="\n")
    assert refused.exit_code == 2 and "the secret is empty" in refused.output


def test_no_api_message_has_a_broker_credential_field() -> None:
    """Invariant 7 at the contract: no RPC can return a broker credential, since no message has a field for one."""
    credential = re.compile(r"api_secret|client_secret|password|access_token|refresh_token|request_token|checksum")
    pending = [m for module in API_MODULES for m in module.DESCRIPTOR.message_types_by_name.values()]
    fields = []
    while pending:
        message = pending.pop()
        pending.extend(message.nested_types)
        fields.extend(f"{message.full_name}.{f.name}" for f in message.fields)
    assert len(fields) > 100
    assert [f for f in fields if credential.search(f.rsplit(".", 1)[1])] == []
