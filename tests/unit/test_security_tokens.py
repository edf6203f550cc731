"""API tokens: shape, parsing errors that never echo the secret, argon2 verification, role nesting."""

from __future__ import annotations

import time

import pytest
from argon2.exceptions import InvalidHashError

from engine.security.tokens import Role, format_token, hash_secret, new_token, parse_token, verify_secret


def test_new_token_round_trips_through_parse() -> None:
    token_id, secret = new_token()
    text = format_token(token_id, secret)
    assert text.startswith(f"tm_{token_id}_") and len(token_id) == 12 and len(secret) == 43
    assert parse_token(text) == (token_id, secret)
    assert parse_token(f"  {text}\n") == (token_id, secret)  # pasted from a file
    assert new_token() != new_token()


def test_secret_may_contain_the_separator() -> None:
    secret = "_" * 10 + "a-b" * 11
    assert parse_token(f"tm_0123456789ab_{secret}") == ("0123456789ab", secret)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must start with 'tm_'"),
        ("Bearer tm_0123456789ab_" + "x" * 43, "must start with 'tm_'"),
        ("tm_0123456789ab", "expected tm_<token id>_<secret>"),
        ("tm_0123456789AB_" + "x" * 43, "token id must be 12 lowercase hex"),
        ("tm_0123_" + "x" * 43, "token id must be 12 lowercase hex"),
        ("tm_0123456789ab_" + "x" * 42, "secret must be 43 characters"),
        ("tm_0123456789ab_" + "x" * 42 + "!", "secret must be 43 characters"),
    ],
)
def test_malformed_tokens_are_rejected_without_echoing_them(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        parse_token(text)
    assert "xxxx" not in str(raised.value)


def test_hash_verifies_only_its_secret_and_is_cheap() -> None:
    _, secret = new_token()
    stored = hash_secret(secret)
    assert stored.startswith("$argon2id$") and secret not in stored
    started = time.perf_counter()
    assert verify_secret(stored, secret)
    assert time.perf_counter() - started < 0.1
    assert not verify_secret(stored, new_token()[1])
    assert hash_secret(secret) != stored  # salted


def test_a_corrupt_stored_hash_is_an_error_not_a_mismatch() -> None:
    with pytest.raises(InvalidHashError):
        verify_secret("not-a-hash", "secret")


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Role.VIEWER}),
        (Role.TRADER, {Role.VIEWER, Role.TRADER}),
        (Role.ADMIN, {Role.VIEWER, Role.TRADER, Role.ADMIN}),
    ],
)
def test_roles_nest(role: Role, allowed: set[Role]) -> None:
    assert {required for required in Role if role.allows(required)} == allowed


def test_roles_parse_from_their_stored_text() -> None:
    assert Role("trader") is Role.TRADER and str(Role.ADMIN) == "admin"
