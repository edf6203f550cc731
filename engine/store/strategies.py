"""Strategies: parameters, the pure logic's state, the outbox of commands not yet executed, the orders each
placed and the event log that StreamStrategyEvents reads.

The StrategyActor writes state, outbox and event cursor in one statement (`save_step`); the gateway's runner
writes status, orders and events. Events are numbered like order events: under a transaction-scoped advisory
lock, so readers see them in number order and `after_sequence = N` is an exact resume point.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from engine.strategies.base import (
    Cancel,
    Command,
    Finish,
    Modify,
    Note,
    Place,
    SetTradingState,
    SquareOff,
    StrategyStatus,
)

EVENT_CHANNEL = "strategy_events"
_EVENT_LOCK = 0x7A4D_0006
_COMMANDS: dict[str, TypeAdapter[Any]] = {
    cls.__name__: TypeAdapter(cls) for cls in (Place, Cancel, Modify, SquareOff, SetTradingState, Note, Finish)
}
_LIVE = [StrategyStatus.RUNNING.value, StrategyStatus.PAUSED.value]
_COLUMNS = (
    "strategy_id, client_strategy_id, owner, kind, name, params::text, accounts, state::text, status, message,"
    " outbox::text, commands_issued, event_cursor, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class Pending:
    """A command the logic decided on and the runner has not yet reported executed."""

    command_id: int
    command: Command


def encode_command(pending: Pending) -> dict[str, Any]:
    kind = type(pending.command).__name__
    return {"id": pending.command_id, "type": kind, "data": _COMMANDS[kind].dump_python(pending.command, mode="json")}


def decode_command(raw: dict[str, Any]) -> Pending:
    return Pending(raw["id"], _COMMANDS[raw["type"]].validate_python(raw["data"]))


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    strategy_id: str
    client_strategy_id: str
    owner: str
    kind: str
    name: str
    params: dict[str, Any]  # the params model as JSON
    accounts: tuple[str, ...]
    state: dict[str, Any] | None
    status: StrategyStatus
    message: str
    outbox: tuple[Pending, ...]
    commands_issued: int
    event_cursor: int
    created_at: datetime
    updated_at: datetime


def order_client_id(strategy_id: str, key: str) -> str:
    """The client_order_id of the order placed under `key`: the same on every retry, so it is placed once."""
    return f"{strategy_id}-{key}"


@dataclass(frozen=True, slots=True)
class StrategyEvent:
    sequence: int
    strategy_id: str
    at: datetime
    kind: str
    message: str
    order_id: str
    status: StrategyStatus


def _record(row: asyncpg.Record) -> StrategyRecord:
    return StrategyRecord(
        strategy_id=row["strategy_id"],
        client_strategy_id=row["client_strategy_id"],
        owner=row["owner"],
        kind=row["kind"],
        name=row["name"],
        params=json.loads(row["params"]),
        accounts=tuple(row["accounts"]),
        state=json.loads(row["state"]) if row["state"] is not None else None,
        status=StrategyStatus(row["status"]),
        message=row["message"],
        outbox=tuple(decode_command(c) for c in json.loads(row["outbox"])),
        commands_issued=row["commands_issued"],
        event_cursor=row["event_cursor"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _event(row: asyncpg.Record) -> StrategyEvent:
    return StrategyEvent(
        row["seq"], row["strategy_id"], row["at"], row["kind"], row["message"], row["order_id"],
        StrategyStatus(row["status"]),
    )  # fmt: skip


class StrategyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(
        self,
        strategy_id: str,
        client_strategy_id: str,
        owner: str,
        kind: str,
        name: str,
        params: dict[str, Any],
        accounts: Sequence[str],
        event_cursor: int,
    ) -> tuple[StrategyRecord, bool]:
        """Create a RUNNING strategy and its first event; (the original, False) if the client id was used."""
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO strategies (strategy_id, client_strategy_id, owner, kind, name, params, accounts, status,"
                " message, event_cursor) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, 'RUNNING', 'created', $8)"
                " ON CONFLICT (client_strategy_id) DO NOTHING RETURNING strategy_id",
                strategy_id, client_strategy_id, owner, kind, name, json.dumps(params), list(accounts), event_cursor,
            )  # fmt: skip
            if inserted is not None:
                await self._append(conn, strategy_id, "created", f"{kind} created by {owner}", "", "RUNNING")
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM strategies WHERE client_strategy_id = $1", client_strategy_id
            )
        return _record(row), inserted is not None

    async def get(self, strategy_id: str) -> StrategyRecord | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM strategies WHERE strategy_id = $1", strategy_id)
        return _record(row) if row else None

    async def get_by_client_id(self, client_strategy_id: str) -> StrategyRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM strategies WHERE client_strategy_id = $1", client_strategy_id
        )
        return _record(row) if row else None

    async def list(self, *, active_only: bool = False) -> list[StrategyRecord]:
        """Oldest first; the caller filters by who may see each."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM strategies WHERE NOT $1 OR status = ANY($2::text[])"
            " ORDER BY created_at, strategy_id",
            active_only,
            _LIVE,
        )
        return [_record(r) for r in rows]

    async def save_step(
        self, strategy_id: str, state: dict[str, Any], outbox: Sequence[Pending], issued: int, cursor: int
    ) -> None:
        """The logic's new state with the commands it still owes and the order-event cursor, all at once."""
        await self._pool.execute(
            "UPDATE strategies SET state = $2::jsonb, outbox = $3::jsonb, commands_issued = $4,"
            " event_cursor = greatest(event_cursor, $5), updated_at = now() WHERE strategy_id = $1",
            strategy_id, json.dumps(state), json.dumps([encode_command(p) for p in outbox]), issued, cursor,
        )  # fmt: skip

    async def add_order(self, strategy_id: str, key: str, order_id: str) -> None:
        await self._pool.execute(
            "INSERT INTO strategy_orders (strategy_id, key, order_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            strategy_id,
            key,
            order_id,
        )

    async def orders(self, strategy_id: str) -> dict[str, str]:
        """Key -> order id of every order the strategy placed, oldest first."""
        rows = await self._pool.fetch(
            "SELECT key, order_id FROM strategy_orders WHERE strategy_id = $1 ORDER BY placed_at, key", strategy_id
        )
        return {r["key"]: r["order_id"] for r in rows}

    async def set_status(
        self, strategy_id: str, status: StrategyStatus, message: str, kind: str, order_id: str = ""
    ) -> StrategyRecord:
        """Move to `status` with an event saying why; a final status also drops what the outbox still held."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE strategies SET status = $2, message = $3, updated_at = now(),"
                " outbox = CASE WHEN $4 THEN '[]'::jsonb ELSE outbox END WHERE strategy_id = $1"
                f" RETURNING {_COLUMNS}",
                strategy_id, status.value, message, status.is_final,
            )  # fmt: skip
            await self._append(conn, strategy_id, kind, message, order_id, status.value)
        return _record(row)

    async def add_event(self, strategy_id: str, kind: str, message: str, order_id: str = "") -> None:
        """An event in the strategy's current status; it also becomes the strategy's latest message."""
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "UPDATE strategies SET message = $2, updated_at = now() WHERE strategy_id = $1 RETURNING status",
                strategy_id,
                message,
            )
            await self._append(conn, strategy_id, kind, message, order_id, status)

    @staticmethod
    async def _append(
        conn: asyncpg.Connection, strategy_id: str, kind: str, message: str, order_id: str, status: str
    ) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _EVENT_LOCK)
        seq = await conn.fetchval(
            "INSERT INTO strategy_events (seq, strategy_id, kind, message, order_id, status)"
            " VALUES (nextval('strategy_event_seq'), $1, $2, $3, $4, $5) RETURNING seq",
            strategy_id, kind, message, order_id, status,
        )  # fmt: skip
        await conn.execute("SELECT pg_notify($1, $2)", EVENT_CHANNEL, str(seq))

    async def events_after(self, sequence: int, limit: int) -> list[StrategyEvent]:
        rows = await self._pool.fetch(
            "SELECT seq, strategy_id, at, kind, message, order_id, status FROM strategy_events"
            " WHERE seq > $1 ORDER BY seq LIMIT $2",
            sequence,
            limit,
        )
        return [_event(r) for r in rows]

    async def head_sequence(self) -> int:
        return await self._pool.fetchval("SELECT coalesce(max(seq), 0) FROM strategy_events")
