"""Broker login sessions in PostgreSQL, one per account, the access token encrypted (never log a row).

A token is bound to its account (the context ``account:<id>:access_token``), so a row copied onto another
account does not decrypt. A token that cannot be decrypted (the key was replaced) reads as no session: a
session lasts a day anyway, and the account asks for a new login instead of failing to start.
"""

from __future__ import annotations

import logging

import asyncpg

from engine.brokers.session import BrokerSession
from engine.security import redaction
from engine.security.secrets import VERSION, SecretBox, SecretError

log = logging.getLogger(__name__)


def _context(account: str) -> str:
    return f"account:{account}:access_token"


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox) -> None:
        self._pool = pool
        self._box = box

    async def get(self, account: str) -> BrokerSession | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, access_token, expires_at FROM broker_sessions WHERE account = $1", account
        )
        if row is None:
            return None
        try:
            token = self._box.decrypt(row["access_token"], _context(account))
        except SecretError as exc:
            log.warning("ignoring the stored broker session of %s: %s", account, exc)
            return None
        redaction.register(token)
        return BrokerSession(token, row["user_id"], row["expires_at"])

    async def save(self, account: str, session: BrokerSession) -> None:
        redaction.register(session.access_token)
        await self._pool.execute(
            """
            INSERT INTO broker_sessions (account, user_id, access_token, expires_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (account) DO UPDATE SET user_id = $2, access_token = $3, expires_at = $4, updated_at = now()
            """,
            account,
            session.user_id,
            self._box.encrypt(session.access_token, _context(account)),
            session.expires_at,
        )

    async def delete(self, account: str) -> None:
        await self._pool.execute("DELETE FROM broker_sessions WHERE account = $1", account)

    async def encrypt_plaintext(self) -> int:
        """Encrypt the tokens older versions stored in plaintext; returns how many. The daemon runs it at start-up.

        Every row, not only configured accounts': a removed account's token must not stay readable either. The
        table is then rewritten, since an UPDATE leaves the old row version, plaintext, in the table's file.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT account, access_token FROM broker_sessions WHERE access_token NOT LIKE $1 FOR UPDATE",
                f"{VERSION}:%",
            )
            for row in rows:
                redaction.register(row["access_token"])
            await conn.executemany(
                "UPDATE broker_sessions SET access_token = $2 WHERE account = $1",
                [(r["account"], self._box.encrypt(r["access_token"], _context(r["account"]))) for r in rows],
            )
        if rows:
            await self._pool.execute("VACUUM FULL broker_sessions")
        return len(rows)
