"""Key providers: where the keys that protect the vault live, outside the vault database.

The key hierarchy (DESIGN.md): provider → retention-bucket keys, one per (data category,
expiry month) → data keys per (customer, category), stored in the vault wrapped by the
bucket key of the month that category expires. Destroying a bucket key at the end of its
month makes every lingering copy of the data keys it wrapped (WAL, free pages, backups)
useless at once.

Bucket keys are versioned (Art. 8, 12). A bucket has versions 1..n and one *primary*, the
version new data keys are wrapped with; ``data_keys.wrap_version`` says which version wraps
each row (and is bound into the wrapped key's associated data). Rotation makes a new
primary, re-wraps the rows (``custos.crypto.rotation``) and then destroys the versions no
row uses any more. A destroyed version stays in the key store as a tombstone (when, how
many encryptions) and its number is never reused.

Every version counts the encryptions made with it. AES-GCM with random 96-bit nonces is
safe for at most 2**32 encryptions per key (NIST SP 800-38D); a version that would pass
``max_encryptions`` (CUSTOS_KEY_MAX_ENCRYPTIONS, default 2**30) is replaced by a new
primary before it does. The writer reserves its encryptions once per batch
(``reserve_encryptions``), not per value.

Providers: ``LocalKeyring`` keeps the keys in one JSON file, mode 0600, created by
``custos init``; ``custos.crypto.kms.AwsKmsKeyProvider`` keeps the same structure with every
key wrapped by an AWS KMS key. Both share ``FileKeyStore``.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import json
import os
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from custos.crypto.aead import KEY_BYTES, Aead, new_key
from custos.errors import KeyringError
from custos.settings import AES_GCM_RANDOM_NONCE_LIMIT, DEFAULT_KEY_MAX_ENCRYPTIONS

# /1: one key per bucket ({"key", "created_at"}); /2: versioned bucket keys. Files in /1
# load as version 1 of every bucket and are written back as /2 on the next change.
KEYRING_FORMAT = "custos-keyring/2"
KEYRING_FORMATS_READ = ("custos-keyring/1", KEYRING_FORMAT)


class KeyUsageError(KeyringError):
    """A key version has reached its encryption cap (or is no longer usable for new data)."""


class BucketKey(NamedTuple):
    """A bucket key and its version (bound into the wrapped data key's associated data)."""

    version: int
    key: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyProvider(ABC):
    """What the vault and the evidence store need from wherever keys are kept."""

    keyring_id: str
    provider_name: str = "key provider"
    max_encryptions: int = DEFAULT_KEY_MAX_ENCRYPTIONS

    @abstractmethod
    def blind_index_key(self) -> bytes: ...

    @abstractmethod
    def evidence_signing_key(self) -> tuple[str, Ed25519PrivateKey]: ...

    def evidence_public_key(self) -> tuple[str, bytes]:
        key_id, private = self.evidence_signing_key()
        return key_id, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    # -- bucket keys ----------------------------------------------------------------------
    @abstractmethod
    def bucket_ids(self) -> list[str]:
        """Buckets that have keys (not destroyed ones)."""

    @abstractmethod
    def bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, BucketKey]:
        """The primary (version, key) of these buckets; a missing or destroyed bucket is a
        KeyringError."""

    @abstractmethod
    def bucket_key(self, bucket_id: str, version: int) -> bytes:
        """One version of a bucket key, for reading and re-wrapping; a destroyed version is a
        KeyringError."""

    @abstractmethod
    def ensure_bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, BucketKey]:
        """Create any bucket keys that do not exist yet (never a destroyed one); return the
        primaries."""

    @abstractmethod
    def reserve_encryptions(self, counts: Mapping[str, int]) -> dict[str, BucketKey]:
        """The writer's one call per batch: for each bucket, create it if new, count ``n``
        encryptions against its primary (replacing a primary that would pass the cap first)
        and return the (version, key) to encrypt those ``n`` values with."""

    @abstractmethod
    def record_encryptions(self, bucket_id: str, version: int, n: int) -> int:
        """Count ``n`` encryptions about to be made with one version; return the primary.
        A version that would pass the cap is refused with KeyUsageError (if it was the
        primary, a new primary is made first, so asking again with that one succeeds)."""

    @abstractmethod
    def rotate_bucket(self, bucket_id: str, *, reason: str = "manual") -> int:
        """Make a new primary version; the old ones stay readable until retired."""

    @abstractmethod
    def retire(self, bucket_id: str, version: int) -> bool:
        """Destroy a non-primary version (recorded with time; never reused). False if it was
        already destroyed. The caller makes sure no data key is still wrapped with it."""

    @abstractmethod
    def destroy_bucket(self, bucket_id: str) -> None:
        """Destroy every version of a bucket (the end of its retention month)."""

    @abstractmethod
    def begin_rotation(self, bucket_ids: Iterable[str]) -> dict:
        """Start (or continue) the rotation of these buckets; see ``custos.crypto.rotation``.
        Returns {"id", "started_at", "resumed", "buckets": {bucket: {"target", "done"}}}."""

    @abstractmethod
    def finish_rotation(self, bucket_id: str) -> bool:
        """Mark one bucket of the unfinished rotation done; True when the whole rotation is."""

    @abstractmethod
    def status(self, bucket_ids: Iterable[str] | None = None) -> dict:
        """Buckets (all, or these), versions, primaries, encryption counts and destructions;
        no key material."""

    # -- convenience ----------------------------------------------------------------------
    def unwrap_data_key(
        self, wrapped: bytes, customer_id: str, category: str, bucket: str, wrap_version: int
    ) -> bytes:
        """A customer's data key, from its data_keys row (wrap_version says which key)."""
        from custos.crypto.envelope import unwrap_data_key

        cache = self.__dict__.setdefault("_unwrap_aeads", {})
        aead = cache.get((bucket, wrap_version))
        if aead is None:
            aead = cache[(bucket, wrap_version)] = Aead(self.bucket_key(bucket, wrap_version))
        return unwrap_data_key(aead, bytes(wrapped), customer_id, category, bucket, wrap_version)


