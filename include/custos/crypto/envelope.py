"""Envelope encryption: a data key per (customer, category), wrapped by a retention-bucket key.

Bucket ids are ``<category>/<YYYY-MM>`` (the month the category's retention ends), or
``<category>/unassigned`` for data that no retention rule covers yet — the storage check
reports those, and they cannot be expired in bulk until a rule is assigned.
"""

from __future__ import annotations

from datetime import date

from custos.crypto.aead import Aead, associated_data, new_key

DATA_KEY_VERSION = 1
# Version of the bucket key a data key is wrapped under; key rotation moves rows forward.
FIRST_WRAP_VERSION = 1


def bucket_id(category: str, expires_on: date | None) -> str:
    if expires_on is None:
        return f"{category}/unassigned"
    return f"{category}/{expires_on.year:04d}-{expires_on.month:02d}"


def data_key_aad(customer_id: str, category: str, bucket: str, wrap_version: int) -> bytes:
    """Binds a wrapped data key to its customer, category, bucket and bucket-key version."""
    return associated_data("data_keys", customer_id, category, bucket, f"k{wrap_version}")


def field_aad(
    table: str, column: str, customer_id: str, key_version: int, row_id: str | None = None
) -> bytes:
    """Binds a value to table, column, customer, row (for many-per-customer tables) and
    data-key version."""
    # Same bytes as associated_data(table, column, customer_id, row, f"k{v}"), built
    # directly: this runs for every encrypted value.
    return f"custos/1|{table}|{column}|{customer_id}|{row_id or '-'}|k{key_version}".encode()


def new_wrapped_data_key(
    bucket_aead: Aead,
    customer_id: str,
    category: str,
    bucket: str,
    wrap_version: int = FIRST_WRAP_VERSION,
) -> tuple[bytes, bytes]:
    """A fresh data key and its wrapped form (under that bucket-key version)."""
    data_key = new_key()
    wrapped = bucket_aead.encrypt(
        data_key, data_key_aad(customer_id, category, bucket, wrap_version)
    )
    return data_key, wrapped


def unwrap_data_key(
    bucket_aead: Aead,
    wrapped: bytes,
    customer_id: str,
    category: str,
    bucket: str,
    wrap_version: int,
) -> bytes:
    return bucket_aead.decrypt(
        wrapped,
        data_key_aad(customer_id, category, bucket, wrap_version),
        what=f"data key ({category})",
    )


__all__ = [
    "DATA_KEY_VERSION",
    "bucket_id",
    "data_key_aad",
    "field_aad",
    "new_key",
    "new_wrapped_data_key",
    "unwrap_data_key",
]
