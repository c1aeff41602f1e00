"""Per-batch scratch space for the ingest: a private SQLite file, deleted when it ends.

The ingest reads files one after another, but the consent gate needs a customer's
consents (from the consents file) while reading the customers file, and orders need to
know what became of their customer. Keeping that in Python dicts would grow with the
batch; this keeps memory flat. Nothing in it is personal data in clear: customers and
consents are keyed by their blind indexes, and only gate facts (subject, channel,
purposes, dates, notice version) are kept. The folder is 0700 and removed on close.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from custos.collection import contract as c
from custos.collection.validate import Finding

_SCHEMA = """
CREATE TABLE consents (
    ext BLOB NOT NULL, file TEXT NOT NULL, ref BLOB NOT NULL, subject TEXT NOT NULL,
    channel TEXT NOT NULL, purposes TEXT NOT NULL, granted_at TEXT NOT NULL,
    withdrawn_at TEXT, notice TEXT NOT NULL, line INTEGER NOT NULL
);
CREATE INDEX consents_ext ON consents (ext);
CREATE TABLE outcomes (
    ext BLOB PRIMARY KEY, file TEXT NOT NULL, customer_id TEXT, purposes TEXT
) WITHOUT ROWID;
"""
_IN_CHUNK = 900  # bound parameters per IN (...) query, well under SQLite's limit


class SeenKeys:
    """DUPLICATE_IN_BATCH for a whole batch with flat memory.

    Same rule as :class:`custos.collection.validate.DuplicateTracker` (the first row with a
    key passes, every later one is a duplicate), but the keys — salted 16-byte BLAKE2b
    digests, never values — live in a scratch SQLite file instead of a Python set, which
    would grow by ~70 MB per million keys and stay for the whole batch.
    """

    def __init__(self, folder: Path) -> None:
        self._salt = secrets.token_bytes(16)
        self._db = sqlite3.connect(folder / "seen.db", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE seen (kind TEXT, key BLOB, PRIMARY KEY (kind, key)) WITHOUT ROWID;"
            "BEGIN;"  # never committed: scratch data, deleted with the folder
        )

    def check(self, kind: str, row: dict) -> Finding | None:
        key_field = c.BATCH_KEYS.get(kind)
        if key_field is None:
            return None
        key = row.get(key_field)
        if key is None or (isinstance(key, str) and not key.strip()):
            return None
        digest = hashlib.blake2b(
            str(key).strip().encode("utf-8", "surrogatepass"), digest_size=16, key=self._salt
        ).digest()
        inserted = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (kind, digest))
        return None if inserted.rowcount else Finding(c.DUPLICATE_IN_BATCH, key_field)

    def close(self) -> None:
        self._db.close()


class Staging:
    def __init__(self, parent: Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="custos-ingest-", dir=parent))
        self._db = sqlite3.connect(self._dir / "staging.db", isolation_level=None)
        self._db.executescript(
            # WAL: worker processes read staged consents while this one writes outcomes.
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA temp_store=MEMORY;" + _SCHEMA
        )
        self.seen = SeenKeys(self._dir)

    @property
    def path(self) -> Path:
        return self._dir / "staging.db"

    def close(self) -> None:
        self.seen.close()
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _select_in(self, sql: str, keys: Sequence[bytes]) -> Iterable[tuple]:
        for start in range(0, len(keys), _IN_CHUNK):
            part = keys[start : start + _IN_CHUNK]
            yield from self._db.execute(sql.format(",".join("?" * len(part))), part)

    # -- consents ---------------------------------------------------------------------------
    def add_consents(self, rows: Sequence[tuple]) -> None:
        """(ext, file, ref, subject, channel, purposes, granted_at, withdrawn_at, notice,
        line)."""
        with self._db:  # one transaction per call, not one commit per row (autocommit mode)
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO consents VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def consents_of(self, file: str, page: int) -> Iterable[list[tuple]]:
        """The file's staged consents in line order, ``page`` at a time:
        (line, ext, ref, subject, channel, purposes, granted_at, withdrawn_at, notice)."""
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT rowid, line, ext, ref, subject, channel, purposes, granted_at, "
                "withdrawn_at, notice FROM consents WHERE file = ? AND rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (file, last, page),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[1:] for r in rows]

    def consents_for(self, exts: Sequence[bytes]) -> dict[bytes, list[tuple]]:
        """ext → [(ref, subject, channel, purposes, granted_at, withdrawn_at, notice)]."""
        found: dict[bytes, list[tuple]] = {}
        sql = (
            "SELECT ext, ref, subject, channel, purposes, granted_at, withdrawn_at, notice "
            "FROM consents WHERE ext IN ({})"
        )
        for ext, *rest in self._select_in(sql, list(exts)):
            found.setdefault(ext, []).append(tuple(rest))
        return found

    def drop_consents_of(self, file: str) -> None:
        self._db.execute("DELETE FROM consents WHERE file = ?", (file,))

    # -- what became of the batch's customers ------------------------------------------------
    def add_outcomes(self, rows: Sequence[tuple]) -> None:
        """(ext, file, customer_id or None if quarantined, ';'-purposes or None).

        An accepted row of an external id wins over any quarantined one (a duplicate after
        it, or an invalid row before it); otherwise the first row recorded stays."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO outcomes VALUES (?,?,?,?) ON CONFLICT (ext) DO UPDATE SET "
                "customer_id = excluded.customer_id, purposes = excluded.purposes, "
                "file = excluded.file "
                "WHERE excluded.customer_id IS NOT NULL AND outcomes.customer_id IS NULL",
                rows,
            )

    def outcomes_for(self, exts: Sequence[bytes]) -> dict[bytes, tuple[str | None, str | None]]:
        sql = "SELECT ext, customer_id, purposes FROM outcomes WHERE ext IN ({})"
        return {ext: (cid, purposes) for ext, cid, purposes in self._select_in(sql, list(exts))}

    def quarantine_outcomes_of(self, file: str) -> None:
        """The customers file was held whole: none of its customers was stored."""
        self._db.execute(
            "UPDATE outcomes SET customer_id = NULL, purposes = NULL WHERE file = ?", (file,)
        )
