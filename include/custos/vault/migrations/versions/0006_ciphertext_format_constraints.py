"""CHECK constraints: ciphertext and wrapped-key columns accept only Custos ciphertexts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen copy of the protected columns at this revision (migrations never import models).
PROTECTED = {
    "basic_info": [
        "name", "gender", "email", "phone", "address_line", "city", "postal_code", "birth_date",
    ],
    "identity_info": ["passport_number", "national_id"],
    "orders": ["details"],
    "events": ["details"],
    "data_keys": ["wrapped_key"],
}
MIN_BYTES = 29  # 1 version byte + 12 nonce + 16 tag


def _condition(dialect: str, column: str) -> str:
    first = (
        f"get_byte({column}, 0) = 1" if dialect == "postgresql"
        else f"substr({column}, 1, 1) = X'01'"
    )
    return f"{column} IS NULL OR (length({column}) >= {MIN_BYTES} AND {first})"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table, columns in PROTECTED.items():
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.create_check_constraint(
                    f"ck_{table}_{column}_format", _condition(dialect, column)
                )


def downgrade() -> None:
    for table, columns in PROTECTED.items():
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.drop_constraint(f"ck_{table}_{column}_format", type_="check")
