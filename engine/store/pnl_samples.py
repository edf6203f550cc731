"""The sampled PnL of each account, read back as the curve of a set of accounts (migration 0009)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from engine.portfolio import AccountBook, PnlPoint

MAX_POINTS = 20_000
"""A day of samples every 2 s; about 1.2 MB as a PnlHistory message."""


class PnlSampleStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, at: datetime, books: Sequence[AccountBook]) -> None:
        await self._pool.executemany(
            "INSERT INTO pnl_samples (sampled_at, account_id, realised, unrealised) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            [(at, b.account, b.realised_pnl, b.unrealised_pnl) for b in books],
        )

    async def curve(self, accounts: Sequence[str], since: datetime) -> list[PnlPoint]:
        """One point per sampling instant since `since`, oldest first, summed over `accounts`; at most the newest
        MAX_POINTS, so a reply stays well under the API's message limit however often samples are taken."""
        rows = await self._pool.fetch(
            "SELECT sampled_at, sum(realised) AS realised, sum(unrealised) AS unrealised FROM pnl_samples"
            " WHERE account_id = ANY($1) AND sampled_at >= $2 GROUP BY sampled_at ORDER BY sampled_at DESC LIMIT $3",
            list(accounts),
            since,
            MAX_POINTS,
        )
        return [PnlPoint(r["sampled_at"], r["realised"], r["unrealised"]) for r in reversed(rows)]

    async def prune(self, before: datetime) -> int:
        status = await self._pool.execute("DELETE FROM pnl_samples WHERE sampled_at < $1", before)
        return int(status.split()[-1])
