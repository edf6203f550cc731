"""Users, the accounts they own and their API tokens (hashes only: a token's secret is never stored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.errors import FailedPrecondition, NotFound
from engine.security.tokens import Role


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    accounts: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: str
    user: str
    description: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """What authenticating a token needs: its hash, and the user it speaks for."""

    secret_hash: str
    user: User


_USER = (
    "SELECT u.name, u.role, u.created_at,"
    " coalesce(array_agg(a.account ORDER BY a.account) FILTER (WHERE a.account IS NOT NULL), '{}') AS accounts"
    " FROM users u LEFT JOIN user_accounts a ON a.user_name = u.name"
)
_TOKEN = "SELECT token_id, user_name, description, created_at, revoked_at FROM api_tokens"


def _user(row: asyncpg.Record) -> User:
    return User(row["name"], Role(row["role"]), tuple(row["accounts"]), row["created_at"])


def _token(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(row["token_id"], row["user_name"], row["description"], row["created_at"], row["revoked_at"])


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def any_user(self) -> bool:
        return bool(await self._pool.fetchval("SELECT EXISTS (SELECT 1 FROM users)"))

    async def add_admin_token(self, name: str, token_id: str, secret_hash: str, *, only_if_no_users: bool) -> bool:
        """Make ``name`` an admin (creating it if need be) whose only working token is a new one, in one
        transaction; with ``only_if_no_users``, only on a database that has no users yet (False otherwise)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE users IN EXCLUSIVE MODE")
            if only_if_no_users and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)"):
                return False
            await conn.execute(
                "INSERT INTO users (name, role) VALUES ($1, 'admin') ON CONFLICT (name) DO UPDATE SET role = 'admin'",
                name,
            )
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE user_name = $1 AND revoked_at IS NULL", name
            )
            await conn.execute(
                "INSERT INTO api_tokens (token_id, user_name, secret_hash, description) VALUES ($1, $2, $3, $4)",
                token_id, name, secret_hash, "first start" if only_if_no_users else "serve --new-admin-token",
            )  # fmt: skip
        return True

    async def add(self, name: str, role: Role, accounts: Sequence[str]) -> User:
        async with self._pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                "INSERT INTO users (name, role) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING name", name, role.value
            )
            if created is None:
                raise FailedPrecondition(f"user {name} already exists; remove it first to change it")
            await conn.executemany(
                "INSERT INTO user_accounts (user_name, account) VALUES ($1, $2)", [(name, a) for a in accounts]
            )
        return await self.require(name)

    async def get(self, name: str) -> User | None:
        row = await self._pool.fetchrow(f"{_USER} WHERE u.name = $1 GROUP BY u.name", name)
        return _user(row) if row else None

    async def require(self, name: str) -> User:
        found = await self.get(name)
        if found is None:
            raise NotFound(f"user {name} not found")
        return found

    async def list(self) -> list[User]:
        return [_user(r) for r in await self._pool.fetch(f"{_USER} GROUP BY u.name ORDER BY u.name")]

    async def remove(self, name: str) -> tuple[User, list[str]]:
        """Delete the user and their tokens; returns the user and the ids of the working tokens that died with it."""
        user = await self.require(name)
        async with self._pool.acquire() as conn, conn.transaction():
            live = await conn.fetch(
                "SELECT token_id FROM api_tokens WHERE user_name = $1 AND revoked_at IS NULL", name
            )
            await conn.execute("DELETE FROM users WHERE name = $1", name)
        return user, [r["token_id"] for r in live]

    async def add_token(self, token_id: str, user: str, secret_hash: str, description: str) -> TokenRecord:
        row = await self._pool.fetchrow(
            "INSERT INTO api_tokens (token_id, user_name, secret_hash, description) VALUES ($1, $2, $3, $4)"
            " RETURNING token_id, user_name, description, created_at, revoked_at",
            token_id, user, secret_hash, description,
        )  # fmt: skip
        return _token(row)

    async def tokens(self, user: str) -> list[TokenRecord]:
        return [_token(r) for r in await self._pool.fetch(f"{_TOKEN} WHERE user_name = $1 ORDER BY created_at", user)]

    async def token(self, token_id: str) -> TokenRecord | None:
        row = await self._pool.fetchrow(f"{_TOKEN} WHERE token_id = $1", token_id)
        return _token(row) if row else None

    async def revoke(self, token_id: str) -> TokenRecord:
        """Idempotent: revoking a revoked token keeps its first revocation time."""
        row = await self._pool.fetchrow(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE token_id = $1"
            " RETURNING token_id, user_name, description, created_at, revoked_at",
            token_id,
        )
        if row is None:
            raise NotFound(f"token {token_id} not found")
        return _token(row)

    async def owner(self, token_id: str) -> TokenOwner | None:
        """The working token's hash and user; None when the token is unknown or revoked."""
        row = await self._pool.fetchrow(
            "SELECT secret_hash, user_name FROM api_tokens WHERE token_id = $1 AND revoked_at IS NULL", token_id
        )
        if row is None:
            return None
        user = await self.get(row["user_name"])
        return TokenOwner(row["secret_hash"], user) if user else None
