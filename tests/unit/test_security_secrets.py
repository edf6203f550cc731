"""SecretBox and key loading: round trips, rows that must not decrypt each other, and key-file safety."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from engine.security.secrets import SecretBox, SecretError, create_key_file, load_key, load_or_create_key

CONTEXT = "account:ZD0001:access_token"
ENV = "TM_TEST_SECRET_KEY"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(os.urandom(32))


def test_round_trip_with_a_fresh_nonce_each_time(box: SecretBox) -> None:
    first, second = box.encrypt("s3cret-tøken", CONTEXT), box.encrypt("s3cret-tøken", CONTEXT)
    assert first.startswith("v1:") and first != second
    assert "s3cret" not in first
    assert box.decrypt(first, CONTEXT) == box.decrypt(second, CONTEXT) == "s3cret-tøken"


def test_wrong_key_fails(box: SecretBox) -> None:
    token = box.encrypt("secret", CONTEXT)
    with pytest.raises(SecretError, match="wrong key, wrong context"):
        SecretBox(os.urandom(32)).decrypt(token, CONTEXT)


def test_ciphertext_copied_to_another_row_fails(box: SecretBox) -> None:
    token = box.encrypt("secret", CONTEXT)
    with pytest.raises(SecretError, match="account:ZD0002:access_token"):
        box.decrypt(token, "account:ZD0002:access_token")


@pytest.mark.parametrize("position", [0, 12, -1])  # nonce, ciphertext, tag
def test_tampered_ciphertext_fails(box: SecretBox, position: int) -> None:
    raw = bytearray(base64.urlsafe_b64decode(box.encrypt("secret", CONTEXT)[3:]))
    raw[position] ^= 1
    with pytest.raises(SecretError, match="altered ciphertext"):
        box.decrypt("v1:" + base64.urlsafe_b64encode(bytes(raw)).decode(), CONTEXT)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("plain text", "not a v1 token"),
        ("v2:AAAA", "not a v1 token"),
        ("v1:not*base64", "not valid base64url"),
        ("v1:" + base64.urlsafe_b64encode(b"short").decode(), "too short"),
    ],
)
def test_malformed_tokens_fail_clearly(box: SecretBox, token: str, message: str) -> None:
    with pytest.raises(SecretError, match=message):
        box.decrypt(token, CONTEXT)


def test_empty_context_is_refused(box: SecretBox) -> None:
    with pytest.raises(ValueError, match="context"):
        box.encrypt("secret", "")


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(SecretError, match="32 bytes, got 16"):
        SecretBox(os.urandom(16))


def test_key_from_environment_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv(ENV, base64.b64encode(key).decode())
    assert load_key(tmp_path / "absent.key", ENV) == key


def test_key_file_created_then_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "state" / "secret.key"
    key = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path, ENV) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary file left behind


def test_existing_key_file_is_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "secret.key"
    key = create_key_file(path)
    with pytest.raises(FileExistsError, match="refusing to replace"):
        create_key_file(path)
    assert load_key(path, ENV) == key


def test_readable_key_file_is_refused_with_the_chmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "secret.key"
    create_key_file(path)
    path.chmod(0o640)
    with pytest.raises(SecretError, match=r"mode 0640\); run: chmod 600 .*secret\.key"):
        load_key(path, ENV)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not base64 at all!", "is not base64"),
        (os.urandom(32), "is not base64"),  # raw bytes written instead of their base64
        (base64.b64encode(os.urandom(16)) + b"\n", "decodes to 16 bytes"),
    ],
)
def test_bad_key_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "secret.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(SecretError, match=f"key file {path}.* {message}"):
        load_key(path, ENV)


def test_bad_environment_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, base64.b64encode(os.urandom(31)).decode())
    with pytest.raises(SecretError, match=f"environment variable {ENV} decodes to 31 bytes"):
        load_key(None, ENV)
    monkeypatch.setenv(ENV, "%%%")
    with pytest.raises(SecretError, match=f"environment variable {ENV} is not base64"):
        load_key(None, ENV)


def test_missing_key_names_both_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(SecretError, match=f"set {ENV}"):
        load_key(None, ENV)
    with pytest.raises(SecretError, match=f"does not exist \\(and {ENV} is not set\\)"):
        load_key(tmp_path / "absent.key", ENV)


def test_first_start_creates_the_key_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "data" / "secret.key"
    key, created = load_or_create_key(path, ENV)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path, ENV) == (key, False)


def test_environment_key_creates_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setenv(ENV, base64.b64encode(key).decode())
    assert load_or_create_key(tmp_path / "secret.key", ENV) == (key, False)
    assert not (tmp_path / "secret.key").exists()


def test_unloadable_key_file_is_refused_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    path = tmp_path / "secret.key"
    path.write_text("c2hvcnQ=\n")
    path.chmod(0o600)
    with pytest.raises(SecretError, match="decodes to 5 bytes"):
        load_or_create_key(path, ENV)
    assert path.read_text() == "c2hvcnQ=\n"
