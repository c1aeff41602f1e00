"""The tamper-evident access log (policy Art. 8 security audit, Art. 12 every access logged).

Every access decision is appended as a leaf of an RFC 6962 Merkle tree (``merkle``); the
log's root is signed from time to time as a C2SP checkpoint (``checkpoint``) and a copy of
the signed note is anchored in the evidence store, which the vault's writers cannot rewrite.

What that buys an auditor:
- an entry edited, deleted, inserted or moved after a checkpoint changes the root of the
  first N entries, which no longer matches the signed root of size N;
- someone holding the signing key could rewrite the log *and* re-sign new checkpoints in
  the vault, but not the notes already anchored in the evidence store: ``verify`` checks
  the current log against those too;
- ``prove`` hands out one entry with its audit path and the signed note, enough to check by
  hand (or with any RFC 6962 library) that the entry is in the log the company signed.

Streaming throughout: building a root or verifying reads the log in index order and keeps
O(log n) hashes, so a log of millions of entries verifies in flat memory.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from custos.access.checkpoint import (
    DEFAULT_ORIGIN,
    Checkpoint,
    CheckpointError,
    parse_and_verify,
    sign_checkpoint,
    validate_key_name,
    verifier_key,
)
from custos.access.log_models import (
    ENTRY_FIELDS,
    AccessCheckpoint,
    AccessLogEntry,
    canonical_entry,
    utc_now,
    validate_entry,
)
from custos.access.log_verify import LogVerifier, VerifyResult
from custos.access.merkle import CompactTree, inclusion_proof, leaf_hash, verify_inclusion
from custos.errors import ConfigError, CustosError

ANCHOR_TASK_ID = "access_log"
CHECKPOINT_ARTIFACT = "access-log-checkpoint.txt"
ANCHOR_CONTROLS = ["ART12-ACCESS-LOGGED"]
ANCHOR_ARTICLES = ["Art. 8", "Art. 12"]
PROOF_FORMAT = "custos-access-log-proof/1"

_STREAM_ROWS = 20_000
# pg_advisory_xact_lock key: the first 8 bytes of SHA-256("custos.access_log"), signed.
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"custos.access_log").digest()[:8], "big", signed=True)
# The queryable columns, in the order ``column_values`` returns them.
_COLUMNS = ENTRY_FIELDS
_LOG = AccessLogEntry.__table__
_CHECKPOINTS = AccessCheckpoint.__table__


class AccessLogError(CustosError):
    """The access log refused an operation because its stored state is not what it signed
    (tampering, or a restore from an old backup). Exit code 1: a check failed."""

    exit_code = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AccessLog:
    """Append-only access log in the vault database, signed with the evidence key."""

    def __init__(
        self,
        engine: Engine,
        signing_key_id: str,
        signing_key: Ed25519PrivateKey,
        origin: str = DEFAULT_ORIGIN,
    ) -> None:
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise ConfigError("the access log's signing key must be an Ed25519 private key")
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ConfigError(f"access log: {engine.dialect.name} is not supported")
        self.engine = engine
        self.signing_key_id = signing_key_id
        self.signing_key = signing_key
        # C2SP tlog-checkpoint: the log's key name SHOULD match its origin line.
        try:
            self.origin = validate_key_name(origin, "access log origin")
        except CheckpointError as exc:
            raise ConfigError(str(exc)) from None
        self.public_key = signing_key.public_key()

    @classmethod
    def for_runtime(cls, runtime: Any, origin: str = DEFAULT_ORIGIN) -> AccessLog:
        """The access log of an opened ``custos.runtime.Runtime`` (its vault and keyring)."""
        key_id, key = runtime.keys.evidence_signing_key()
        return cls(runtime.engine, key_id, key, origin)

    # -- writing ------------------------------------------------------------------------------

    def append(self, entries: list[dict[str, Any]]) -> range:
        """Append entries in one transaction; return the indexes they received.

        All or nothing: an entry that breaks the schema (unknown field, personal data, a
        missing principal) raises ValueError naming its position and field, and the batch
        is rolled back. Indexes are contiguous even with concurrent writers: the batch holds
        the log's write lock from reading the next index to commit.

        Each entry is validated, made canonical, hashed and handed to the driver one at a
        time (a generator into ``executemany``) rather than as a list of 10,000 rows: the
        batch then never lives in memory twice, and the garbage collector, which otherwise
        rescans the growing list, stays out of the way (about 20% faster).
        """
        if not isinstance(entries, list | tuple):
            raise TypeError("append() takes a list of entry dicts")
        now = utc_now()
        fast_insert = self._fast_insert
        with self._write_lock() as conn:
            start = self._next_index(conn)
            if entries:
                rows = (
                    fast_insert.row(idx, validate_entry(raw, idx - start, now))
                    for idx, raw in enumerate(entries, start)
                )
                cursor = conn.connection.cursor()
                try:
                    cursor.executemany(fast_insert.sql, rows)
                finally:
                    cursor.close()
        return range(start, start + len(entries))

    @functools.cached_property
    def _fast_insert(self) -> _FastInsert:
        return _FastInsert(self.engine.dialect)

    @contextmanager
    def _write_lock(self) -> Iterator[Connection]:
        """A transaction that holds the log's single-writer lock until it commits.

        SQLite: BEGIN IMMEDIATE takes the write lock before the next index is read (a plain
        BEGIN would let two writers read the same max(idx)); waiters queue on the busy
        timeout. PostgreSQL: a transaction-scoped advisory lock; readers never wait.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _next_index(self, conn: Connection) -> int:
        last = conn.scalar(select(func.max(_LOG.c.idx)))
        next_index = 0 if last is None else last + 1
        signed = conn.scalar(select(func.max(_CHECKPOINTS.c.size)))
        if signed is not None and next_index < signed:
            raise AccessLogError(
                f"the access log ends at {next_index} entries but a checkpoint of {signed} "
                "entries was signed: entries were deleted. Nothing was written; run the "
                "access log verification and restore the vault before logging again"
            )
        return next_index

    # -- reading ------------------------------------------------------------------------------

    def size(self) -> int:
        """Number of entries (the next index to be assigned)."""
        with self.engine.connect() as conn:
            return _size(conn)

    def root(self, size: int | None = None) -> bytes:
        """RFC 6962 root of the first ``size`` entries (default: all), from stored hashes."""
        with self.engine.connect() as conn:
            current = _size(conn)
            size = current if size is None else size
            if not 0 <= size <= current:
                raise ValueError(f"size {size} is outside 0..{current} (the log's size)")
            tree = CompactTree()
            tree.extend(_leaf_hashes(conn, size))
            return tree.root()

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> str:
        """Sign the current size and root, store the note, return it.

        Refuses (AccessLogError) if the entries no longer match the last signed checkpoint:
        a log must never sign a tree inconsistent with one it signed before, or it would
        launder tampering. Signing an unchanged size returns the existing note.
        """
        with self.engine.connect() as conn:
            size = _size(conn)
            last = self._latest_checkpoint(conn)
            if last is not None and last.size > size:
                raise AccessLogError(
                    f"refusing to sign: the log has {size} entries but checkpoint {last.size} "
                    "was signed before (entries deleted); run the access log verification"
                )
            if last is not None and last.size == size:
                return conn.scalar(
                    select(_CHECKPOINTS.c.signed_note).where(_CHECKPOINTS.c.size == size)
                )
            tree, prefix_root = CompactTree(), None
            for hash_ in _leaf_hashes(conn, size):
                tree.append(hash_)
                if last is not None and tree.size == last.size:
                    prefix_root = tree.root()
            if last is not None and prefix_root != last.root:
                raise AccessLogError(
                    f"refusing to sign: the first {last.size} entries no longer have the root "
                    f"signed in checkpoint {last.size} (entries changed); run the access log "
                    "verification"
                )
            root = tree.root()
        note = sign_checkpoint(self.origin, size, root, self.origin, self.signing_key)
        return self._store_checkpoint(size, root, note)

    def _latest_checkpoint(self, conn: Connection) -> Checkpoint | None:
        """The newest stored checkpoint, as its signature says (not as its columns say)."""
        note = conn.scalar(
            select(_CHECKPOINTS.c.signed_note).order_by(_CHECKPOINTS.c.size.desc()).limit(1)
        )
        if note is None:
            return None
        try:
            return parse_and_verify(note, self.origin, self.public_key, origin=self.origin)
        except CheckpointError as exc:
            raise AccessLogError(
                f"the latest stored checkpoint does not verify ({exc}); run the access log "
                "verification"
            ) from None

    def _store_checkpoint(self, size: int, root: bytes, note: str) -> str:
        row = {"size": size, "root": root, "signed_note": note, "created_at": utc_now()}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(_CHECKPOINTS), [row])
            return note
        except IntegrityError:
            # Another process signed this size first; same root means same tree.
            with self.engine.connect() as conn:
                existing = conn.execute(
                    select(_CHECKPOINTS.c.root, _CHECKPOINTS.c.signed_note).where(
                        _CHECKPOINTS.c.size == size
                    )
                ).one()
            if existing.root != root:
                raise AccessLogError(
                    f"a different checkpoint of size {size} was stored concurrently; run the "
                    "access log verification"
                ) from None
            return existing.signed_note

    def maybe_checkpoint(self, every_entries: int, every_minutes: int) -> str | None:
        """Sign a checkpoint if ``every_entries`` entries arrived since the last one, or
        any arrived and the last one is ``every_minutes`` old; return the new note or None.
        (Nothing new, nothing signed: re-signing the same tree adds no evidence.)"""
        if every_entries < 1 or every_minutes < 1:
            raise ValueError("every_entries and every_minutes must be at least 1")
        with self.engine.connect() as conn:
            size = _size(conn)
            last = conn.execute(
                select(_CHECKPOINTS.c.size, _CHECKPOINTS.c.created_at)
                .order_by(_CHECKPOINTS.c.size.desc())
                .limit(1)
            ).first()
        if last is None:
            due = size > 0
        else:
            new = size - last.size
            age = utc_now() - last.created_at
            due = new > 0 and (new >= every_entries or age >= timedelta(minutes=every_minutes))
        return self.checkpoint() if due else None

    def anchor(self, evidence_run: Any) -> dict[str, Any]:
        """Copy the latest checkpoint note into the evidence store and mark it anchored.

        ``evidence_run`` is a ``custos.evidence.EvidenceRun``. The copy is what makes a
        rewrite visible even to someone holding the signing key: the evidence run is sealed
        and verified apart from the vault. Signs a first checkpoint if there is none.
        """
        with self.engine.connect() as conn:
            latest = conn.execute(
                select(_CHECKPOINTS.c.size, _CHECKPOINTS.c.signed_note)
                .order_by(_CHECKPOINTS.c.size.desc())
                .limit(1)
            ).first()
        note = latest.signed_note if latest is not None else self.checkpoint()
        checkpoint = parse_and_verify(note, self.origin, self.public_key, origin=self.origin)
        artifact = evidence_run.write_artifact(
            task_id=ANCHOR_TASK_ID,
            name=CHECKPOINT_ARTIFACT,
            data=note,
            controls=ANCHOR_CONTROLS,
            articles=ANCHOR_ARTICLES,
            media_type="text/plain",
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(_CHECKPOINTS)
                .where(_CHECKPOINTS.c.size == checkpoint.size)
                .values(anchored_at=utc_now())
            )
        return {"size": checkpoint.size, "root": _b64(checkpoint.root), "artifact": artifact}

    # -- proofs -------------------------------------------------------------------------------

    def prove(self, index: int) -> dict[str, Any]:
        """Everything an auditor needs to check entry ``index`` by hand: the entry text, its
        leaf hash, the audit path to the root of a signed checkpoint, the signed note and
        the key to verify it with. Signs a new checkpoint if none covers the entry yet."""
        with self.engine.connect() as conn:
            checkpoint = self._latest_checkpoint(conn)
        if checkpoint is None or checkpoint.size <= index:
            checkpoint = parse_and_verify(self.checkpoint(), self.origin, self.public_key)
        if not 0 <= index < checkpoint.size:
            raise ValueError(f"entry {index} is not in the log (it has {checkpoint.size})")
        with self.engine.connect() as conn:
            hashes = list(_leaf_hashes(conn, checkpoint.size))
            entry = conn.scalar(select(_LOG.c.entry).where(_LOG.c.idx == index))
            note = conn.scalar(
                select(_CHECKPOINTS.c.signed_note).where(_CHECKPOINTS.c.size == checkpoint.size)
            )
        path = inclusion_proof(hashes, index)
        if not verify_inclusion(hashes[index], index, checkpoint.size, path, checkpoint.root):
            raise AccessLogError(
                f"the stored entries do not match signed checkpoint {checkpoint.size}: the log "
                "was changed; run the access log verification"
            )
        return {
            "format": PROOF_FORMAT,
            "origin": self.origin,
            "leaf_index": index,
            "tree_size": checkpoint.size,
            "root": _b64(checkpoint.root),
            "entry": entry,
            "leaf_hash": hashes[index].hex(),
            "audit_path": [node.hex() for node in path],
            "checkpoint": note,
            "verifier_key": verifier_key(self.origin, self.public_key),
            "signing_key_id": self.signing_key_id,
            "how_to_verify": (
                "1. leaf_hash = SHA-256(0x00 || entry as UTF-8). "
                "2. Fold audit_path into leaf_hash per RFC 9162 section 2.1.3.2 with "
                "node = SHA-256(0x01 || left || right); the result must equal root. "
                "3. root must be line 3 (base64) and tree_size line 2 of checkpoint, whose "
                "Ed25519 signature (C2SP signed-note) verifies with verifier_key."
            ),
        }

    # -- verification -------------------------------------------------------------------------

    def verify(self, anchored_notes: list[str] | None = None) -> VerifyResult:
        """Check the whole log (see ``custos.access.log_verify``); reports, never raises."""
        return LogVerifier(self.engine, self.origin, self.public_key).verify(anchored_notes)


