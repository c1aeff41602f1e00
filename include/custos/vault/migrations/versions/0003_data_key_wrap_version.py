"""data_keys.wrap_version: which bucket-key version wraps each data key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows were all wrapped under version 1 of their bucket key.
    with op.batch_alter_table("data_keys") as batch_op:
        batch_op.add_column(
            sa.Column("wrap_version", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("data_keys") as batch_op:
        batch_op.drop_column("wrap_version")
