"""Checking the audit chain: recompute every hash, and hold the chain to its anchors.

:func:`verify` finds a record that was edited (its hash no longer matches), deleted (a gap in ``seq``),
reordered (a row's ``seq`` differs from the one it was hashed with), or edited and re-hashed (the next
record's ``prev_hash`` no longer matches). Given the audit key it also checks the anchors
(:mod:`governance.anchors`): each anchor's MAC, and that the chain still holds the anchored
``(seq, hash)``; that catches a whole tail rewritten and re-hashed, and records cut off past an anchor.
It reads in pages of short transactions, so verifying never holds the writers up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, RowMapping, select

from governance import anchors as _anchors
from governance.anchors import Anchor
from governance.catalog import migrate
from governance.catalog_schema import audit_log
from governance.errors import AuditError
from governance.store import reading

GENESIS = "0" * 64
_PAGE = 1000


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    ``records`` is how many records were checked and found intact (up to the last intact anchor when an
    anchor fails), ``first_bad_seq`` the first record that can no longer be trusted, ``anchors`` how many
    anchors were checked and held.
    """

    ok: bool
    records: int
    first_bad_seq: int | None
    message: str
    anchors: int = 0


def canonical_json(record: Mapping[str, Any]) -> str:
    """The one byte-exact text a record is hashed as."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256((prev_hash + record_json).encode("utf-8")).hexdigest()


def rows(engine: Engine, since_seq: int) -> Iterator[RowMapping]:
    """Rows with ``seq > since_seq`` in ``seq`` order, each page read in its own short transaction."""
    after = since_seq
    while True:
        query = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(_PAGE)
        with reading(engine) as conn:
            page = conn.execute(query).mappings().all()
        yield from page
        if len(page) < _PAGE:
            return
        after = int(page[-1]["seq"])


def verify(engine: Engine, key: bytes | None = None, *, anchors: Iterable[Anchor] = ()) -> VerifyResult:
    """Recompute the whole chain, oldest first, and report the first record that breaks it.

    With ``key`` (the audit key) every anchor in the catalog, and any ``anchors`` kept elsewhere, must
    carry a valid MAC and match the chain: the anchored ``seq`` must still be there with the anchored hash.
    """
    migrate(engine)
    outside = list(anchors)
    if key is None and outside:
        raise AuditError("audit: anchors can only be checked with the audit key. Fix: pass the key.")
    pending: list[Anchor] = []
    if key is not None:
        _anchors.check_key(key)
        with reading(engine) as conn:
            pending = sorted([*_anchors.stored(conn), *outside], key=lambda a: a.seq)
    check = _AnchorCheck(pending, key or b"")
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    problem = check.at(0, GENESIS)
    if problem is not None:
        return VerifyResult(False, 0, problem[1], problem[0])
    for row in rows(engine, 0):
        seq = int(row["seq"])
        message, bad_seq = _check_row(row, seq, expected_seq, prev_hash)
        if message is not None:
            return VerifyResult(False, checked, bad_seq, message, check.held)
        prev_hash, expected_seq, checked = row["hash"], seq + 1, checked + 1
        problem = check.at(seq, row["hash"])
        if problem is not None:
            return VerifyResult(False, check.vouched, problem[1], problem[0], check.held)
    problem = check.beyond(expected_seq - 1)
    if problem is not None:
        return VerifyResult(False, checked, problem[1], problem[0], check.held)
    anchored = f", {check.held} anchor(s) hold" if key is not None else " (anchors not checked: no key)"
    return VerifyResult(
        True, checked, None, f"audit_log: {checked} records, chain intact{anchored}", check.held
    )


class _AnchorCheck:
    """Walks the anchors alongside the chain; ``vouched`` is the seq of the newest anchor that held."""

    def __init__(self, pending: list[Anchor], key: bytes) -> None:
        self.pending = pending
        self.key = key
        self.vouched = 0
        self.held = 0

    def at(self, seq: int, digest: str) -> tuple[str, int] | None:
        """Check the anchors of records up to ``seq`` against record ``seq``'s hash."""
        while self.pending and self.pending[0].seq <= seq:
            a = self.pending.pop(0)
            if not _anchors.authentic(a, self.key):
                return self._forged(a)
            if a.seq != seq or a.head_hash != digest:
                return (
                    f"audit_log: seq {a.seq}'s hash differs from the anchor made at {a.ts}: records "
                    f"{self.vouched + 1}..{a.seq} were rewritten after it (a record in that range was "
                    "edited, replaced or removed, and the chain re-hashed)",
                    self.vouched + 1,
                )
            self.vouched, self.held = seq, self.held + 1
        return None

    def beyond(self, last_seq: int) -> tuple[str, int] | None:
        """Anchors past the chain's end: records were cut off (or the anchor is forged)."""
        if not self.pending:
            return None
        a = self.pending[0]
        if not _anchors.authentic(a, self.key):
            return self._forged(a)
        return (
            f"audit_log: the chain ends at seq {last_seq}, but the anchor made at {a.ts} vouches for records "
            f"up to seq {a.seq}: records {last_seq + 1}..{a.seq} were cut off",
            last_seq + 1,
        )

    def _forged(self, a: Anchor) -> tuple[str, int]:
        return (
            f"audit_anchors: the anchor of seq {a.seq} made at {a.ts} has no valid MAC under this key: it was "
            f"forged or altered (or this is not the key it was made with), so records from seq "
            f"{self.vouched + 1} on are unproven",
            self.vouched + 1,
        )


def _check_row(row: Mapping[Any, Any], seq: int, expected_seq: int, prev_hash: str) -> tuple[str | None, int]:
    """What is wrong with one row given the chain so far, and which seq to blame; ``(None, 0)`` if nothing."""
    if seq != expected_seq:
        return (
            f"audit_log: seq {expected_seq} is missing (found seq {seq} next): a record was deleted",
            expected_seq,
        )
    if row["hash"] != chain_hash(row["prev_hash"], row["record"]):
        return f"audit_log: seq {seq}'s hash does not match its content: the record was edited", seq
    try:
        hashed = json.loads(row["record"])
    except ValueError:
        return f"audit_log: seq {seq}'s record is not JSON: the record was edited", seq
    if not isinstance(hashed, dict):
        return f"audit_log: seq {seq}'s record is not a JSON object: the record was edited", seq
    if hashed.get("seq") != seq:
        return (
            f"audit_log: the row at seq {seq} was hashed as seq {hashed.get('seq')}: records were reordered",
            seq,
        )
    for column in ("ts", "actor", "action", "dataset", "decision"):
        if hashed.get(column) != row[column]:
            return (
                f"audit_log: seq {seq}'s {column} column differs from its hashed record: the row was edited",
                seq,
            )
    if row["prev_hash"] != prev_hash:
        if seq == 1:
            return "audit_log: seq 1 does not start from the genesis hash: the record was replaced", seq
        # This row is consistent on its own, so its predecessor changed after this row was chained to it.
        return (
            f"audit_log: seq {seq}'s prev_hash does not match seq {seq - 1}: "
            f"seq {seq - 1} was edited and re-hashed",
            seq - 1,
        )
    return None, 0
