"""The audit hash chain catches edited, deleted, truncated and reordered rows and names the seq."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine.security.audit_chain import GENESIS, AuditEntry, canonical, entry_hash, verify_chain

Row = tuple[AuditEntry, str, str]
T0 = datetime(2026, 11, 23, 4, 0, 0, 123456, tzinfo=UTC)


def entry(seq: int) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        at=T0 + timedelta(seconds=seq),
        actor="token:0123456789ab",
        action="SubmitOrder",
        target=f"order:{seq}",
        peer="ipv4:127.0.0.1:50000",
        outcome="OK",
        detail="BUY 1 INFY",
    )


def chain(length: int) -> list[Row]:
    rows: list[Row] = []
    prev = GENESIS
    for seq in range(1, length + 1):
        e = entry(seq)
        digest = entry_hash(prev, e)
        rows.append((e, prev, digest))
        prev = digest
    return rows


def head(rows: list[Row]) -> tuple[int, str]:
    return rows[-1][0].seq, rows[-1][2]


def test_intact_chain_verifies_with_and_without_head() -> None:
    rows = chain(5)
    assert verify_chain(rows).ok
    report = verify_chain(iter(rows), expected_head=head(rows))
    assert report.ok and report.rows_checked == 5 and report.problem == "" and report.seq is None


def test_empty_chain_has_the_genesis_head() -> None:
    assert verify_chain([], expected_head=(0, GENESIS)).ok


def test_canonical_form_is_stable_utc_with_microseconds() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    same_instant = dataclasses.replace(entry(1), at=entry(1).at.astimezone(ist))
    assert canonical(same_instant) == canonical(entry(1))
    assert '"at":"2026-11-23T04:00:01.123456+00:00"' in canonical(entry(1))
    assert entry_hash(GENESIS, same_instant) == entry_hash(GENESIS, entry(1))


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(entry(1), at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 33),
        ("at", T0 + timedelta(microseconds=1)),
        ("actor", "token:ffffffffffff"),
        ("action", "CancelOrder"),
        ("target", "order:999"),
        ("peer", "ipv4:10.0.0.9:1"),
        ("outcome", "DENIED"),
        ("detail", "BUY 100 INFY"),
    ],
)
def test_editing_any_field_is_caught(field: str, value: object) -> None:
    rows = chain(5)
    e, prev, digest = rows[2]
    rows[2] = (dataclasses.replace(e, **{field: value}), prev, digest)
    report = verify_chain(rows)
    assert not report.ok and report.rows_checked == 3 and "edited" in report.problem


def test_edit_with_recomputed_hash_breaks_the_next_link() -> None:
    rows = chain(5)
    e, prev, _ = rows[2]
    forged = dataclasses.replace(e, outcome="DENIED")
    rows[2] = (forged, prev, entry_hash(prev, forged))
    report = verify_chain(rows)
    assert not report.ok and report.seq == 4 and "does not link to row 3" in report.problem


def test_deleted_middle_row_is_caught() -> None:
    rows = chain(5)
    del rows[2]
    report = verify_chain(rows)
    assert not report.ok and report.seq == 4
    assert report.problem == "row 3 is missing before row 4: deleted, or the rows are out of order"


def test_deleted_first_row_is_caught() -> None:
    report = verify_chain(chain(3)[1:])
    assert not report.ok and report.seq == 2 and "row 1 is missing" in report.problem


def test_deleted_last_rows_need_the_stored_head() -> None:
    rows = chain(5)
    stored_head = head(rows)
    truncated = rows[:3]
    assert verify_chain(truncated).ok  # the chain alone cannot tell
    report = verify_chain(truncated, expected_head=stored_head)
    assert not report.ok and report.seq == 4
    assert report.problem == "the chain ends at row 3 but the stored head is row 5: rows 4..5 are deleted from the end"


def test_rows_beyond_the_head_or_a_different_head_hash_are_caught() -> None:
    rows = chain(5)
    beyond = verify_chain(rows, expected_head=head(rows[:4]))
    assert not beyond.ok and beyond.seq == 5 and "without updating the head" in beyond.problem
    rewritten = verify_chain(rows, expected_head=(5, "f" * 64))
    assert not rewritten.ok and rewritten.seq == 5 and "rewritten" in rewritten.problem


def test_reordered_pair_is_caught() -> None:
    rows = chain(5)
    rows[1], rows[2] = rows[2], rows[1]
    report = verify_chain(rows)
    assert not report.ok and report.seq == 3 and "out of order" in report.problem


def test_reordered_pair_with_swapped_seq_is_caught() -> None:
    rows = chain(5)
    (e2, p2, h2), (e3, p3, h3) = rows[1], rows[2]
    rows[1] = (dataclasses.replace(e3, seq=2), p3, h3)
    rows[2] = (dataclasses.replace(e2, seq=3), p2, h2)
    report = verify_chain(rows)
    assert not report.ok and report.seq == 2 and "edited" in report.problem


def test_moved_row_with_its_own_seq_breaks_the_order() -> None:
    rows = chain(5)
    rows.append(rows.pop(1))  # 1, 3, 4, 5, 2
    report = verify_chain(rows)
    assert not report.ok and report.seq == 3


def test_replaced_link_is_caught() -> None:
    rows = chain(5)
    e, _, _ = rows[3]
    rows[3] = (e, rows[1][2], entry_hash(rows[1][2], e))  # row 4 re-hashed onto row 2
    report = verify_chain(rows)
    assert not report.ok and report.seq == 4 and "does not link to row 3" in report.problem
