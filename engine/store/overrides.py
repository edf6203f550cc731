"""What the API set over the config file: account groups, quantity multipliers and trading states."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from engine.risk.states import Scope, ScopeKind, StateEntry, TradingState


@dataclass(frozen=True, slots=True)
class GroupOverride:
    name: str
    accounts: tuple[str, ...]
    deleted: bool


class OverrideStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def groups(self) -> list[GroupOverride]:
        rows = await self._pool.fetch("SELECT name, accounts, deleted FROM account_groups ORDER BY name")
        return [GroupOverride(r["name"], tuple(r["accounts"]), r["deleted"]) for r in rows]

    async def set_group(self, name: str, accounts: list[str]) -> None:
        await self._pool.execute(
            "INSERT INTO account_groups (name, accounts) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET accounts = $2, deleted = false, set_at = now()",
            name,
            accounts,
        )

    async def delete_group(self, name: str) -> None:
        await self._pool.execute(
            "INSERT INTO account_groups (name, accounts, deleted) VALUES ($1, '{}', true)"
            " ON CONFLICT (name) DO UPDATE SET accounts = '{}', deleted = true, set_at = now()",
            name,
        )

    async def multipliers(self) -> dict[str, Decimal]:
        rows = await self._pool.fetch("SELECT account, multiplier FROM account_multipliers")
        return {r["account"]: r["multiplier"] for r in rows}

    async def set_multiplier(self, account: str, value: Decimal) -> None:
        await self._pool.execute(
            "INSERT INTO account_multipliers (account, multiplier) VALUES ($1, $2)"
            " ON CONFLICT (account) DO UPDATE SET multiplier = $2, set_at = now()",
            account,
            value,
        )

    async def trading_states(self) -> list[StateEntry]:
        rows = await self._pool.fetch(
            "SELECT scope_kind, scope_name, state, floor, reason, set_by, set_at FROM trading_states"
        )
        return [
            StateEntry(
                scope=Scope(ScopeKind(r["scope_kind"]), r["scope_name"]),
                state=TradingState(r["state"]),
                reason=r["reason"],
                set_by=r["set_by"],
                set_at=r["set_at"],
                floor=TradingState(r["floor"]),
            )
            for r in rows
        ]

    async def set_trading_state(self, entry: StateEntry) -> None:
        await self._pool.execute(
            "INSERT INTO trading_states (scope_kind, scope_name, state, floor, reason, set_by, set_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope_kind, scope_name) DO UPDATE SET"
            " state = $3, floor = $4, reason = $5, set_by = $6, set_at = $7",
            entry.scope.kind.value, entry.scope.name, entry.state.value, entry.floor.value, entry.reason,
            entry.set_by, entry.set_at,
        )  # fmt: skip
