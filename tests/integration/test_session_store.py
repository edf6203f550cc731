"""Broker sessions against a real PostgreSQL: tokens stored encrypted per account, older plaintext rows sealed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest

from engine.brokers.session import BrokerSession
from engine.security.redaction import PROCESS_REDACTOR, REDACTED
from engine.security.secrets import SecretBox
from engine.store.database import EmbeddedPostgres, create_pool
from engine.store.migrate import migrate
from engine.store.sessions import SessionStore

EXPIRES = datetime(2030, 1, 2, 0, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = EmbeddedPostgres.start(tmp_path_factory.mktemp("sessions-db"))
    yield db.dsn
    db.stop()


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, 2)
    await migrate(pool)
    await pool.execute("DELETE FROM broker_sessions")
    yield pool
    await pool.close()


async def _stored(pool: asyncpg.Pool, account: str) -> str:
    return await pool.fetchval("SELECT access_token FROM broker_sessions WHERE account = $1", account)


async def test_token_is_stored_encrypted_and_read_back(pool: asyncpg.Pool) -> None:
    store = SessionStore(pool, SecretBox(os.urandom(32)))
    await store.save("ka1", BrokerSession("kite-access-token-0a1b2c", "KA0001", EXPIRES))
    assert (await _stored(pool, "ka1")).startswith("v1:")
    assert await store.get("ka1") == BrokerSession("kite-access-token-0a1b2c", "KA0001", EXPIRES)
    assert PROCESS_REDACTOR.redact("token kite-access-token-0a1b2c") == f"token {REDACTED}"


async def test_row_copied_to_another_account_reads_as_no_session(pool: asyncpg.Pool) -> None:
    store = SessionStore(pool, SecretBox(os.urandom(32)))
    await store.save("ka1", BrokerSession("token-of-ka1-3d4e5f", "KA0001", EXPIRES))
    await store.save("ka2", BrokerSession("token-of-ka2-6a7b8c", "KA0002", EXPIRES))
    await pool.execute(
        "UPDATE broker_sessions SET access_token = (SELECT access_token FROM broker_sessions WHERE account = 'ka1')"
        " WHERE account = 'ka2'"
    )
    assert await store.get("ka2") is None  # the account logs in again rather than use ka1's session


async def test_a_replaced_key_means_a_new_login(pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture) -> None:
    await SessionStore(pool, SecretBox(os.urandom(32))).save("ka1", BrokerSession("old-key-token-9f8e", "K", EXPIRES))
    assert await SessionStore(pool, SecretBox(os.urandom(32))).get("ka1") is None
    assert "ignoring the stored broker session of ka1: cannot decrypt" in caplog.text


async def test_plaintext_rows_of_older_versions_are_encrypted_once(pool: asyncpg.Pool) -> None:
    for account, token in (("ka1", "legacy-plain-token-1"), ("gone", "legacy-plain-token-2")):
        await pool.execute(
            "INSERT INTO broker_sessions (account, user_id, access_token, expires_at) VALUES ($1, 'U', $2, $3)",
            account,
            token,
            EXPIRES,
        )
    store = SessionStore(pool, SecretBox(os.urandom(32)))
    await store.save("ka2", BrokerSession("already-encrypted-token", "U", EXPIRES))
    ka2_before = await _stored(pool, "ka2")
    assert await store.encrypt_plaintext() == 2
    assert await store.encrypt_plaintext() == 0
    assert [(await _stored(pool, a))[:3] for a in ("ka1", "gone")] == ["v1:", "v1:"]
    assert await _stored(pool, "ka2") == ka2_before  # an encrypted row is left alone
    assert (await store.get("ka1"), await store.get("gone")) == (
        BrokerSession("legacy-plain-token-1", "U", EXPIRES),
        BrokerSession("legacy-plain-token-2", "U", EXPIRES),
    )


async def test_missing_and_deleted_sessions(pool: asyncpg.Pool) -> None:
    store = SessionStore(pool, SecretBox(os.urandom(32)))
    assert await store.get("nobody") is None
    await store.save("ka1", BrokerSession("deleted-token-aa11", "K", EXPIRES))
    await store.delete("ka1")
    assert await store.get("ka1") is None
