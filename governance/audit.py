"""The append-only, hash-chained audit log of every decision, and the anchors that keep it honest.

Each record is the canonical JSON (sorted keys, no spaces, UTF-8) of
``{seq, ts, actor, action, dataset, decision, detail}`` and is chained to its predecessor:
``hash = sha256(prev_hash + record)``, the first ``prev_hash`` being 64 zeros. Appends are serialised
across threads and processes: SQLite's ``BEGIN IMMEDIATE`` (see :mod:`governance.store`) and, on
PostgreSQL, ``LOCK TABLE audit_log IN EXCLUSIVE MODE`` inside the appending transaction; so ``seq`` has
no gaps and the chain no forks.

Record types (``action``): ``connect``, ``datasets``, ``describe``, ``read`` (allow or deny, with the
rule; a ``quota`` deny carries which quota, its limit and today's use), ``agent.add``, ``agent.promote``,
``agent.demote``, ``agent.rotate``, ``agent.revoke``, ``batch.certify`` (allow) and ``batch.reject``
(deny) via :func:`record_batch_outcome`, ``policy_change`` (allow) and ``policy_invalid`` (deny) via
:mod:`governance.policy_log`.

Work that must commit with its record and be decided under the same lock (a quota check-and-increment,
"has this policy been recorded yet") runs through :func:`locked`, which takes the write lock first.

The chain head is anchored (:mod:`governance.anchors`) by :func:`anchor`, and by every keyed append
that lands ``anchor_every`` records past the newest anchor; :func:`verify`
(:mod:`governance.audit_chain`) checks chain and anchors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from governance import anchors as _anchors
from governance.anchors import Anchor
from governance.audit_chain import GENESIS, VerifyResult, canonical_json, chain_hash, rows, verify
from governance.audit_group import defer, flush, group_for, memo
from governance.catalog import migrate
from governance.catalog_schema import audit_log
from governance.errors import AuditError
from governance.redaction import literal_hash, redact_sql
from governance.store import reading

__all__ = [
    "ANCHOR_EVERY",
    "GENESIS",
    "Anchor",
    "AuditRecord",
    "VerifyResult",
    "anchor",
    "append",
    "append_in",
    "canonical_json",
    "chain_hash",
    "export_lines",
    "head",
    "last_of",
    "lock_in",
    "locked",
    "literal_hash",
    "record_batch_outcome",
    "records",
    "redact_sql",
    "verify",
]

ANCHOR_EVERY = 100
LOCK_TIMEOUT_S = 10
BATCH_OUTCOMES = {"certified": ("batch.certify", "allow"), "rejected": ("batch.reject", "deny")}
_ATTEMPTS = 8
T = TypeVar("T")


@dataclass(frozen=True)
class AuditRecord:
    """One decision as stored: the hashed record plus its place in the chain."""

    seq: int
    ts: str
    actor: str
    action: str
    dataset: str | None
    decision: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


# -- writing ---------------------------------------------------------------------------------------
def append(
    engine: Engine,
    *,
    actor: str,
    action: str,
    dataset: str | None,
    decision: str,
    detail: Mapping[str, Any],
    anchor_key: bytes | None = None,
    anchor_every: int = ANCHOR_EVERY,
) -> AuditRecord:
    """Append one record under the audit write lock (:func:`locked`); raise :class:`AuditError` if it
    cannot be written.

    Concurrent appenders (threads or processes) are serialised by the database; a lost race on
    ``seq`` or a lock wait that timed out is retried a few times before giving up. With ``anchor_key``
    the chain head is anchored when it is ``anchor_every`` records past the newest anchor.
    """
    return locked(
        engine,
        f"{action} record",
        lambda conn: append_in(
            conn,
            actor=actor,
            action=action,
            dataset=dataset,
            decision=decision,
            detail=detail,
            anchor_key=anchor_key,
            anchor_every=anchor_every,
        ),
    )


def append_in(
    conn: Connection,
    *,
    actor: str,
    action: str,
    dataset: str | None,
    decision: str,
    detail: Mapping[str, Any],
    anchor_key: bytes | None = None,
    anchor_every: int = ANCHOR_EVERY,
) -> AuditRecord:
    """Append one record inside the caller's transaction (so an act and its record commit together)."""
    _lock(conn)
    seq, prev_hash = _head_in(conn)
    seq += 1
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    record: dict[str, Any] = {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "action": action,
        "dataset": dataset,
        "decision": decision,
    }
    record_json = canonical_json({**record, "detail": dict(detail)})
    digest = chain_hash(prev_hash, record_json)
    row = {**record, "record": record_json, "prev_hash": prev_hash, "hash": digest}
    held = memo(conn)
    if held is None:
        conn.execute(_INSERT, row)
    else:  # in a group transaction: one insert of every record of the group, before it commits
        held["head"] = (seq, digest)
        held.setdefault(_ROWS, []).append(row)
        defer(conn, _ROWS, _insert_rows)
    if anchor_key is not None and _anchors.due(conn, seq, anchor_every):
        _anchors.insert_in(conn, anchor_key, seq, digest)
    return AuditRecord(
        seq=seq,
        ts=ts,
        actor=actor,
        action=action,
        dataset=dataset,
        decision=decision,
        detail=_detail(record_json),
        prev_hash=prev_hash,
        hash=digest,
    )


