"""A tamper-evident audit trail: each row stores sha256(previous row's hash + this entry).

Editing a row breaks its own hash, deleting or reordering rows breaks the link or the seq count, but
deleting the newest rows leaves a shorter chain that is still consistent. The caller therefore keeps the
head (seq, hash) separately, in a one-row table updated with each append, and passes it as
``expected_head``. Someone who can rewrite the whole table and the head can forge a consistent chain;
copying the head somewhere they cannot write (logs shipped off the host, a backup) closes that gap.

Seq counts from 1; the first entry's prev_hash is GENESIS, so the head of an empty chain is (0, GENESIS).
The serialization below is part of the stored data: changing it or the fields changes every hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    peer: str
    outcome: str
    detail: str

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("AuditEntry.at must be timezone-aware; a naive time would hash differently per host")


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    rows_checked: int
    problem: str = ""
    seq: int | None = None  # the seq the first problem was found at


def canonical(entry: AuditEntry) -> str:
    """Stable JSON: sorted keys, no spaces, the time in UTC with microseconds (what PostgreSQL keeps)."""
    fields = asdict(entry) | {"at": entry.at.astimezone(UTC).isoformat(timespec="microseconds")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256((prev_hash + canonical(entry)).encode()).hexdigest()


def verify_chain(
    rows: Iterable[tuple[AuditEntry, str, str]], expected_head: tuple[int, str] | None = None
) -> ChainReport:
    """Check rows of (entry, prev_hash, hash) given in seq order, stopping at the first problem.

    Rows are streamed, so a long trail need not fit in memory. ``rows_checked`` counts rows read,
    including the one the problem was found at.
    """
    last_seq, last_hash = 0, GENESIS
    checked = 0
    for entry, prev_hash, stored_hash in rows:
        checked += 1
        if entry_hash(prev_hash, entry) != stored_hash:
            return _problem(checked, entry.seq, f"row {entry.seq} was edited: its hash does not match its content")
        if entry.seq <= last_seq:
            return _problem(checked, entry.seq, f"row {entry.seq} is out of order: it comes after row {last_seq}")
        if entry.seq != last_seq + 1:
            missing = _span(last_seq + 1, entry.seq - 1)
            return _problem(
                checked, entry.seq, f"{missing} missing before row {entry.seq}: deleted, or the rows are out of order"
            )
        if prev_hash != last_hash:
            return _problem(
                checked,
                entry.seq,
                f"row {entry.seq} does not link to row {last_seq}: a row was deleted, replaced or reordered",
            )
        last_seq, last_hash = entry.seq, stored_hash
    if expected_head is not None:
        head_seq, head_hash = expected_head
        if last_seq < head_seq:
            return _problem(
                checked,
                last_seq + 1,
                f"the chain ends at row {last_seq} but the stored head is row {head_seq}: "
                f"{_span(last_seq + 1, head_seq)} deleted from the end",
            )
        if last_seq > head_seq:
            return _problem(
                checked,
                head_seq + 1,
                f"rows after the stored head (row {head_seq}) exist up to row {last_seq}: "
                "appended without updating the head",
            )
        if last_hash != head_hash:
            return _problem(
                checked, last_seq, f"row {last_seq} does not match the stored head hash: the chain was rewritten"
            )
    return ChainReport(ok=True, rows_checked=checked)


def _problem(checked: int, seq: int, sentence: str) -> ChainReport:
    return ChainReport(ok=False, rows_checked=checked, problem=sentence, seq=seq)


def _span(first: int, last: int) -> str:
    return f"row {first} is" if first == last else f"rows {first}..{last} are"
