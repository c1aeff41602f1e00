"""Signed checkpoints of the access log: C2SP tlog-checkpoint in a C2SP signed note.

A checkpoint says "this log, at this size, has this Merkle root", signed with Ed25519:

    custos.local/access-log
    1042
    3q2+7w...=            <- base64 of the 32-byte RFC 6962 root
                          <- blank line
    — custos.local/access-log AbCd...=   <- base64(4-byte key hash || 64-byte signature)

Why these formats rather than our own JSON: they are the formats Go's checksum database,
Sigstore and the transparency-dev witnesses use, so an auditor can check a Custos checkpoint
with existing tools (e.g. ``golang.org/x/mod/sumdb/note``) given the verifier key string from
:func:`verifier_key`. Specs: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custos.access.merkle import HASH_SIZE
from custos.errors import CustosError

SIGNATURE_TYPE_ED25519 = 0x01
"""signed-note signature type byte of Ed25519 (part of the key hash input)."""

DEFAULT_ORIGIN = "custos.local/access-log"

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_MAX_SIGNATURES = 100  # the limit Go's sumdb/note applies
_MAX_NOTE_BYTES = 1 << 20
_SIZE_LINE = re.compile(r"0|[1-9][0-9]*")
_CONTROL_CHARS = re.compile(r"[\x00-\x09\x0b-\x1f]")


class CheckpointError(CustosError):
    """A checkpoint or signed note is malformed, not signed by the expected key, or does not
    match what it was checked against. Exit code 1: a check failed."""

    exit_code = 1


@dataclass(frozen=True)
class Checkpoint:
    """The three lines of a tlog-checkpoint body."""

    origin: str
    size: int
    root: bytes


# -- keys ---------------------------------------------------------------------------------


def _raw_public_key(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    if isinstance(public_key, bytes | bytearray) and len(public_key) == 32:
        return bytes(public_key)
    raise CheckpointError("public key must be an Ed25519PublicKey or its 32 raw bytes")


def validate_key_name(name: str, what: str = "key name") -> str:
    """signed-note: non-empty, no Unicode spaces, no '+' (the verifier-key separator)."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{what} must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL_CHARS.search(name):
        raise CheckpointError(
            f"{what} {name!r} is invalid: it must not contain spaces, '+' or control "
            "characters (use a schema-less URL such as 'custos.local/access-log')"
        )
    return name


