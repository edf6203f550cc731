"""The audit trail in PostgreSQL: appended as a hash chain by one writer, read back and verified.

Appends are group-committed: callers queue their entries and one task writes whatever is queued in a
single transaction, so the chain stays a chain under concurrency and a burst costs one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg

from engine.security.audit_chain import AuditEntry, ChainReport, entry_hash, verify_chain

log = logging.getLogger(__name__)
_COLUMNS = "seq, at, actor, action, target, peer, outcome, detail, prev_hash, hash"
_VERIFY_BATCH = 5000


@dataclass(frozen=True, slots=True)
class AuditRecord:
    entry: AuditEntry
    hash: str


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        row["seq"], row["at"], row["actor"], row["action"], row["target"], row["peer"], row["outcome"], row["detail"]
    )


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: asyncio.Queue[tuple[AuditEntry, asyncio.Future[int]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._writer is None:
            return
        while not self._queue.empty():
            await self._write_batch(self._take_queued())
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    async def append(
        self, at: datetime, actor: str, action: str, target: str, peer: str, outcome: str, detail: str
    ) -> int:
        """Durably append one entry; returns its seq once committed."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((AuditEntry(0, at, actor, action, target, peer, outcome, detail), done))
        return await done

    def _take_queued(self) -> list[tuple[AuditEntry, asyncio.Future[int]]]:
        batch = []
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            batch.extend(self._take_queued())
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[tuple[AuditEntry, asyncio.Future[int]]]) -> None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                head = await conn.fetchrow("SELECT seq, hash FROM audit_head FOR UPDATE")
                seq, prev = head["seq"], head["hash"]
                rows = []
                for entry, _ in batch:
                    seq += 1
                    numbered = replace(entry, seq=seq)
                    digest = entry_hash(prev, numbered)
                    rows.append((seq, numbered.at, numbered.actor, numbered.action, numbered.target,
                                 numbered.peer, numbered.outcome, numbered.detail, prev, digest))  # fmt: skip
                    prev = digest
                await conn.copy_records_to_table("audit_log", records=rows, columns=_COLUMNS.split(", "))
                await conn.execute("UPDATE audit_head SET seq = $1, hash = $2", seq, prev)
        except Exception as exc:  # every waiter hears it; the writer carries on with the next batch
            log.error("audit append of %d entries failed: %s", len(batch), exc)
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        first = seq - len(batch) + 1
        for offset, (_, done) in enumerate(batch):
            if not done.done():
                done.set_result(first + offset)

    async def tail(self, limit: int) -> list[AuditRecord]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1", limit)
        return [AuditRecord(_entry(r), r["hash"]) for r in reversed(rows)]

    async def verify(self) -> ChainReport:
        """Check every row against its hash and link, and the last against the stored head."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchrow("SELECT seq, hash FROM audit_head")
            rows = [r async for r in self._rows(conn)]
        return verify_chain(rows, expected_head=(head["seq"], head["hash"]))

    @staticmethod
    async def _rows(conn: asyncpg.Connection) -> AsyncIterator[tuple[AuditEntry, str, str]]:
        async for row in conn.cursor(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq", prefetch=_VERIFY_BATCH):
            yield _entry(row), row["prev_hash"], row["hash"]
