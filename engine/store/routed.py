"""Routed orders (the parents) and the decisions that routed them; their legs live in `orders`."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from engine.domain import InstrumentId, OrderType, Product, Side
from engine.domain.routed import RoutedOrder
from engine.store.orders import CLAIM_CLIENT_ID, ClientIdTaken

_COLUMNS = (
    "order_id, client_order_id, instrument, side, quantity, product, order_type, price, trigger_price, created_at,"
    " placed_by"
)


def _from_row(row: asyncpg.Record) -> RoutedOrder:
    return RoutedOrder(
        order_id=row["order_id"],
        client_order_id=row["client_order_id"],
        instrument=InstrumentId.parse(row["instrument"]),
        side=Side(row["side"]),
        quantity=row["quantity"],
        product=Product(row["product"]),
        order_type=OrderType(row["order_type"]),
        created_at=row["created_at"],
        price=row["price"],
        trigger_price=row["trigger_price"],
        placed_by=row["placed_by"],
    )


class RoutedOrderStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, order: RoutedOrder, decision: dict[str, Any]) -> tuple[RoutedOrder, bool]:
        """Persist a new routed order before any leg is sent; (the original, False) if its id was seen."""
        inserted = await self._pool.fetchval(
            f"WITH {CLAIM_CLIENT_ID} INSERT INTO routed_orders ({_COLUMNS}, decisions)"
            " SELECT $1::text, $2::text, $3::text, $4::text, $5::bigint, $6::text, $7::text, $8::numeric,"
            " $9::numeric, $10::timestamptz, $11::text, jsonb_build_array($12::jsonb) FROM claim RETURNING order_id",
            order.order_id, order.client_order_id, str(order.instrument), order.side.value, order.quantity,
            order.product.value, order.order_type.value, order.price, order.trigger_price, order.created_at,
            order.placed_by, json.dumps(decision),
        )  # fmt: skip
        if inserted is not None:
            return order, True
        existing = await self.get_by_client_id(order.client_order_id)
        if existing is None:
            raise ClientIdTaken(order.client_order_id, "an order placed without routing")
        return existing, False

    async def add_decision(self, order_id: str, decision: dict[str, Any]) -> None:
        """Record a re-route (legs whose broker was unreachable, sent elsewhere) after the first decision."""
        await self._pool.execute(
            "UPDATE routed_orders SET decisions = decisions || jsonb_build_array($2::jsonb) WHERE order_id = $1",
            order_id,
            json.dumps(decision),
        )

    async def get(self, order_id: str) -> RoutedOrder | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM routed_orders WHERE order_id = $1", order_id)
        return _from_row(row) if row else None

    async def get_by_client_id(self, client_order_id: str) -> RoutedOrder | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM routed_orders WHERE client_order_id = $1", client_order_id
        )
        return _from_row(row) if row else None

    async def decisions(self, order_id: str) -> list[dict[str, Any]]:
        raw = await self._pool.fetchval("SELECT decisions::text FROM routed_orders WHERE order_id = $1", order_id)
        return json.loads(raw) if raw else []
