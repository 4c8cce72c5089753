"""Audit anchors: the chain head at a point in time, MAC'd under a key kept outside the database.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_anchors_seq", "audit_anchors", ["seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_anchors_seq", table_name="audit_anchors")
    op.drop_table("audit_anchors")
