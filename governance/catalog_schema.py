"""The catalog's tables. Alembic migrations under ``governance/migrations`` create and evolve them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("contract_version", String(50), nullable=False),
    Column("contract_checksum", String(64), nullable=False),
    Column("business_owner", String(200), nullable=False),
    Column("operations_owner", String(200), nullable=False),
    # The single source of truth for what agents may read: the certified Delta version.
    Column("certified_version", Integer, nullable=True),
    Column("certified_at", DateTime(timezone=True), nullable=True),
    Column("certified_batch", String(200), nullable=True),
    Column("latest_business_date", Date, nullable=True),
    Column("status", String(20), nullable=False, server_default="uncertified"),
    Column("status_reason", Text, nullable=True),
    Column("rows", BigInteger, nullable=False, server_default="0"),
    Column("quarantined", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dataset_id", String(200), nullable=False, index=True),
    Column("batch_id", String(200), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("source_file", Text, nullable=True),
    Column("business_date", Date, nullable=True),
    Column("rows_read", BigInteger, nullable=True),
    Column("rows_published", BigInteger, nullable=True),
    Column("rows_quarantined", BigInteger, nullable=True),
    # running -> staged -> certified | rejected; replaced when a re-sent batch supersedes it
    Column("outcome", String(20), nullable=False),
    Column("reasons", Text, nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("delta_version", Integer, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("dataset_id", "checksum", name="uq_batches_dataset_checksum"),
)

versions = Table(
    "versions",
    metadata,
    Column("dataset_id", String(200), primary_key=True),
    Column("delta_version", Integer, primary_key=True),
    Column("batch_id", String(200), nullable=False),
    Column("certified_at", DateTime(timezone=True), nullable=False),
    Column("rows", BigInteger, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("level", String(20), nullable=False),
    Column("token_id", String(32), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(50), nullable=False),
    Column("dataset", String(200), nullable=True),
    Column("decision", String(20), nullable=False),
    Column("record", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Finds the newest policy record without scanning the log (migration 0003).
Index("ix_audit_log_action_seq", audit_log.c.action, audit_log.c.seq)

# Calls and rows each agent used per UTC day, for its quota. Written only in the transaction that appends
# the call's audit record, under the audit log's write lock (governance.quota), so usage and audit agree.
agent_usage = Table(
    "agent_usage",
    metadata,
    Column("agent", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("calls", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("denied", BigInteger, nullable=False),  # calls refused by the quota itself (not counted in calls)
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Tokens an agent no longer holds (rotated away, or revoked and then reissued), kept so that a later use
# of one is recognised and audited under its agent's name: a retired token in use is a leaked token.
retired_tokens = Table(
    "retired_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("agent", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=False),
    Column("how", String(20), nullable=False),  # rotated | reissued
)
