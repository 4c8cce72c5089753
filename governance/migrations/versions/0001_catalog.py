"""The first catalog: datasets, batches, certified versions, agents and the audit log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("contract_version", sa.String(50), nullable=False),
        sa.Column("contract_checksum", sa.String(64), nullable=False),
        sa.Column("business_owner", sa.String(200), nullable=False),
        sa.Column("operations_owner", sa.String(200), nullable=False),
        sa.Column("certified_version", sa.Integer, nullable=True),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("certified_batch", sa.String(200), nullable=True),
        sa.Column("latest_business_date", sa.Date, nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="uncertified"),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("quarantined", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.String(200), nullable=False, index=True),
        sa.Column("batch_id", sa.String(200), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("source_file", sa.Text, nullable=True),
        sa.Column("business_date", sa.Date, nullable=True),
        sa.Column("rows_read", sa.BigInteger, nullable=True),
        sa.Column("rows_published", sa.BigInteger, nullable=True),
        sa.Column("rows_quarantined", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reasons", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("delta_version", sa.Integer, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("dataset_id", "checksum", name="uq_batches_dataset_checksum"),
    )
    op.create_table(
        "versions",
        sa.Column("dataset_id", sa.String(200), primary_key=True),
        sa.Column("delta_version", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.String(200), nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=True),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_log", "agents", "versions", "batches", "datasets"):
        op.drop_table(table)
