"""The audit trail in PostgreSQL: appended as a hash chain by one writer, read back and verified.

Appends are group-committed: callers queue their entries and one task writes whatever is queued in a
single transaction, so the chain stays a chain under concurrency and a burst costs one round trip.
While the database is unreachable the entries are held in order (bounded) and written when it is back.
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
from engine.store.database import database_unreachable

log = logging.getLogger(__name__)
_COLUMNS = "seq, at, actor, action, target, peer, outcome, detail, prev_hash, hash"
_VERIFY_BATCH = 5000
_HELD_LIMIT = 10_000
"""Entries held while the database is unreachable; every RPC is refused then, so the rate limits bound the
inflow, and this bounds the memory."""
_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class AuditRecord:
    entry: AuditEntry
    hash: str


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        row["seq"], row["at"], row["actor"], row["action"], row["target"], row["peer"], row["outcome"], row["detail"]
    )


_Pending = tuple[AuditEntry, asyncio.Future[None]]


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queued: list[_Pending] = []
        self._held: list[_Pending] = []  # entries the database was unreachable for, oldest first
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="audit-writer")

    async def stop(self) -> None:
        """Write everything queued so far (held entries get one last try), then stop; later appends fail at once."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        self._wake.set()
        await writer

    async def append(
        self, at: datetime, actor: str, action: str, target: str, peer: str, outcome: str, detail: str
    ) -> None:
        """Durably append one entry: returns once it is committed, or, while the database is unreachable, once it
        is held to be written when the database is back (raises only if it could be neither)."""
        if self._writer is None:
            raise RuntimeError("the audit log is stopped")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((AuditEntry(0, at, actor, action, target, peer, outcome, detail), done))
        self._wake.set()
        await done

    async def _write_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # with entries held, try them again every _RETRY_SECONDS
                async with asyncio.timeout(_RETRY_SECONDS if self._held else None):
                    await self._wake.wait()
            self._wake.clear()
            stopping = self._writer is None
            held = len(self._held)
            batch, self._held, self._queued = [*self._held, *self._queued], [], []
            if batch:
                await self._write_batch(batch)
            if self._held and not held:
                log.warning("audit log: the database is unreachable; holding entries until it is back")
            elif held and not self._held:
                log.warning("audit log: the database is back; wrote the %d entries held meanwhile", held)
            if stopping:
                if self._held:
                    log.critical(
                        "audit log stopped with %d entries unwritten: the database is unreachable", len(self._held)
                    )
                return

    async def _write_batch(self, batch: list[_Pending]) -> None:
        """One transaction for the batch; if it fails, each entry alone, so one bad entry costs only itself.
        While the database is unreachable, the batch is held for the next try instead."""
        try:
            await self._commit(batch)
        except Exception as exc:
            if database_unreachable(exc):
                self._hold(batch, exc)
            elif len(batch) > 1:
                for pending in batch:
                    await self._write_batch([pending])
            else:
                log.critical("audit append failed: %s", exc)
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)

    def _hold(self, batch: list[_Pending], exc: Exception) -> None:
        """Keep the batch, up to the limit, and let its callers go on; an entry beyond the limit fails its caller,
        which logs it: memory stays bounded however long the outage."""
        room = max(0, _HELD_LIMIT - len(self._held))
        self._held.extend(batch[:room])
        for n, (_, done) in enumerate(batch):
            if not done.done():
                if n < room:
                    done.set_result(None)
                else:
                    done.set_exception(exc)

    async def _commit(self, batch: list[_Pending]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            head = await conn.fetchrow("SELECT seq, hash FROM audit_head FOR UPDATE")
            if head is None:
                raise RuntimeError("the audit_head row is missing: the trail cannot be extended")
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
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def tail(self, limit: int) -> list[AuditRecord]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1", limit)
        return [AuditRecord(_entry(r), r["hash"]) for r in reversed(rows)]

    async def verify(self) -> ChainReport:
        """Check every row against its hash and link, and the last against the stored head."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchrow("SELECT seq, hash FROM audit_head")
            rows = [r async for r in self._rows(conn)]
        if head is None:
            return ChainReport(ok=False, rows_checked=0, problem="the audit_head row is missing: it was deleted")
        return verify_chain(rows, expected_head=(head["seq"], head["hash"]))

    @staticmethod
    async def _rows(conn: asyncpg.Connection) -> AsyncIterator[tuple[AuditEntry, str, str]]:
        async for row in conn.cursor(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq", prefetch=_VERIFY_BATCH):
            yield _entry(row), row["prev_hash"], row["hash"]
