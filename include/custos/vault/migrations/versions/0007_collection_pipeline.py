"""collection pipeline: lineage and platform-id blind indexes, batch registry, quarantine

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MIN_BYTES = 29  # 1 version byte + 12 nonce + 16 tag (as in 0006)


def _format_check(dialect: str, column: str) -> str:
    first = (
        f"get_byte({column}, 0) = 1" if dialect == "postgresql"
        else f"substr({column}, 1, 1) = X'01'"
    )
    return f"{column} IS NULL OR (length({column}) >= {MIN_BYTES} AND {first})"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("consents") as batch_op:
        batch_op.add_column(sa.Column("ref_bidx", sa.LargeBinary(length=16), nullable=True))
        batch_op.create_index("ix_consents_ref_bidx", ["ref_bidx"], unique=True)
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("ref_bidx", sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(sa.Column("source_ref", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_orders_ref_bidx", ["ref_bidx"], unique=True)
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("source_ref", sa.String(length=200), nullable=True))
    op.create_table(
        "ingest_batches",
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("committed_at", sa.DateTime(), nullable=False),
        sa.Column("landing_destroyed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("content_sha256"),
    )
    op.create_index("ix_ingest_batches_batch_id", "ingest_batches", ["batch_id"])
    op.create_table(
        "quarantine_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("bucket", sa.String(length=40), nullable=False),
        sa.Column("wrap_version", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(
            _format_check(dialect, "wrapped_key"), name="ck_quarantine_keys_wrapped_key_format"
        ),
    )
    op.create_index("ix_quarantine_keys_bucket", "quarantine_keys", ["bucket"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("batch_sha256", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=200), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=400), nullable=False),
        sa.Column("payload_format", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["quarantine_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(
            _format_check(dialect, "payload"), name="ck_quarantine_payload_format"
        ),
    )
    op.create_index("ix_quarantine_key_id", "quarantine", ["key_id"])
    op.create_index("ix_quarantine_batch_id", "quarantine", ["batch_id"])
    op.create_index("ix_quarantine_reason", "quarantine", ["reason"])
    op.create_index("ix_quarantine_expires_on", "quarantine", ["expires_on"])


def downgrade() -> None:
    op.drop_table("quarantine")
    op.drop_table("quarantine_keys")
    op.drop_table("ingest_batches")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("source_ref")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_index("ix_orders_ref_bidx")
        batch_op.drop_column("source_ref")
        batch_op.drop_column("ref_bidx")
    with op.batch_alter_table("consents") as batch_op:
        batch_op.drop_index("ix_consents_ref_bidx")
        batch_op.drop_column("ref_bidx")