class _FastInsert:
    """The INSERT into access_log compiled once for a dialect and fed plain parameters
    (tuples for SQLite's ``?``, dicts for psycopg's named ``%(name)s``) on the DBAPI cursor.

    Why not ``conn.execute(insert(...), rows)``: SQLAlchemy's per-row parameter handling
    costs more than SQLite's own insert at 10,000 rows a batch, and the log must keep up
    with every read in the company. The timestamp still goes through the column type's own
    bind processor (SQLite's DATETIME text), so rows read back exactly as ORM-written ones.
    """

    COLUMNS = ("idx", "logged_at", *ENTRY_FIELDS[1:], "entry", "leaf_hash")

    def __init__(self, dialect: Any) -> None:
        names = tuple(column.name for column in _LOG.c)
        if names != self.COLUMNS:
            raise ConfigError(f"access_log columns changed to {names}; update _FastInsert")
        compiled = insert(_LOG).compile(dialect=dialect, column_keys=list(names))
        if compiled.positional and tuple(compiled.positiontup) != names:
            raise ConfigError("access_log insert: unexpected parameter order")
        self.sql = str(compiled)
        self._names = None if compiled.positional else names
        self._stamp = _timestamp_parameter(dialect)

    def row(self, idx: int, entry: dict[str, Any]) -> tuple | dict:
        """Parameters of one row: the columns, the canonical entry and its leaf hash."""
        canonical = canonical_entry(idx, entry)
        values = (
            idx,
            self._stamp(entry["logged_at"]),
            entry["staff_id"],
            entry["department_id"],
            entry["action"],
            entry["purpose"],
            entry["customer_id"],
            ";".join(entry["categories"]),
            entry["decision"],
            entry["reason"],
            canonical,
            leaf_hash(canonical.encode("utf-8")),
        )
        return values if self._names is None else dict(zip(self._names, values, strict=True))


