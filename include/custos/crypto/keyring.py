"""Key providers: where the keys that protect the vault live, outside the vault database.

The key hierarchy (DESIGN.md): provider → retention-bucket keys, one per (data category,
expiry month) → data keys per (customer, category), stored in the vault wrapped by the
bucket key of the month that category expires. Destroying a bucket key at the end of its
month makes every lingering copy of the data keys it wrapped (WAL, free pages, backups)
useless at once.

``LocalKeyring`` keeps the keys in one JSON file, mode 0600, created by ``custos init``.
AWS KMS arrives as a second provider behind the same interface.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custos.crypto.aead import new_key
from custos.errors import KeyringError

KEYRING_FORMAT = "custos-keyring/1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyProvider(ABC):
    """What the vault and the evidence store need from wherever keys are kept."""

    keyring_id: str

    @abstractmethod
    def blind_index_key(self) -> bytes: ...

    @abstractmethod
    def bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, bytes]:
        """The keys of these buckets; a missing or destroyed one is a KeyringError."""

    @abstractmethod
    def ensure_bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, bytes]:
        """Create any bucket keys that do not exist yet (never a destroyed one)."""

    @abstractmethod
    def evidence_signing_key(self) -> tuple[str, Ed25519PrivateKey]: ...

    def evidence_public_key(self) -> tuple[str, bytes]:
        key_id, private = self.evidence_signing_key()
        return key_id, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class LocalKeyring(KeyProvider):
    """A keyring file. Reads are cached; writes take a file lock and replace atomically so
    concurrent Airflow tasks never see a half-written keyring."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path = path
        self._data = data
        self.keyring_id = data["keyring_id"]

    # -- creation and loading -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path) -> LocalKeyring:
        path = Path(path)
        if path.exists():
            raise KeyringError(f"{path}: a keyring already exists; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        signing_key = Ed25519PrivateKey.generate()
        data = {
            "format": KEYRING_FORMAT,
            "keyring_id": "kr-" + secrets.token_hex(8),
            "created_at": _now(),
            "blind_index_key": _b64(new_key()),
            "evidence_signing_key": {
                "id": "ev-" + secrets.token_hex(4),
                "private": _b64(signing_key.private_bytes_raw()),
            },
            "bucket_keys": {},
            "destroyed_buckets": {},
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        return cls(path, data)

    @classmethod
    def load(cls, path: Path) -> LocalKeyring:
        path = Path(path)
        if not path.exists():
            raise KeyringError(
                f"{path}: keyring not found. Run `custos init` to create one, or set "
                "CUSTOS_KEYRING to the keyring this vault was created with."
            )
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyringError(
                f"{path}: keyring is readable by other users (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyringError(f"{path}: keyring is unreadable: {type(exc).__name__}") from None
        if not isinstance(data, dict) or data.get("format") != KEYRING_FORMAT:
            raise KeyringError(f"{path}: not a Custos keyring (expected format {KEYRING_FORMAT})")
        return cls(path, data)

    # -- the interface --------------------------------------------------------------------
    def blind_index_key(self) -> bytes:
        return _unb64(self._data["blind_index_key"])

    def evidence_signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        entry = self._data["evidence_signing_key"]
        return entry["id"], Ed25519PrivateKey.from_private_bytes(_unb64(entry["private"]))

    def bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, bytes]:
        wanted = set(bucket_ids)
        if not wanted <= self._data["bucket_keys"].keys():
            self._reload()
        keys: dict[str, bytes] = {}
        for bucket_id in sorted(wanted):
            if bucket_id in self._data["destroyed_buckets"]:
                raise KeyringError(
                    f"bucket key {bucket_id} was destroyed on "
                    f"{self._data['destroyed_buckets'][bucket_id]}; its data is gone"
                )
            entry = self._data["bucket_keys"].get(bucket_id)
            if entry is None:
                raise KeyringError(f"{self.path}: no key for bucket {bucket_id}")
            keys[bucket_id] = _unb64(entry["key"])
        return keys

    def ensure_bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, bytes]:
        wanted = set(bucket_ids)
        if not wanted <= self._data["bucket_keys"].keys():
            with self._locked() as data:
                for bucket_id in sorted(wanted - data["bucket_keys"].keys()):
                    if bucket_id in data["destroyed_buckets"]:
                        raise KeyringError(
                            f"bucket {bucket_id} was destroyed; new data cannot use it"
                        )
                    data["bucket_keys"][bucket_id] = {"key": _b64(new_key()), "created_at": _now()}
        return self.bucket_keys(wanted)

    def bucket_ids(self) -> list[str]:
        self._reload()
        return sorted(self._data["bucket_keys"])

    # -- file handling --------------------------------------------------------------------
    def _reload(self) -> None:
        self._data = LocalKeyring.load(self.path)._data

    @contextmanager
    def _locked(self):
        """Read-modify-write under an exclusive lock; replace the file atomically."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._reload()
                data = self._data
                yield data
                tmp = self.path.with_name(self.path.name + ".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=1)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def open_key_provider(settings) -> KeyProvider:
    """The provider named by CUSTOS_KEY_PROVIDER."""
    if settings.key_provider == "local":
        return LocalKeyring.load(settings.keyring_path)
    raise KeyringError(
        f"key provider {settings.key_provider!r} is not available in this version; "
        "use CUSTOS_KEY_PROVIDER=local"
    )