def record_batch_outcome(
    target: Engine | Connection,
    dataset: str,
    batch_id: str,
    outcome: str,
    reasons: Sequence[Mapping[str, Any]] | None = None,
    *,
    actor: str = "pipeline",
    detail: Mapping[str, Any] | None = None,
    anchor_key: bytes | None = None,
) -> AuditRecord:
    """Record that a batch was certified (``batch.certify``, allow) or rejected (``batch.reject``, deny).

    Pass the catalog transaction's ``Connection`` to commit the record with the certification itself.
    ``reasons`` are the check results that decided (``{"check", "column", "message", ...}``); like the
    catalog's batch reasons they must name columns and rules, never values. ``detail`` adds facts such as
    ``delta_version`` or row counts.
    """
    if outcome not in BATCH_OUTCOMES:
        raise AuditError(
            f"audit_log: batch outcome {outcome!r} is not known. Fix: use one of {', '.join(BATCH_OUTCOMES)}."
        )
    action, decision = BATCH_OUTCOMES[outcome]
    body = {**dict(detail or {}), "batch_id": batch_id, "outcome": outcome, "reasons": list(reasons or [])}
    kwargs: dict[str, Any] = dict(
        actor=actor, action=action, dataset=dataset, decision=decision, detail=body, anchor_key=anchor_key
    )
    if isinstance(target, Connection):
        return append_in(target, **kwargs)
    return append(target, **kwargs)


def anchor(engine: Engine, key: bytes) -> Anchor:
    """Anchor the chain head now, under the audit log's write lock; see :mod:`governance.anchors`."""
    _anchors.check_key(key)
    migrate(engine)
    try:
        with engine.begin() as conn:
            _lock(conn)
            seq, digest = _head_in(conn)
            return _anchors.insert_in(conn, key, seq, digest)
    except SQLAlchemyError as exc:
        raise AuditError(f"audit_anchors: could not store the anchor ({type(exc).__name__}).") from exc


def locked(engine: Engine, what: str, work: Callable[[Connection], T]) -> T:
    """Run ``work(conn)`` in a transaction that holds the audit log's write lock from its first statement.

    For decisions that must be made and recorded atomically with respect to every other appender: read
    state, decide, write it and :func:`append_in` the record, all in ``work``. Concurrent callers in one
    process share transactions (:mod:`governance.audit_group`), each work still seeing the state the
    one before it left. A lost race or lock wait is retried (``work`` then runs again on fresh state), so
    it must have no effects outside the transaction. Database failures raise :class:`AuditError`.
    """
    migrate(engine)
    result: T = group_for(engine, _lock, _ATTEMPTS).run(what, work)
    return result


