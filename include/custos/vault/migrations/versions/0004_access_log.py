"""access log: Merkle-tree entries and signed checkpoints (custos.access.log_models)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Same type as custos.access.log_models.LogIndex: SQLite's rowid alias, 64 bits elsewhere.
LOG_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("idx", LOG_INDEX, autoincrement=False, nullable=False),
        sa.Column("logged_at", sa.DateTime(), nullable=False),
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("department_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("categories", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=True),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_index("ix_access_log_logged_at", "access_log", ["logged_at"], unique=False)
    op.create_index(
        "ix_access_log_staff_logged_at", "access_log", ["staff_id", "logged_at"], unique=False
    )
    op.create_table(
        "access_checkpoints",
        sa.Column("size", LOG_INDEX, autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signed_note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("anchored_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("size"),
    )


def downgrade() -> None:
    op.drop_table("access_checkpoints")
    op.drop_index("ix_access_log_staff_logged_at", table_name="access_log")
    op.drop_index("ix_access_log_logged_at", table_name="access_log")
    op.drop_table("access_log")