def key_hash(key_name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """signed-note key ID: ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``."""
    material = (
        validate_key_name(key_name).encode()
        + b"\n"
        + bytes([SIGNATURE_TYPE_ED25519])
        + _raw_public_key(public_key)
    )
    return hashlib.sha256(material).digest()[:4]


def verifier_key(key_name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """The verifier key string ``<name>+<hex key ID>+<base64(0x01 || public key)>`` that
    ``golang.org/x/mod/sumdb/note.NewVerifier`` and other signed-note tools accept."""
    raw = _raw_public_key(public_key)
    encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + raw).decode()
    return f"{key_name}+{key_hash(key_name, raw).hex()}+{encoded}"


# -- signed notes -------------------------------------------------------------------------


def _check_note_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise CheckpointError("note text must be a string ending in a newline")
    if _CONTROL_CHARS.search(text) or "\n\n" in text:
        raise CheckpointError(
            "note text must not contain control characters other than newline, nor blank "
            "lines (a blank line separates the text from its signatures)"
        )


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` as a C2SP signed note with one Ed25519 signature line."""
    _check_note_text(text)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise CheckpointError("the signing key must be an Ed25519PrivateKey")
    signature = private_key.sign(text.encode("utf-8"))
    blob = key_hash(key_name, private_key.public_key()) + signature
    return f"{text}\n{_SIGNATURE_PREFIX}{key_name} {base64.b64encode(blob).decode()}\n"


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """The note text (with its final newline) and its (key name, signature blob) lines."""
    if not isinstance(note, str):
        raise CheckpointError("a signed note must be text (str)")
    if len(note.encode("utf-8", "surrogatepass")) > _MAX_NOTE_BYTES:
        raise CheckpointError(f"signed note is larger than {_MAX_NOTE_BYTES} bytes")
    if _CONTROL_CHARS.search(note):
        raise CheckpointError("signed note contains control characters other than newline")
    if not note.endswith("\n"):
        raise CheckpointError("signed note must end with a newline after its last signature")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("signed note has no blank line before its signature lines")
    text, signature_block = note[: cut + 1], note[cut + 2 :]
    lines = signature_block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise CheckpointError(f"signed note has more than {_MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, start=1):
        signatures.append(_parse_signature_line(line, number))
    return text, signatures


def _parse_signature_line(line: str, number: int) -> tuple[str, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise CheckpointError(
            f"signature line {number} does not start with an em dash (U+2014) and a space"
        )
    parts = line[len(_SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise CheckpointError(f"signature line {number} is not '— <key name> <base64>'")
    name, encoded = parts
    validate_key_name(name, f"key name on signature line {number}")
    try:
        blob = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError(f"signature line {number}: the signature is not base64") from None
    if len(blob) < 5:
        raise CheckpointError(f"signature line {number}: the signature is too short")
    return name, blob


def open_note(note: str, key_name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """Return the text of ``note`` once a signature by ``(key_name, public_key)`` verifies.

    As the spec requires: signatures by other keys are ignored; a signature that claims to
    be by this key and fails rejects the whole note; no signature by this key rejects it.
    """
    raw = _raw_public_key(public_key)
    expected_hash = key_hash(key_name, raw)
    text, signatures = _split_note(note)
    verified = False
    for name, blob in signatures:
        if name != key_name or blob[:4] != expected_hash:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise CheckpointError(
                f"the signature by {key_name} (key {expected_hash.hex()}) does not verify: "
                "the note was altered after signing"
            ) from None
        verified = True
    if not verified:
        signers = ", ".join(f"{n} ({b[:4].hex()})" for n, b in signatures)
        raise CheckpointError(
            f"the note is not signed by {key_name} with key {expected_hash.hex()} (signed by: "
            f"{signers}); check that you were given this log's public key"
        )
    return text


# -- checkpoints --------------------------------------------------------------------------


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The note text of a checkpoint: origin, size and base64 root, one per line."""
    validate_key_name(origin, "origin")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CheckpointError(f"tree size {size!r} must be a non-negative integer")
    if not isinstance(root, bytes | bytearray) or len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash must be {HASH_SIZE} bytes")
    return f"{origin}\n{size}\n{base64.b64encode(bytes(root)).decode()}\n"


def sign_checkpoint(
    origin: str, size: int, root: bytes, key_name: str, private_key: Ed25519PrivateKey
) -> str:
    """A signed checkpoint note for the tree ``(size, root)`` of log ``origin``."""
    return sign_note(checkpoint_body(origin, size, root), key_name, private_key)


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse the (already verified) text of a checkpoint note."""
    lines = text[:-1].split("\n") if text.endswith("\n") else [text]
    if len(lines) < 3:
        raise CheckpointError(
            "a checkpoint has three lines (origin, tree size, base64 root hash); "
            f"this note text has {len(lines)}"
        )
    if len(lines) > 3:
        raise CheckpointError(
            f"checkpoint has {len(lines) - 3} extension line(s); Custos checkpoints have none"
        )
    origin, size_line, root_line = lines
    validate_key_name(origin, "checkpoint origin")
    if not _SIZE_LINE.fullmatch(size_line):
        raise CheckpointError(
            f"checkpoint tree size {size_line!r} is not a decimal number without leading zeros"
        )
    try:
        root = base64.b64decode(root_line.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CheckpointError("checkpoint root hash line is not base64") from None
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"checkpoint root hash is {len(root)} bytes, not {HASH_SIZE}")
    return Checkpoint(origin=origin, size=int(size_line), root=root)


def parse_and_verify(
    text: str,
    key_name: str,
    public_key: Ed25519PublicKey | bytes,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and return its contents.

    Raises CheckpointError naming what is wrong: malformed note, no or a bad signature by
    ``key_name``, a malformed body, or (when ``origin`` is given) a checkpoint of another log.
    """
    checkpoint = parse_checkpoint_body(open_note(text, key_name, public_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}: it belongs to "
            "another log"
        )
    return checkpoint
