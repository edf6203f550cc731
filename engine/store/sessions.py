"""Broker login sessions in PostgreSQL, one per account (the token is a secret: never log a row)."""

from __future__ import annotations

import asyncpg

from engine.brokers.session import BrokerSession


class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, account: str) -> BrokerSession | None:
        row = await self._pool.fetchrow(
            "SELECT user_id, access_token, expires_at FROM broker_sessions WHERE account = $1", account
        )
        return BrokerSession(row["access_token"], row["user_id"], row["expires_at"]) if row else None

    async def save(self, account: str, session: BrokerSession) -> None:
        await self._pool.execute(
            """
            INSERT INTO broker_sessions (account, user_id, access_token, expires_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (account) DO UPDATE SET user_id = $2, access_token = $3, expires_at = $4, updated_at = now()
            """,
            account,
            session.user_id,
            session.access_token,
            session.expires_at,
        )

    async def delete(self, account: str) -> None:
        await self._pool.execute("DELETE FROM broker_sessions WHERE account = $1", account)
