"""Orders, fills and the order event log.

Event sequence numbers are taken under a transaction-scoped advisory lock, so they become visible
in the order they were assigned: a reader that has seen sequence N has seen every event below N.
That is what lets a stream resume "after N" with no gap and no repeat.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

import asyncpg
from pydantic import TypeAdapter

from engine.domain import (
    TERMINAL_STATUSES,
    Fill,
    InstrumentId,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    Product,
    Side,
)
from engine.errors import FailedPrecondition

EVENT_CHANNEL = "order_events"
_ORDER_JSON = TypeAdapter(Order)
_FILL_JSON = TypeAdapter(Fill)
_TERMINAL = [s.value for s in TERMINAL_STATUSES]

_ORDER_COLUMNS = (
    "order_id, client_order_id, account_id, instrument, side, quantity, product, order_type, price,"
    " trigger_price, status, filled_quantity, average_price, broker_order_id, status_message,"
    " created_at, updated_at, parent_order_id, external"
)

_ORDER_TYPES = (
    "text", "text", "text", "text", "text", "bigint", "text", "text", "numeric", "numeric", "text", "bigint",
    "numeric", "text", "text", "timestamptz", "timestamptz", "text", "boolean",
)  # fmt: skip


# Rows are decoded by the hundred thousand when a restart replays the fills: an enum looked up by value, or an
# instrument parsed again (regex, upper-casing), costs more than the rest of the row. InstrumentIds are immutable,
# so one per instrument text serves every row.
_SIDE = {s.value: s for s in Side}
_PRODUCT = {p.value: p for p in Product}
_ORDER_TYPE = {t.value: t for t in OrderType}
_STATUS = {s.value: s for s in OrderStatus}
_instrument = functools.lru_cache(maxsize=16_384)(InstrumentId.parse)


def _order_from_row(row: asyncpg.Record) -> Order:
    return Order(
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        account=row["account_id"],
        instrument=_instrument(row["instrument"]),
        side=_SIDE[row["side"]],
        quantity=row["quantity"],
        product=_PRODUCT[row["product"]],
        order_type=_ORDER_TYPE[row["order_type"]],
        price=row["price"],
        trigger_price=row["trigger_price"],
        status=_STATUS[row["status"]],
        filled_quantity=row["filled_quantity"],
        average_price=row["average_price"],
        broker_order_id=row["broker_order_id"],
        status_message=row["status_message"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        parent_order_id=row["parent_order_id"],
        external=row["external"],
    )


def _order_values(o: Order) -> tuple[object, ...]:
    return (
        o.order_id, o.client_order_id, o.account, str(o.instrument), o.side.value, o.quantity,
        o.product.value, o.order_type.value, o.price, o.trigger_price, o.status.value,
        o.filled_quantity, o.average_price, o.broker_order_id, o.status_message, o.created_at, o.updated_at,
        o.parent_order_id, o.external,
    )  # fmt: skip


def _fill_from_row(row: asyncpg.Record) -> Fill:
    return Fill(
        account=row["account_id"],
        trade_id=row["trade_id"],
        order_id=row["order_id"],
        instrument=_instrument(row["instrument"]),
        side=_SIDE[row["side"]],
        product=_PRODUCT[row["product"]],
        quantity=row["quantity"],
        price=row["price"],
        filled_at=row["filled_at"],
    )


def _event_from_row(row: asyncpg.Record) -> OrderEvent:
    if row["kind"] == "fill":
        return OrderEvent(row["seq"], row["at"], row["account_id"], fill=_FILL_JSON.validate_json(row["payload"]))
    return OrderEvent(row["seq"], row["at"], row["account_id"], order=_ORDER_JSON.validate_json(row["payload"]))


# Claims $2 (the client order id) for $1 (the order id); the statement using it inserts only if it won.
CLAIM_CLIENT_ID = (
    "claim AS (INSERT INTO client_order_ids (client_order_id, order_id) VALUES ($2, $1)"
    " ON CONFLICT DO NOTHING RETURNING 1)"
)


_N = len(_ORDER_TYPES)
_EVENT_COLUMNS = "e.seq, e.at"
# The event is appended per stored row (LATERAL on the insert's RETURNING), so a lost claim appends nothing.
_INSERT_NEW = (
    f"WITH {CLAIM_CLIENT_ID}, stored AS (INSERT INTO orders ({_ORDER_COLUMNS})"
    f" SELECT {', '.join(f'${i}::{kind}' for i, kind in enumerate(_ORDER_TYPES, start=1))} FROM claim"
    " RETURNING account_id)"
    f" SELECT {_EVENT_COLUMNS} FROM stored,"
    f" LATERAL append_order_events(stored.account_id, ARRAY['order'], ARRAY[${_N + 1}::text]) AS e"
)
# The fills' events come first, in the fills' order, so the n-th event by number is the n-th fill's.
_RECORD = (
    "WITH changed AS (UPDATE orders SET quantity = $2, price = $3, trigger_price = $4, order_type = $5,"
    " status = $6, filled_quantity = $7, average_price = $8, broker_order_id = $9, status_message = $10,"
    " updated_at = $11 WHERE order_id = $1),"
    " e AS (SELECT *, row_number() OVER (ORDER BY seq) AS n FROM append_order_events($12, $13::text[], $14::text[])),"
    " stored AS (INSERT INTO fills (account_id, trade_id, order_id, instrument, side, product, quantity, price,"
    " filled_at, seq)"
    " SELECT f.account_id, f.trade_id, f.order_id, f.instrument, f.side, f.product, f.quantity, f.price,"
    " f.filled_at, e.seq FROM unnest($15::text[], $16::text[], $17::text[], $18::text[], $19::text[],"
    " $20::text[], $21::bigint[], $22::numeric[], $23::timestamptz[]) WITH ORDINALITY"
    " AS f(account_id, trade_id, order_id, instrument, side, product, quantity, price, filled_at, n)"
    " JOIN e USING (n))"
    f" SELECT {_EVENT_COLUMNS} FROM e"
)


def _announced(rows: list[asyncpg.Record], items: Sequence[Fill | Order]) -> list[OrderEvent]:
    """The events a write appended, one per item in the items' order, built from the items themselves: the
    stored payload is their JSON, so reading it back would only parse what was just written."""
    numbered = sorted((r["seq"], r["at"]) for r in rows)
    return [
        OrderEvent(seq, at, item.account, fill=item)
        if isinstance(item, Fill)
        else OrderEvent(seq, at, item.account, order=item)
        for (seq, at), item in zip(numbered, items, strict=True)
    ]


class ClientIdTaken(FailedPrecondition):
    def __init__(self, client_order_id: str, holder: str) -> None:
        super().__init__(f"client_order_id {client_order_id} was already used for {holder}; use a new id")
        self.client_order_id = client_order_id
        self.holder = holder

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Rebuild from both parts, so the error survives crossing a Ray actor boundary."""
        return type(self), (self.client_order_id, self.holder)