def _timestamp_parameter(dialect: Any) -> Any:
    """How a naive UTC datetime is passed for ``logged_at`` on this dialect.

    PostgreSQL's driver takes the datetime. SQLite stores the DATETIME column's text form;
    when that is exactly ``isoformat(" ", "microseconds")`` (checked here, on the dialect in
    use) the C method is used instead of the type's Python formatter, at half the cost.
    """
    processor = _LOG.c.logged_at.type.dialect_impl(dialect).bind_processor(dialect)
    if processor is None:
        return lambda moment: moment
    probes = (datetime(2026, 1, 2, 3, 4, 5, 60708), datetime(1999, 12, 31, 23, 59, 59))
    if all(processor(p) == p.isoformat(" ", "microseconds") for p in probes):
        return operator.methodcaller("isoformat", " ", "microseconds")
    return processor


def _size(conn: Connection) -> int:
    last = conn.scalar(select(func.max(_LOG.c.idx)))
    return 0 if last is None else last + 1


def _leaf_hashes(conn: Connection, size: int) -> Iterator[bytes]:
    """Stored leaf hashes of entries 0..size-1 in order; AccessLogError at a gap."""
    query = select(_LOG.c.idx, _LOG.c.leaf_hash).where(_LOG.c.idx < size).order_by(_LOG.c.idx)
    expected = 0
    for idx, hash_ in conn.execution_options(yield_per=_STREAM_ROWS).execute(query):
        if idx != expected:
            raise AccessLogError(
                f"access log entry {expected} is missing (deleted); run the access log verification"
            )
        expected += 1
        yield hash_
    if expected != size:
        raise AccessLogError(f"access log entries {expected}..{size - 1} are missing")


def anchored_notes(store: Any, prefix: str = "") -> list[str]:
    """Every anchored checkpoint note in an evidence store (for :meth:`AccessLog.verify`)."""
    suffix = f"/{ANCHOR_TASK_ID}/{CHECKPOINT_ARTIFACT}"
    return [
        store.read_bytes(key).decode("utf-8")
        for key in store.list_keys(prefix)
        if key.endswith(suffix)
    ]
