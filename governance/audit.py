"""The append-only, hash-chained audit log of every agent decision.

Each record is the canonical JSON (sorted keys, no spaces, UTF-8) of
``{seq, ts, actor, action, dataset, decision, detail}`` and is chained to its predecessor:
``hash = sha256(prev_hash + record)``, the first ``prev_hash`` being 64 zeros. Appends are serialised
by the database's write lock, so ``seq`` has no gaps and the chain no forks.

:func:`verify` recomputes the chain and finds a record that was edited (its hash no longer matches),
deleted (a gap in ``seq``), reordered (a row's ``seq`` differs from the one it was hashed with), or
edited and re-hashed (the next record's ``prev_hash`` no longer matches). An attacker with write
access who rewrites the whole tail from the edit onwards, or truncates the newest records, yields a
chain that is consistent on its own: detecting that needs the head hash anchored outside the
database, which is future work.

Literals in an agent's ``where`` clause are stored as keyed hashes (:func:`literal_hash`,
:func:`redact_sql`), so the log shows what was asked without holding the values asked for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from governance.catalog import migrate
from governance.catalog_schema import audit_log
from governance.errors import AuditError

GENESIS = "0" * 64
_ATTEMPTS = 8


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


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`: ``records`` is how many records were checked and found intact."""

    ok: bool
    records: int
    first_bad_seq: int | None
    message: str


def canonical_json(record: Mapping[str, Any]) -> str:
    """The one byte-exact text a record is hashed as."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, record_json: str) -> str:
    return hashlib.sha256((prev_hash + record_json).encode("utf-8")).hexdigest()


def append(
    engine: Engine, *, actor: str, action: str, dataset: str | None, decision: str, detail: Mapping[str, Any]
) -> AuditRecord:
    """Append one record in its own transaction; raise :class:`AuditError` if it cannot be written.

    Concurrent appenders (threads or processes) are serialised by the database; a lost race on
    ``seq`` is retried a few times before giving up.
    """
    migrate(engine)
    last: Exception | None = None
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as conn:
                return append_in(
                    conn, actor=actor, action=action, dataset=dataset, decision=decision, detail=detail
                )
        except (IntegrityError, OperationalError) as exc:  # lost a race for seq, or the lock timed out
            last = exc
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
        except SQLAlchemyError as exc:
            raise AuditError(
                f"audit_log: could not append the {action} record ({type(exc).__name__})."
            ) from exc
    raise AuditError(
        f"audit_log: could not append the {action} record after {_ATTEMPTS} attempts ({type(last).__name__}). "
        "Fix: check that the catalog database is reachable and not locked by a long transaction."
    ) from last


def append_in(
    conn: Connection,
    *,
    actor: str,
    action: str,
    dataset: str | None,
    decision: str,
    detail: Mapping[str, Any],
) -> AuditRecord:
    """Append one record inside the caller's transaction (so an act and its record commit together)."""
    _lock(conn)
    head = conn.execute(
        select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (int(head.seq) + 1, head.hash) if head is not None else (1, GENESIS)
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
    conn.execute(insert(audit_log).values(**record, record=record_json, prev_hash=prev_hash, hash=digest))
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


def _lock(conn: Connection) -> None:
    """Take the audit log's write lock for the rest of the transaction.

    SQLite: the catalog engine already opened the transaction with ``BEGIN IMMEDIATE``. PostgreSQL:
    an EXCLUSIVE table lock (readers still read). Others (MariaDB): the primary key on ``seq`` turns a
    lost race into an IntegrityError that :func:`append` retries.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))


def records(engine: Engine, *, since_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
    """Stored records with ``seq > since_seq``, oldest first (for ``assay audit`` and tests)."""
    migrate(engine)
    query = select(audit_log).where(audit_log.c.seq > since_seq).order_by(audit_log.c.seq)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        AuditRecord(
            seq=int(r["seq"]),
            ts=r["ts"],
            actor=r["actor"],
            action=r["action"],
            dataset=r["dataset"],
            decision=r["decision"],
            detail=_detail(r["record"]),
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in rows
    ]


def head(engine: Engine) -> tuple[int, str]:
    """The newest ``(seq, hash)``, ``(0, GENESIS)`` for an empty log: what an external anchor would store."""
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(
            select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
    return (int(row.seq), row.hash) if row is not None else (0, GENESIS)


def verify(engine: Engine) -> VerifyResult:
    """Recompute the whole chain, oldest first, and report the first record that breaks it."""
    migrate(engine)
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    query = select(audit_log).order_by(audit_log.c.seq)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=1000).execute(query).mappings():
            seq = int(row["seq"])
            problem, bad_seq = _check_row(row, seq, expected_seq, prev_hash)
            if problem is not None:
                return VerifyResult(False, checked, bad_seq, problem)
            prev_hash, expected_seq, checked = row["hash"], seq + 1, checked + 1
    return VerifyResult(True, checked, None, f"audit_log: {checked} records, chain intact")


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


def literal_hash(key: bytes, value: object) -> str:
    """A keyed hash standing in for a literal in the log: equal literals give equal hashes under one key."""
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
    return f"<hmac:{digest}>"


_SQL_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))     # comments: hashed whole
   |(?P<string>'(?:[^']|'')*(?:'|\Z))          # 'string' (unterminated runs to the end): hashed
   |(?P<ident>"(?:[^"]|"")*(?:"|\Z))           # "quoted identifier": kept
   |(?P<word>[^\W\d]\w*)                       # keyword or identifier: kept (so col1 keeps its 1)
   |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)  # number: hashed
    """,
    re.VERBOSE | re.DOTALL,
)


def redact_sql(key: bytes, sql: str) -> str:
    """``sql`` with every string and number literal (and comment) replaced by :func:`literal_hash`.

    A string's hash is of its value (``'O''Brien'`` hashes ``O'Brien``); a number's is of its text as
    written (``42`` and ``42.0`` differ). Limits: this is a tokenizer, not a parser. It knows
    single-quoted strings, double-quoted identifiers, comments, words and numbers; keywords,
    operators and identifiers are kept in clear, so a value smuggled in as a quoted identifier would be
    kept too (such a filter is denied anyway, as the column is not in the view). Dialect extras such as
    dollar-quoted or backslash-escaped strings are not recognised; an unterminated quote hashes
    everything after it.
    """

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        token = match.group()
        if kind == "string":
            inner = token[1:-1] if len(token) > 1 and token.endswith("'") else token[1:]
            return literal_hash(key, inner.replace("''", "'"))
        if kind in ("number", "comment"):
            return literal_hash(key, token)
        return token

    return _SQL_TOKEN.sub(replace, sql)


def _detail(record_json: str) -> dict[str, Any]:
    try:
        detail = json.loads(record_json).get("detail")
    except (ValueError, AttributeError):
        return {}
    return detail if isinstance(detail, dict) else {}
