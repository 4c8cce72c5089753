"""Anchors: the audit chain's head at a point in time, MAC'd under a key the database never holds.

An anchor is ``{seq, head_hash, ts, mac}`` with ``mac = HMAC-SHA256(k, "seq|head_hash|ts")``, where ``k`` is
derived from the audit key (``k = HMAC-SHA256(audit_key, "assay-anchor")``, so an anchor's MAC can never
coincide with a keyed hash of a ``where`` literal made under the same audit key).

Someone who can write to the catalog but does not hold the key can edit a record and re-hash the rest of
the chain, or cut the newest records off, and the chain is consistent on its own again; but no anchor
made before the change vouches for the result: :func:`governance.audit.verify` finds the anchored
``(seq, hash)`` changed or gone. Anchors are written under the audit log's write lock, by
:func:`governance.audit.anchor` on demand and automatically every ``N`` records.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Integer, String, Table, func, insert, select

from governance.audit_group import memo
from governance.catalog_schema import metadata
from governance.errors import AuditError

MIN_KEY_BYTES = 16

# Created by migration 0002.
audit_anchors = Table(
    "audit_anchors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, index=True),
    Column("head_hash", String(64), nullable=False),
    Column("ts", String(40), nullable=False),
    Column("mac", String(64), nullable=False),
)


@dataclass(frozen=True)
class Anchor:
    """The chain head ``(seq, head_hash)`` at ``ts``, vouched for by ``mac``."""

    seq: int
    head_hash: str
    ts: str
    mac: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anchor:
        """An anchor kept outside the catalog (e.g. a line of ``assay audit anchor --json``)."""
        try:
            seq, head_hash, ts, mac = data["seq"], data["head_hash"], data["ts"], data["mac"]
        except (KeyError, TypeError):
            raise ValueError("an anchor needs seq, head_hash, ts and mac") from None
        if not isinstance(seq, int) or not all(isinstance(v, str) for v in (head_hash, ts, mac)):
            raise ValueError("an anchor's seq is a number and head_hash, ts, mac are strings")
        return cls(seq=seq, head_hash=head_hash, ts=ts, mac=mac)


def check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise AuditError(
            f"the audit key must be at least {MIN_KEY_BYTES} bytes. "
            "Fix: set ASSAY_AUDIT_KEY to 32 random bytes in hex."
        )


def mac(key: bytes, seq: int, head_hash: str, ts: str) -> str:
    """The MAC an anchor of ``(seq, head_hash)`` made at ``ts`` carries under ``key``."""
    anchor_key = hmac.new(key, b"assay-anchor", hashlib.sha256).digest()
    return hmac.new(anchor_key, f"{seq}|{head_hash}|{ts}".encode(), hashlib.sha256).hexdigest()


def authentic(anchor: Anchor, key: bytes) -> bool:
    return hmac.compare_digest(anchor.mac, mac(key, anchor.seq, anchor.head_hash, anchor.ts))


def insert_in(conn: Connection, key: bytes, seq: int, head_hash: str) -> Anchor:
    """Store an anchor of ``(seq, head_hash)``; the caller holds the audit log's write lock."""
    check_key(key)
    ts = datetime.now(UTC).isoformat(timespec="microseconds")
    anchor = Anchor(seq=seq, head_hash=head_hash, ts=ts, mac=mac(key, seq, head_hash, ts))
    conn.execute(insert(audit_anchors).values(**anchor.to_dict()))
    held = memo(conn)
    if held is not None:
        held["anchor_seq"] = max(seq, held.get("anchor_seq", 0))
    return anchor


_NEWEST = select(func.max(audit_anchors.c.seq))


def due(conn: Connection, seq: int, every: int) -> bool:
    """Whether ``seq`` is ``every`` or more records past the newest anchor (so no keyless gap is skipped)."""
    held = memo(conn)
    if held is not None and "anchor_seq" in held:
        last = held["anchor_seq"]
    else:
        last = int(conn.execute(_NEWEST).scalar() or 0)
        if held is not None:
            held["anchor_seq"] = last
    return seq - last >= every


def stored(conn: Connection) -> list[Anchor]:
    """Every anchor in the catalog, oldest seq first."""
    rows = conn.execute(
        select(
            audit_anchors.c.seq, audit_anchors.c.head_hash, audit_anchors.c.ts, audit_anchors.c.mac
        ).order_by(audit_anchors.c.seq, audit_anchors.c.id)
    ).all()
    return [Anchor(seq=int(r.seq), head_hash=r.head_hash, ts=r.ts, mac=r.mac) for r in rows]
