"""AES-256-GCM with associated data, in one small wire format.

Every ciphertext is ``0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)``. The associated data binds
a value to where it lives (table, column, customer, row, key version): a ciphertext copied
to another row, column or customer fails to decrypt even under the right key.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custos.errors import DecryptionError

FORMAT_VERSION = b"\x01"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
# Shortest possible ciphertext (empty plaintext); the storage check uses it in SQL.
MIN_CIPHERTEXT_BYTES = len(FORMAT_VERSION) + NONCE_BYTES + TAG_BYTES


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def associated_data(*parts: str | int) -> bytes:
    """Canonical associated data; '|' cannot occur in the parts we bind (ids, names)."""
    return b"custos/1|" + "|".join(str(p) for p in parts).encode()


class Aead:
    """One key, many values. Build once per key: constructing AESGCM is not free."""

    __slots__ = ("_aesgcm",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"AES-256 needs a {KEY_BYTES}-byte key, got {len(key)} bytes")
        self._aesgcm = AESGCM(key)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_VERSION + nonce + self._aesgcm.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes, *, what: str = "value") -> bytes:
        if len(blob) < MIN_CIPHERTEXT_BYTES or blob[:1] != FORMAT_VERSION:
            raise DecryptionError(f"{what}: not a Custos ciphertext (bad format or length)")
        nonce = blob[1 : 1 + NONCE_BYTES]
        try:
            return self._aesgcm.decrypt(nonce, blob[1 + NONCE_BYTES :], aad)
        except InvalidTag:
            raise DecryptionError(
                f"{what}: authentication failed (wrong key, value moved from another "
                "row/column/customer, or altered bytes)"
            ) from None
