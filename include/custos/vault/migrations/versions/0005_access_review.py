"""access review and watch: staff country, staff grants, hourly findings, escalation flag

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=True))
    op.create_table(
        "staff_grants",
        sa.Column("staff_id", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("staff_id", "purpose", "category"),
    )
    with op.batch_alter_table("findings") as batch_op:
        batch_op.alter_column(
            "period", existing_type=sa.String(length=8), type_=sa.String(length=16)
        )
        batch_op.add_column(
            sa.Column("escalate", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch_op:
        batch_op.drop_column("escalate")
        batch_op.alter_column(
            "period", existing_type=sa.String(length=16), type_=sa.String(length=8)
        )
    op.drop_table("staff_grants")
    with op.batch_alter_table("staff") as batch_op:
        batch_op.drop_column("country")