class DuplicateFill(Exception):
    def __init__(self, account: str, trade_ids: list[str]) -> None:
        super().__init__(f"fills already recorded for {account}: {', '.join(trade_ids)}")


class OrderStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert_new(self, order: Order) -> tuple[Order, list[OrderEvent]]:
        """Persist a new order's intent. If its client_order_id exists, return the original and no events.

        Routed orders share the client_order_id namespace: an id a routed order holds raises ClientIdTaken.
        One statement, so one round trip and its own transaction: the claim, the row, and (only if both were
        stored: the event is appended once per stored row) its event.
        """
        rows = await self._pool.fetch(_INSERT_NEW, *_order_values(order), _ORDER_JSON.dump_json(order).decode())
        if rows:
            return order, _announced(rows, [order])
        row = await self._pool.fetchrow(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = $1", order.client_order_id
        )
        if row is None:
            raise ClientIdTaken(order.client_order_id, "a routed order")
        return _order_from_row(row), []

    async def record(self, order: Order, fills: Sequence[Fill] = ()) -> list[OrderEvent]:
        """Save an order's new state and its new fills atomically, announcing each as an event.

        Raises DuplicateFill, changing nothing, if a fill is already stored: the caller computed the
        order from a stale view and must reload it rather than count that fill twice. One statement (the
        update, the events, the fills, each fill with its event's number), so one round trip.
        """
        payloads = [_FILL_JSON.dump_json(f).decode() for f in fills]
        payloads.append(_ORDER_JSON.dump_json(order).decode())
        try:
            rows = await self._pool.fetch(
                _RECORD,
                order.order_id, order.quantity, order.price, order.trigger_price, order.order_type.value,
                order.status.value, order.filled_quantity, order.average_price, order.broker_order_id,
                order.status_message, order.updated_at, order.account,
                ["fill"] * len(fills) + ["order"], payloads,
                [f.account for f in fills], [f.trade_id for f in fills], [f.order_id for f in fills],
                [str(f.instrument) for f in fills], [f.side.value for f in fills], [f.product.value for f in fills],
                [f.quantity for f in fills], [f.price for f in fills], [f.filled_at for f in fills],
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "fills_pkey":
                raise
            known = await self._pool.fetch(
                "SELECT trade_id FROM fills WHERE account_id = $1 AND trade_id = ANY($2::text[])",
                order.account,
                [f.trade_id for f in fills],
            )
            if not known:
                raise  # the same trade twice among these fills: a caller's bug, not a stale view
            raise DuplicateFill(order.account, [r["trade_id"] for r in known]) from None
        return _announced(rows, [*fills, order])

    async def get(self, order_id: str) -> Order | None:
        row = await self._pool.fetchrow(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id)
        return _order_from_row(row) if row else None

    async def get_by_broker_id(self, account: str, broker_order_id: str) -> Order | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE account_id = $1 AND broker_order_id = $2",
            account,
            broker_order_id,
        )
        return _order_from_row(row) if row else None

    async def get_by_client_id(self, client_order_id: str) -> Order | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = $1", client_order_id
        )
        return _order_from_row(row) if row else None

    async def list(
        self,
        *,
        accounts: Collection[str] | None = None,
        statuses: Iterable[OrderStatus] = (),
        open_only: bool = False,
        limit: int = 500,
    ) -> list[Order]:
        """Newest first; ``accounts`` None means every account."""
        wanted = [s.value for s in statuses] or None
        rows = await self._pool.fetch(
            f"SELECT {_ORDER_COLUMNS} FROM orders"
            " WHERE ($1::text[] IS NULL OR account_id = ANY($1))"
            " AND ($2::text[] IS NULL OR status = ANY($2))"
            " AND (NOT $3 OR status <> ALL($4::text[]))"
            " ORDER BY created_at DESC, order_id DESC LIMIT $5",
            None if accounts is None else list(accounts), wanted, open_only, _TERMINAL, limit,
        )  # fmt: skip
        return [_order_from_row(r) for r in rows]

    async def legs(self, parent_order_id: str) -> list[Order]:
        rows = await self._pool.fetch(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE parent_order_id = $1 ORDER BY created_at, order_id",
            parent_order_id,
        )
        return [_order_from_row(r) for r in rows]

    async def live_orders(self, account: str) -> list[Order]:
        return await self.list(accounts=[account], open_only=True, limit=1_000_000)

    async def count_since(self, account: str, since: datetime) -> int:
        """Orders the account has stored since `since`: what a daily order cap has used up after a restart."""
        return await self._pool.fetchval(
            "SELECT count(*) FROM orders WHERE account_id = $1 AND created_at >= $2", account, since
        )

    async def broker_order_ids(self, account: str, since: datetime) -> set[str]:
        """The broker ids of the account's orders changed since `since`: what reconciliation already knows."""
        rows = await self._pool.fetch(
            "SELECT broker_order_id FROM orders WHERE account_id = $1 AND broker_order_id IS NOT NULL"
            " AND updated_at >= $2",
            account,
            since,
        )
        return {r["broker_order_id"] for r in rows}

    async def trade_ids(self, account: str, since: datetime, orders: Collection[str]) -> set[str]:
        """The trade ids of the account's fills since `since` and of all fills of `orders`, whatever their age."""
        rows = await self._pool.fetch(
            "SELECT trade_id FROM fills WHERE account_id = $1 AND (filled_at >= $2 OR order_id = ANY($3::text[]))",
            account, since, list(orders),
        )  # fmt: skip
        return {r["trade_id"] for r in rows}

    async def events_after(self, sequence: int, limit: int, account: str | None = None) -> list[OrderEvent]:
        rows = await self._pool.fetch(
            "SELECT seq, at, account_id, kind, payload::text FROM order_events"
            " WHERE seq > $1 AND ($2::text IS NULL OR account_id = $2) ORDER BY seq LIMIT $3",
            sequence, account, limit,
        )  # fmt: skip
        return [_event_from_row(r) for r in rows]

    async def head_sequence(self) -> int:
        return await self._pool.fetchval("SELECT coalesce(max(seq), 0) FROM order_events")

    async def book_fills(self, account: str, instrument: InstrumentId, product: Product, through: int) -> list[Fill]:
        """One position book's fills with a sequence up to `through`: what the ledger rebuilds it from."""
        rows = await self._pool.fetch(
            "SELECT account_id, trade_id, order_id, instrument, side, product, quantity, price, filled_at"
            " FROM fills WHERE account_id = $1 AND instrument = $2 AND product = $3 AND seq <= $4",
            account, str(instrument), product.value, through,
        )  # fmt: skip
        return [_fill_from_row(r) for r in rows]

    async def fills_after(self, sequence: int, limit: int = 10_000) -> list[tuple[int, Fill]]:
        rows = await self._pool.fetch(
            "SELECT account_id, trade_id, order_id, instrument, side, product, quantity, price, filled_at, seq"
            " FROM fills WHERE seq > $1 ORDER BY seq LIMIT $2",
            sequence,
            limit,
        )
        return [(r["seq"], _fill_from_row(r)) for r in rows]