def lock_in(conn: Connection) -> None:
    """Take the audit log's write lock in the caller's transaction (see :func:`_lock`)."""
    _lock(conn)


def last_of(conn: Connection, actions: Sequence[str]) -> AuditRecord | None:
    """The newest record whose action is one of ``actions`` (indexed on ``(action, seq)``), or None."""
    flush(conn)  # records appended earlier in this group transaction count too
    newest: Any = None
    for action in actions:
        row = (
            conn.execute(
                select(audit_log)
                .where(audit_log.c.action == action)
                .order_by(audit_log.c.seq.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        if row is not None and (newest is None or row["seq"] > newest["seq"]):
            newest = row
    return _stored(newest) if newest is not None else None


def _lock(conn: Connection) -> None:
    """Take the audit log's write lock for the rest of the transaction.

    SQLite: the catalog engine already opened the transaction with ``BEGIN IMMEDIATE``. PostgreSQL:
    an EXCLUSIVE table lock (readers still read). Others (MariaDB): the primary key on ``seq`` turns a
    lost race into an IntegrityError that :func:`append` retries.
    """
    if conn.dialect.name == "postgresql":
        # Bounded: behind a stuck transaction the wait ends as an error (retried, then AuditError), so
        # callers get an answer instead of hanging (SQLite's busy_timeout does the same).
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'"))
        conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))


_HEAD = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
_INSERT = insert(audit_log)
_ROWS = "audit_log rows"


def _insert_rows(conn: Connection) -> None:
    held = memo(conn)
    rows = held.pop(_ROWS, []) if held is not None else []
    if rows:
        conn.execute(_INSERT, rows)


def _head_in(conn: Connection) -> tuple[int, str]:
    """The newest ``(seq, hash)``; inside a group transaction, once (:func:`governance.audit_group.memo`)."""
    held = memo(conn)
    if held is not None and "head" in held:
        found: tuple[int, str] = held["head"]
        return found
    row = conn.execute(_HEAD).first()
    head = (int(row.seq), row.hash) if row is not None else (0, GENESIS)
    if held is not None:
        held["head"] = head
    return head


# -- reading ---------------------------------------------------------------------------------------
def records(engine: Engine, *, since_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
    """Stored records with ``seq > since_seq``, oldest first (for ``assay audit`` and tests)."""
    migrate(engine)
    query = select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
    if limit is not None:
        query = query.limit(limit)
    with reading(engine) as conn:
        rows = conn.execute(query).mappings().all()
    return [_stored(r) for r in rows]


def head(engine: Engine) -> tuple[int, str]:
    """The newest ``(seq, hash)``, ``(0, GENESIS)`` for an empty log."""
    migrate(engine)
    with reading(engine) as conn:
        return _head_in(conn)


def export_lines(engine: Engine, *, since_seq: int = 0) -> Iterator[str]:
    """One JSON line per record with ``seq > since_seq``, oldest first, for a SIEM.

    Each line is the hashed record plus ``prev_hash`` and ``hash``, so a consumer can recompute
    ``hash = sha256(prev_hash + canonical JSON of the line without prev_hash and hash)`` itself.
    Read in pages of short transactions, so an export never holds the writers up.
    """
    migrate(engine)
    for row in rows(engine, since_seq):
        line = json.loads(row["record"])
        line.update(prev_hash=row["prev_hash"], hash=row["hash"])
        yield canonical_json(line)


def _stored(row: Any) -> AuditRecord:
    """An ``audit_log`` row as an :class:`AuditRecord`."""
    return AuditRecord(
        seq=int(row["seq"]),
        ts=row["ts"],
        actor=row["actor"],
        action=row["action"],
        dataset=row["dataset"],
        decision=row["decision"],
        detail=_detail(row["record"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _detail(record_json: str) -> dict[str, Any]:
    try:
        detail = json.loads(record_json).get("detail")
    except (ValueError, AttributeError):
        return {}
    return detail if isinstance(detail, dict) else {}
