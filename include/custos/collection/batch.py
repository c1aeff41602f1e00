"""A landing batch on disk: its files, their hashes, and the destruction of the landing copy.

A batch is a folder under the landing root whose name is the batch id. The content hash
(SHA-256 over each file's name, size and SHA-256, in name order) identifies the batch: the
same content is never ingested twice, whatever the folder is called the second time.

A folder is *ready* for the scheduled ingest once it holds the marker file ``_READY``
(written last by the exporter, so a half-uploaded batch is never read); ``custos ingest``
on an explicit path does not need it. The marker is not part of the content.

File names are metadata chosen by the exporting platform. Names that follow the landing
contract (``<kind>[-suffix].csv|jsonl``) are kept as they are; any other name could be
anything (even a person's name), so it is recorded only as ``file-<sha256 prefix>``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from custos.collection.contract import kind_of
from custos.errors import InputError

READY_MARKER = "_READY"
BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class LandedFile:
    path: Path
    safe_name: str  # the name as recorded in the vault and evidence (see module doc)
    size: int
    sha256: str
    kind: str | None  # None: not a landing file kind (held whole)
    format: str | None

    def describe(self) -> dict:
        return {
            "file": self.safe_name,
            "kind": self.kind,
            "bytes": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class LandedBatch:
    batch_id: str
    path: Path
    files: tuple[LandedFile, ...]
    content_sha256: str


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def scan_batch(path: str | Path) -> LandedBatch:
    """Read a batch folder's file list and hashes; refuse (InputError) what is not a batch."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"batch {folder}: not a folder (a batch is a folder of landing files)")
    if not BATCH_ID.match(folder.name):
        raise InputError(
            f"batch {folder}: the folder name is the batch id and must match "
            f"{BATCH_ID.pattern} (letters, digits, '.', '_', '-'; at most 64)"
        )
    files: list[LandedFile] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name == READY_MARKER:
            continue
        if entry.is_symlink() or not entry.is_file():
            raise InputError(
                f"batch {folder.name}: holds something that is not a plain file "
                "(a folder or link); a batch holds landing files only. Nothing was read."
            )
        sha = _sha256(entry)
        known = kind_of(entry.name)
        files.append(
            LandedFile(
                path=entry,
                safe_name=entry.name if known else f"file-{sha[:12]}",
                size=entry.stat().st_size,
                sha256=sha,
                kind=known[0] if known else None,
                format=known[1] if known else None,
            )
        )
    if not files:
        raise InputError(f"batch {folder.name}: the folder holds no files")
    content = hashlib.sha256()
    for f in files:
        content.update(f"{f.path.name}\0{f.size}\0{f.sha256}\n".encode("utf-8", "surrogatepass"))
    return LandedBatch(folder.name, folder, tuple(files), content.hexdigest())


def ready_batches(root: Path) -> list[Path]:
    """Batch folders under the landing root that carry the ready marker, oldest first."""
    if not root.is_dir():
        return []
    ready = [p for p in root.iterdir() if p.is_dir() and (p / READY_MARKER).is_file()]
    return sorted(ready, key=lambda p: ((p / READY_MARKER).stat().st_mtime, p.name))


def destroy_landing_copy(batch: LandedBatch) -> dict:
    """Delete the landing copy (Art. 12: no copies outside the vault) and say what went.

    Each file is overwritten with zeros before it is unlinked (best effort: on copy-on-write
    or journalled file systems the old blocks may survive; the vault's encryption is the real
    protection). A file that changed since it was hashed is not deleted: the record says so
    and the batch must be ingested again.
    """
    destroyed, changed = [], []
    for f in batch.files:
        if not f.path.exists():
            destroyed.append({**f.describe(), "destroyed_at": None, "note": "already gone"})
            continue
        if f.path.stat().st_size != f.size or _sha256(f.path) != f.sha256:
            changed.append(f.safe_name)
            continue
        with f.path.open("r+b") as handle:
            remaining = f.size
            zeros = bytes(min(_HASH_CHUNK, max(remaining, 1)))
            while remaining > 0:
                handle.write(zeros[: min(remaining, len(zeros))])
                remaining -= min(remaining, len(zeros))
            handle.flush()
            os.fsync(handle.fileno())
        f.path.unlink()
        destroyed.append(
            {**f.describe(), "destroyed_at": datetime.now(UTC).isoformat(timespec="seconds")}
        )
    marker = batch.path / READY_MARKER
    if not changed:
        marker.unlink(missing_ok=True)
        try:
            batch.path.rmdir()
        except OSError:
            pass  # something new landed in the folder meanwhile: leave it for the next run
    return {
        "batch": batch.batch_id,
        "content_sha256": batch.content_sha256,
        "files": destroyed,
        "changed_since_hashed": changed,
        "folder_removed": not batch.path.exists(),
    }
