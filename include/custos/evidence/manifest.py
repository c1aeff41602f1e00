"""Manifest bytes, hashes and signatures: the parts an auditor re-does offline.

Offline check without Custos: ``manifest.sig`` is base64 of an Ed25519 signature over the exact
bytes of ``manifest.json``; ``_keys/<signing_key_id>.pub`` is base64 of the raw 32-byte public
key; each ``files[].sha256`` is the SHA-256 of ``<run folder>/<path>``. Any Ed25519 library and
``sha256sum`` are enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import mimetypes
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from custos.errors import EvidenceError
from custos.evidence.store import EvidenceStore

MANIFEST_FORMAT = "custos-evidence-manifest/1"
ARTIFACTS_INDEX_FORMAT = "custos-evidence-artifacts/1"
DEFAULT_MEDIA_TYPE = "application/octet-stream"

# Our own table first: the artifact kinds the design names, fixed regardless of the host's
# /etc/mime.types. A fresh MimeTypes() reads no system files, so the fallback is stable too.
_MEDIA_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".pdf": "application/pdf",
    ".xml": "application/xml",
    ".sig": "text/plain",
    ".pub": "text/plain",
}
_FALLBACK_TYPES = mimetypes.MimeTypes()


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding of a JSON document that is hashed and signed."""
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"value cannot be written as canonical JSON: {exc}") from None
    return text.encode("utf-8")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def guess_media_type(name: str) -> str:
    """Media type from the file extension; octet-stream when unknown."""
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > name.rfind("/") else ""
    if ext in _MEDIA_TYPES:
        return _MEDIA_TYPES[ext]
    guessed, _ = _FALLBACK_TYPES.guess_type(name, strict=True)
    return guessed or DEFAULT_MEDIA_TYPE


def hash_object(store: EvidenceStore, key: str) -> tuple[str, int]:
    """SHA-256 hex and size of a stored object, read in chunks (flat memory)."""
    digest = hashlib.sha256()
    size = 0
    for chunk in store.iter_chunks(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def public_key_raw(key: ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey) -> bytes:
    """Raw 32-byte public key: what ``verify_store(public_keys=...)`` pins."""
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def encode_b64_text(raw: bytes) -> bytes:
    return base64.b64encode(raw) + b"\n"


def decode_b64_text(text: bytes, what: str) -> bytes:
    """Decode a base64 text file strictly; EvidenceError naming ``what`` if it is not base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceError(f"{what} is not valid base64") from None


def sign(manifest_bytes: bytes, signing_key: ed25519.Ed25519PrivateKey) -> bytes:
    """Content of ``manifest.sig``."""
    return encode_b64_text(signing_key.sign(manifest_bytes))


def signature_valid(manifest_bytes: bytes, sig_text: bytes, public_raw: bytes) -> bool:
    """True if ``sig_text`` (manifest.sig content) signs ``manifest_bytes`` under the key."""
    try:
        signature = decode_b64_text(sig_text, "manifest.sig")
        ed25519.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, manifest_bytes)
    except (EvidenceError, InvalidSignature, ValueError):
        return False
    return True


def parse_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object; EvidenceError naming ``what`` if it is not one."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise EvidenceError(f"{what} is not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise EvidenceError(f"{what} is not a JSON object")
    return obj


def describe_changes(fresh: dict[str, Any], existing: dict[str, Any]) -> str:
    """Name what a second seal would change: file paths first, then other fields."""
    old = {f.get("path"): f for f in existing.get("files") or [] if isinstance(f, dict)}
    new = {f["path"]: f for f in fresh["files"]}
    parts = [f"new file {p}" for p in sorted(new.keys() - old.keys())]
    parts += [
        f"missing file {p}"
        for p in sorted(k for k in old.keys() - new.keys() if isinstance(k, str))
    ]
    parts += [f"changed file {p}" for p in sorted(new.keys() & old.keys()) if new[p] != old[p]]
    parts += sorted(
        f"field {k}"
        for k in fresh.keys() | existing.keys()
        if k not in ("sealed_at", "files") and fresh.get(k) != existing.get(k)
    )
    return "; ".join(parts)