class FileKeyStore(KeyProvider):
    """Keys in one JSON file (mode 0600). Reads are cached; writes take a file lock, re-read
    the file, and replace it atomically, so concurrent Airflow tasks and worker processes
    never see a half-written file or lose each other's changes. A change whose key
    operation fails (e.g. the KMS refuses) is never written.

    Subclasses decide how key material is stored: ``_seal_new_key`` / ``_unseal_key``."""

    FORMATS_READ: tuple[str, ...] = ()
    WHAT = "key store"

    def __init__(self, path: Path, data: dict, *, max_encryptions: int | None = None) -> None:
        self.path = Path(path)
        self._data = data
        self.keyring_id = data["keyring_id"]
        self.max_encryptions = int(max_encryptions or DEFAULT_KEY_MAX_ENCRYPTIONS)
        if not 1 <= self.max_encryptions <= AES_GCM_RANDOM_NONCE_LIMIT:
            raise KeyringError(f"max_encryptions must be 1..2**32, not {self.max_encryptions}")
        self._keys: dict[tuple[str, int], bytes] = {}
        # The file's bytes as last read or written: if the file still holds exactly these,
        # the in-memory copy is current and need not be parsed again.
        self._signature: bytes | None = None

    # -- key material hooks ---------------------------------------------------------------
    @abstractmethod
    def _seal_new_key(self, bucket_id: str, version: int) -> tuple[dict, bytes]:
        """A fresh bucket key: (fields stored in the version entry, the key)."""

    @abstractmethod
    def _unseal_key(self, bucket_id: str, version: int, entry: dict) -> bytes:
        """The key of a stored version entry."""

    def _forget_key(self, entry: dict) -> None:
        """Remove key material from a version entry (destruction)."""
        for field in ("key", "wrapped"):
            entry.pop(field, None)

    # -- file handling --------------------------------------------------------------------
    @classmethod
    def _read_raw(cls, path: Path) -> bytes:
        try:
            with open(path, "rb") as handle:
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                if mode & 0o077:
                    raise KeyringError(
                        f"{path}: {cls.WHAT} is readable by other users (mode {mode:04o}); "
                        f"run `chmod 600 {path}`"
                    )
                return handle.read()
        except OSError as exc:
            raise KeyringError(f"{path}: {cls.WHAT} is unreadable: {type(exc).__name__}") from None

    @classmethod
    def _parse(cls, path: Path, raw: bytes) -> dict:
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise KeyringError(f"{path}: {cls.WHAT} is unreadable: {type(exc).__name__}") from None
        if not isinstance(data, dict) or data.get("format") not in cls.FORMATS_READ:
            raise KeyringError(
                f"{path}: not a Custos {cls.WHAT} (expected format {cls.FORMATS_READ[-1]})"
            )
        return cls._upgrade(data)

    @classmethod
    def _read_signed(cls, path: Path) -> tuple[dict, bytes]:
        raw = cls._read_raw(Path(path))
        return cls._parse(Path(path), raw), raw

    @classmethod
    def _read(cls, path: Path) -> dict:
        return cls._read_signed(path)[0]

    @staticmethod
    def _upgrade(data: dict) -> dict:
        """In memory only: an unversioned bucket entry {"key", "created_at"} is version 1."""
        for bucket_id, entry in list(data.setdefault("bucket_keys", {}).items()):
            if "versions" not in entry:
                version = {field: entry[field] for field in ("key", "wrapped") if field in entry}
                version |= {
                    "created_at": entry.get("created_at"),
                    "encryptions": 0,
                    "last_used_at": None,
                    "reason": "created",
                }
                data["bucket_keys"][bucket_id] = {"primary": 1, "versions": {"1": version}}
        data.setdefault("destroyed_buckets", {})
        return data

    def _reload(self, *, force: bool = False) -> None:
        raw = self._read_raw(self.path)
        if force or raw != self._signature:
            self._data, self._signature = self._parse(self.path, raw), raw

    @staticmethod
    def _write_file(
        path: Path, data: dict, *, exclusive: bool = False, durable: bool = True
    ) -> bytes:
        """Write ``data`` to a temporary file, fsync it, then move it into place atomically
        (``exclusive``: fail if ``path`` exists, for creation). ``durable``: also fsync the
        directory, so the new file survives a power loss (needed when keys were made or
        destroyed; a lost use-count update only means a few uncounted encryptions)."""
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # One line: the C encoder (an indented dump is ~5x slower, and this runs once
            # per writer batch).
            raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            if exclusive:
                os.link(tmp, path)  # atomic, and refuses to replace an existing file
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if durable:
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return raw

    @contextmanager
    def _locked(self, *, durable: bool = True):
        """Read-modify-write under an exclusive lock; replace the file atomically. If the
        body raises, nothing is written and the in-memory copy is re-read. ``durable=False``
        (use counts only) still syncs the file, and the directory too if keys were made."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._reload()
                cached = set(self._keys)
                try:
                    yield self._data
                    self._data["format"] = self.FORMATS_READ[-1]
                    made_keys = bool(set(self._keys) - cached)
                    self._signature = self._write_file(
                        self.path, self._data, durable=durable or made_keys
                    )
                except BaseException:
                    # Drop the half-made change (the file was not replaced), including keys
                    # of versions that now will never exist.
                    for made in set(self._keys) - cached:
                        del self._keys[made]
                    self._reload(force=True)
                    raise
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- helpers --------------------------------------------------------------------------
    def _entry(self, data: dict, bucket_id: str) -> dict:
        if bucket_id in data["destroyed_buckets"]:
            raise KeyringError(
                f"bucket key {bucket_id} was destroyed on "
                f"{data['destroyed_buckets'][bucket_id]}; its data is gone"
            )
        entry = data["bucket_keys"].get(bucket_id)
        if entry is None:
            raise KeyringError(f"{self.path}: no key for bucket {bucket_id}")
        return entry

    def _version_entry(self, data: dict, bucket_id: str, version: int) -> dict:
        entry = self._entry(data, bucket_id)
        found = entry["versions"].get(str(version))
        if found is None:
            raise KeyringError(f"{self.path}: bucket {bucket_id} has no key version {version}")
        if "destroyed_at" in found:
            raise KeyringError(
                f"bucket key {bucket_id} version {version} was destroyed on "
                f"{found['destroyed_at']}; data keys wrapped with it are gone"
            )
        return found

    def _key(self, bucket_id: str, version: int, entry: dict) -> bytes:
        cached = self._keys.get((bucket_id, version))
        if cached is None:
            cached = self._unseal_key(bucket_id, version, entry)
            if len(cached) != KEY_BYTES:
                raise KeyringError(f"bucket key {bucket_id} v{version}: wrong key length")
            self._keys[(bucket_id, version)] = cached
        return cached

    def _new_version(self, data: dict, bucket_id: str, reason: str) -> int:
        """Add a version (one higher than any that ever existed) and make it primary."""
        entry = data["bucket_keys"].get(bucket_id)
        if entry is None:
            if bucket_id in data["destroyed_buckets"]:
                raise KeyringError(f"bucket {bucket_id} was destroyed; new data cannot use it")
            entry = data["bucket_keys"][bucket_id] = {"primary": 0, "versions": {}}
        version = max((int(v) for v in entry["versions"]), default=0) + 1
        stored, key = self._seal_new_key(bucket_id, version)
        entry["versions"][str(version)] = stored | {
            "created_at": _now(),
            "encryptions": 0,
            "last_used_at": None,
            "reason": reason,
        }
        entry["primary"] = version
        self._keys[(bucket_id, version)] = key
        return version

    def _primary(self, data: dict, bucket_id: str) -> BucketKey:
        entry = self._entry(data, bucket_id)
        version = entry["primary"]
        return BucketKey(version, self._key(bucket_id, version, entry["versions"][str(version)]))

    # -- the interface --------------------------------------------------------------------
    def bucket_ids(self) -> list[str]:
        self._reload()
        return sorted(self._data["bucket_keys"])

    def bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, BucketKey]:
        wanted = set(bucket_ids)
        if not wanted <= self._data["bucket_keys"].keys():
            self._reload()
        return {bucket_id: self._primary(self._data, bucket_id) for bucket_id in sorted(wanted)}

    def bucket_key(self, bucket_id: str, version: int) -> bytes:
        version = int(version)
        cached = self._keys.get((bucket_id, version))
        if cached is not None:
            return cached
        entry = self._data["bucket_keys"].get(bucket_id)
        if entry is None or str(version) not in entry["versions"]:
            self._reload()
        return self._key(bucket_id, version, self._version_entry(self._data, bucket_id, version))

    def ensure_bucket_keys(self, bucket_ids: Iterable[str]) -> dict[str, BucketKey]:
        wanted = set(bucket_ids)
        if not wanted <= self._data["bucket_keys"].keys():
            with self._locked() as data:
                for bucket_id in sorted(wanted - data["bucket_keys"].keys()):
                    self._new_version(data, bucket_id, "created")
        return self.bucket_keys(wanted)

    def reserve_encryptions(self, counts: Mapping[str, int]) -> dict[str, BucketKey]:
        cap = self.max_encryptions
        for bucket_id, n in counts.items():
            if n > cap:
                raise KeyUsageError(
                    f"{n} encryptions requested at once for bucket {bucket_id}, more than the "
                    f"cap of {cap} per key version (CUSTOS_KEY_MAX_ENCRYPTIONS); use smaller "
                    "batches"
                )
        if not counts:
            return {}
        now = _now()
        with self._locked(durable=False) as data:
            for bucket_id, n in sorted(counts.items()):
                if bucket_id not in data["bucket_keys"]:
                    self._new_version(data, bucket_id, "created")
                entry = self._entry(data, bucket_id)
                version = entry["primary"]
                if entry["versions"][str(version)]["encryptions"] + n > cap:
                    version = self._new_version(data, bucket_id, "encryption cap")
                if n:
                    used = entry["versions"][str(version)]
                    used["encryptions"] += n
                    used["last_used_at"] = now
            return {bucket_id: self._primary(data, bucket_id) for bucket_id in sorted(counts)}

    def record_encryptions(self, bucket_id: str, version: int, n: int) -> int:
        if n < 0:
            raise ValueError("n must be >= 0")
        cap = self.max_encryptions
        refused = None
        with self._locked(durable=False) as data:
            entry = self._entry(data, bucket_id)
            used = self._version_entry(data, bucket_id, version)
            if used["encryptions"] + n > cap:
                if entry["primary"] == version:
                    self._new_version(data, bucket_id, "encryption cap")
                refused = (
                    f"bucket key {bucket_id} version {version} has made {used['encryptions']} "
                    f"encryptions; {n} more would pass the cap of {cap} "
                    f"(CUSTOS_KEY_MAX_ENCRYPTIONS). Use the primary, now version "
                    f"{entry['primary']}."
                )
            else:
                used["encryptions"] += n
                used["last_used_at"] = _now()
            primary = entry["primary"]
        if refused:
            raise KeyUsageError(refused)
        return primary

    def rotate_bucket(self, bucket_id: str, *, reason: str = "manual") -> int:
        with self._locked() as data:
            self._entry(data, bucket_id)
            return self._new_version(data, bucket_id, reason)

    def retire(self, bucket_id: str, version: int) -> bool:
        version = int(version)
        with self._locked() as data:
            entry = self._entry(data, bucket_id)
            found = entry["versions"].get(str(version))
            if found is None:
                raise KeyringError(f"bucket {bucket_id} has no key version {version}")
            if entry["primary"] == version:
                raise KeyringError(
                    f"bucket key {bucket_id} version {version} is the primary; rotate first"
                )
            if "destroyed_at" in found:
                return False
            self._forget_key(found)
            found["destroyed_at"] = _now()
        self._keys.pop((bucket_id, version), None)
        self.__dict__.get("_unwrap_aeads", {}).pop((bucket_id, version), None)
        return True

    def destroy_bucket(self, bucket_id: str) -> None:
        with self._locked() as data:
            if bucket_id in data["destroyed_buckets"]:
                return
            data["bucket_keys"].pop(bucket_id, None)
            data["destroyed_buckets"][bucket_id] = _now()
            job = data.get("rotation")
            if job and bucket_id in job["buckets"]:
                job["buckets"][bucket_id]["done"] = True
        for key in [k for k in self._keys if k[0] == bucket_id]:
            self._keys.pop(key, None)
        self.__dict__.pop("_unwrap_aeads", None)

    def begin_rotation(self, bucket_ids: Iterable[str]) -> dict:
        wanted = sorted(set(bucket_ids))
        with self._locked() as data:
            for bucket_id in wanted:
                self._entry(data, bucket_id)
            job = data.get("rotation")
            resumed = job is not None
            if job is None:
                job = data["rotation"] = {
                    "id": "rot-" + secrets.token_hex(4),
                    "started_at": _now(),
                    "buckets": {},
                }
            for bucket_id, state in job["buckets"].items():
                entry = data["bucket_keys"].get(bucket_id)
                if entry is None:  # destroyed meanwhile: nothing left to rotate
                    state["done"] = True
                elif not state["done"]:
                    # An unfinished rotation continues towards the current primary (the
                    # one it created, or a later one made at the encryption cap).
                    state["target"] = entry["primary"]
            for bucket_id in wanted:
                if bucket_id not in job["buckets"]:
                    target = self._new_version(data, bucket_id, f"rotation {job['id']}")
                    job["buckets"][bucket_id] = {"target": target, "done": False}
            return copy.deepcopy(job) | {"resumed": resumed}

    def finish_rotation(self, bucket_id: str) -> bool:
        with self._locked() as data:
            job = data.get("rotation")
            if job is None:
                return True
            if bucket_id in job["buckets"]:
                job["buckets"][bucket_id]["done"] = True
            if all(state["done"] for state in job["buckets"].values()):
                data["last_rotation"] = {
                    "id": job["id"],
                    "started_at": job["started_at"],
                    "finished_at": _now(),
                    "buckets": len(job["buckets"]),
                }
                del data["rotation"]
                return True
            return False

    def rotation_in_progress(self) -> dict | None:
        self._reload()
        job = self._data.get("rotation")
        return copy.deepcopy(job) if job else None

    def status(self, bucket_ids: Iterable[str] | None = None) -> dict:
        self._reload()
        data = self._data
        job = data.get("rotation") or {"buckets": {}}
        buckets = []
        selected = data["bucket_keys"] if bucket_ids is None else set(bucket_ids)
        for bucket_id in sorted(b for b in selected if b in data["bucket_keys"]):
            entry = data["bucket_keys"][bucket_id]
            versions = []
            for number in sorted(entry["versions"], key=int):
                v = entry["versions"][number]
                state = "destroyed" if "destroyed_at" in v else "active"
                if int(number) == entry["primary"]:
                    state = "primary"
                versions.append(
                    {
                        "version": int(number),
                        "state": state,
                        "created_at": v.get("created_at"),
                        "reason": v.get("reason"),
                        "encryptions": v.get("encryptions", 0),
                        "last_used_at": v.get("last_used_at"),
                        "destroyed_at": v.get("destroyed_at"),
                    }
                )
            rotating = job["buckets"].get(bucket_id)
            buckets.append(
                {
                    "bucket": bucket_id,
                    "primary": entry["primary"],
                    "versions": versions,
                    "rotation_in_progress": bool(rotating and not rotating["done"]),
                }
            )
        return {
            "provider": self.provider_name,
            "keyring_id": self.keyring_id,
            "max_encryptions": self.max_encryptions,
            "aes_gcm_random_nonce_limit": AES_GCM_RANDOM_NONCE_LIMIT,
            "buckets": buckets,
            "destroyed_buckets": dict(sorted(data["destroyed_buckets"].items())),
            "rotation": (
                {k: copy.deepcopy(v) for k, v in data["rotation"].items()}
                if data.get("rotation")
                else None
            ),
            "last_rotation": data.get("last_rotation"),
        }


class LocalKeyring(FileKeyStore):
    """A keyring file holding the keys themselves (the embedded default)."""

    FORMATS_READ = KEYRING_FORMATS_READ
    WHAT = "keyring"
    provider_name = "local"

    # -- creation and loading -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, *, max_encryptions: int | None = None) -> LocalKeyring:
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
        try:
            cls._write_file(path, data, exclusive=True)
        except FileExistsError:
            raise KeyringError(
                f"{path}: a keyring already exists; refusing to overwrite it"
            ) from None
        return cls(path, data, max_encryptions=max_encryptions)

    @classmethod
    def load(cls, path: Path, *, max_encryptions: int | None = None) -> LocalKeyring:
        path = Path(path)
        if not path.exists():
            raise KeyringError(
                f"{path}: keyring not found. Run `custos init` to create one, or set "
                "CUSTOS_KEYRING to the keyring this vault was created with."
            )
        data, signature = cls._read_signed(path)
        keyring = cls(path, data, max_encryptions=max_encryptions)
        keyring._signature = signature
        return keyring

    # -- key material ---------------------------------------------------------------------
    def blind_index_key(self) -> bytes:
        return _unb64(self._data["blind_index_key"])

    def evidence_signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        entry = self._data["evidence_signing_key"]
        return entry["id"], Ed25519PrivateKey.from_private_bytes(_unb64(entry["private"]))

    def _seal_new_key(self, bucket_id: str, version: int) -> tuple[dict, bytes]:
        key = new_key()
        return {"key": _b64(key)}, key

    def _unseal_key(self, bucket_id: str, version: int, entry: dict) -> bytes:
        return _unb64(entry["key"])


def open_key_provider(settings, *, create: bool = False) -> KeyProvider:
    """The provider named by CUSTOS_KEY_PROVIDER. ``create``: make its key store if there is
    none yet (``custos init``); otherwise a missing key store is a KeyringError."""
    if settings.key_provider == "local":
        max_encryptions = getattr(settings, "key_max_encryptions", None)
        if create and not settings.keyring_path.exists():
            return LocalKeyring.create(settings.keyring_path, max_encryptions=max_encryptions)
        return LocalKeyring.load(settings.keyring_path, max_encryptions=max_encryptions)
    if settings.key_provider == "aws-kms":
        from custos.crypto.kms import AwsKmsKeyProvider

        return AwsKmsKeyProvider.from_settings(settings, create=create)
    raise KeyringError(
        f"key provider {settings.key_provider!r} is not available; "
        "use CUSTOS_KEY_PROVIDER=local or aws-kms"
    )
