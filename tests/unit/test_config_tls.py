"""TLS settings: a wrong or missing file stops start-up with the setting named, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from engine.config import ConfigError, load_settings
from tests.certs import CertAuthority, Issued


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("pki"), "unit")


@pytest.fixture(scope="module")
def server(ca: CertAuthority) -> Issued:
    return ca.issue("server", server=True)


def config(tmp_path: Path, **server_keys: Path) -> Path:
    lines = "".join(f'{key} = "{value}"\n' for key, value in server_keys.items())
    path = tmp_path / "config.toml"
    path.write_text(f"[server]\n{lines}")
    return path


def rejected(tmp_path: Path, **server_keys: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config(tmp_path, **server_keys))
    return str(caught.value)


def test_tls_and_mutual_tls_load(tmp_path: Path, ca: CertAuthority, server: Issued) -> None:
    path = config(tmp_path, tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=ca.cert)
    settings = load_settings(path).server
    assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file) == (
        server.cert,
        server.key,
        ca.cert,
    )
    assert load_settings().server.tls_cert_file is None  # the default stays plaintext on loopback


def test_environment_sets_tls(monkeypatch: pytest.MonkeyPatch, server: Issued) -> None:
    monkeypatch.setenv("TRADEMASTER_SERVER__TLS_CERT_FILE", str(server.cert))
    monkeypatch.setenv("TRADEMASTER_SERVER__TLS_KEY_FILE", str(server.key))
    assert load_settings().server.tls_key_file == server.key


def test_certificate_and_key_come_in_pairs(tmp_path: Path, ca: CertAuthority, server: Issued) -> None:
    assert "tls_cert_file is set but tls_key_file is not" in rejected(tmp_path, tls_cert_file=server.cert)
    assert "tls_key_file is set but tls_cert_file is not" in rejected(tmp_path, tls_key_file=server.key)
    assert "tls_client_ca_file needs tls_cert_file" in rejected(tmp_path, tls_client_ca_file=ca.cert)


def test_missing_unreadable_and_wrong_files_are_named(tmp_path: Path, ca: CertAuthority, server: Issued) -> None:
    missing = tmp_path / "nope.pem"
    assert f"tls_cert_file {missing} does not exist" in rejected(
        tmp_path, tls_cert_file=missing, tls_key_file=server.key
    )
    assert f"tls_client_ca_file {tmp_path} is a directory" in rejected(
        tmp_path, tls_cert_file=server.cert, tls_key_file=server.key, tls_client_ca_file=tmp_path
    )
    assert f"tls_cert_file {server.key} holds no PEM certificate" in rejected(
        tmp_path, tls_cert_file=server.key, tls_key_file=server.key
    )
    other = ca.issue("other-server", server=True)
    assert f"tls_key_file {other.key} is not the key of the first certificate in {server.cert}" in rejected(
        tmp_path, tls_cert_file=server.cert, tls_key_file=other.key
    )


def test_key_readable_by_others_is_refused(tmp_path: Path, server: Issued) -> None:
    shared = tmp_path / "shared.key"
    shared.write_bytes(server.key.read_bytes())
    shared.chmod(0o640)
    message = rejected(tmp_path, tls_cert_file=server.cert, tls_key_file=shared)
    assert f"tls_key_file {shared} is readable by group or others (mode 0640); run: chmod 600 {shared}" in message


def test_encrypted_key_is_refused(tmp_path: Path, server: Issued) -> None:
    key = serialization.load_pem_private_key(server.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    encrypted.chmod(0o600)
    assert "is encrypted; gRPC needs an unencrypted key" in rejected(
        tmp_path, tls_cert_file=server.cert, tls_key_file=encrypted
    )
