"""Database-enforced ciphertext format: every ciphertext or wrapped-key column carries a
CHECK constraint that its value is NULL or ``0x01 ‖ nonce ‖ ciphertext ‖ tag`` long
enough to be one. Plaintext is then refused on every write, by any client, instead of
being found by a monthly full scan; the storage check only has to confirm the
constraints are all in place (cheap schema introspection)."""

from __future__ import annotations

from custos.crypto.aead import FORMAT_VERSION, MIN_CIPHERTEXT_BYTES

PROTECTED_CLASSES = ("ciphertext", "wrapped_key")


def constraint_name(table: str, column: str) -> str:
    return f"ck_{table}_{column}_format"


def protected_columns(metadata) -> list[tuple[str, str]]:
    return sorted(
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.c
        if column.info.get("pi") in PROTECTED_CLASSES
    )


def format_condition(dialect: str, column: str) -> str:
    """SQL that is true for NULL or a well-formed Custos ciphertext."""
    if dialect == "postgresql":
        first_byte = f"get_byte({column}, 0) = {FORMAT_VERSION[0]}"
    else:
        first_byte = f"substr({column}, 1, 1) = X'{FORMAT_VERSION.hex()}'"
    return f"{column} IS NULL OR (length({column}) >= {MIN_CIPHERTEXT_BYTES} AND {first_byte})"
