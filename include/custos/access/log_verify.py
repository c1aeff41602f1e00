"""Verifying the access log: re-hash every entry, rebuild the Merkle tree in one streaming
pass, and compare it with every stored and anchored signed checkpoint.

Kept apart from ``custos.access.log`` (which writes) because it is the auditor's side: it
only reads, reports every problem it finds instead of raising, and caps the report so a
log with a million edited rows still answers briefly.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, select

from custos.access.checkpoint import CheckpointError, parse_and_verify
from custos.access.log_models import ENTRY_FIELDS, AccessCheckpoint, AccessLogEntry, parse_entry
from custos.access.merkle import CompactTree, leaf_hash

_STREAM_ROWS = 20_000
_PROBLEMS_PER_KIND = 20
_COLUMNS = ENTRY_FIELDS
_LOG = AccessLogEntry.__table__
_CHECKPOINTS = AccessCheckpoint.__table__


@dataclass
class VerifyResult:
    """Outcome of :meth:`AccessLog.verify`. ``size`` and ``root`` describe the entries as
    they are now (re-hashed from their text), whether or not they are intact."""

    ok: bool
    problems: list[str]
    size: int
    root: bytes
    checkpoints_checked: int = 0
    anchored_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "checkpoints_checked": self.checkpoints_checked,
            "anchored_checked": self.anchored_checked,
        }


@dataclass
class _Problems:
    """Problems by kind, capped so a log with a million edited rows still reports briefly."""

    items: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= _PROBLEMS_PER_KIND:
            self.items.append(message)

    def report(self) -> list[str]:
        more = [
            f"... and {count - _PROBLEMS_PER_KIND} more problem(s) of kind '{kind}'"
            for kind, count in self.counts.items()
            if count > _PROBLEMS_PER_KIND
        ]
        return self.items + more


class LogVerifier:
    """Reads the log of ``engine`` and checks it against signatures by ``public_key``."""

    def __init__(self, engine: Engine, origin: str, public_key: Ed25519PublicKey) -> None:
        self.engine, self.origin, self.public_key = engine, origin, public_key

    def verify(self, anchored_notes: list[str] | None = None) -> VerifyResult:
        """Check the whole log; never raises for what it finds, it reports.

        - every entry re-hashed and compared with its stored leaf hash and its columns;
        - indexes contiguous from 0 and each entry at the index it was written for;
        - every stored checkpoint's signature, and its root against the root of that many
          current entries;
        - every ``anchored_notes`` copy (read from the evidence store by the caller): its
          signature, its presence among the stored checkpoints, and its root against the
          current entries, which catches history rewritten and re-signed after it.
        """
        problems = _Problems()
        expected: dict[int, list[tuple[str, bytes]]] = {}
        with self.engine.connect() as conn:
            stored = self._stored_checkpoints(conn, problems, expected)
            anchored = self._anchored_checkpoints(anchored_notes or [], stored, problems, expected)
            tree = self._scan_entries(conn, problems, expected)
        for size in sorted(s for s in expected if s > tree.size):
            for label, _root in expected[size]:
                problems.add(
                    "truncated",
                    f"{label} covers {size} entries but the log has only {tree.size}: entries "
                    f"{tree.size}..{size - 1} were deleted (log truncated)",
                )
        report = problems.report()
        return VerifyResult(
            ok=not report,
            problems=report,
            size=tree.size,
            root=tree.root(),
            checkpoints_checked=len(stored),
            anchored_checked=anchored,
        )

    def _stored_checkpoints(
        self, conn: Connection, problems: _Problems, expected: dict[int, list]
    ) -> dict[int, bytes]:
        """Verify the stored checkpoints' signatures; return {size: signed root}."""
        roots: dict[int, bytes] = {}
        rows = conn.execute(
            select(_CHECKPOINTS.c.size, _CHECKPOINTS.c.root, _CHECKPOINTS.c.signed_note).order_by(
                _CHECKPOINTS.c.size
            )
        )
        for size, root, note in rows:
            try:
                checkpoint = parse_and_verify(
                    note, self.origin, self.public_key, origin=self.origin
                )
            except CheckpointError as exc:
                problems.add("signature", f"stored checkpoint {size}: {exc}")
                continue
            if (checkpoint.size, checkpoint.root) != (size, root):
                problems.add(
                    "checkpoint",
                    f"stored checkpoint {size}: its size/root columns disagree with its signed "
                    "note",
                )
            roots[checkpoint.size] = checkpoint.root
            expected.setdefault(checkpoint.size, []).append(
                (f"stored checkpoint {checkpoint.size}", checkpoint.root)
            )
        return roots

    def _anchored_checkpoints(
        self,
        notes: list[str],
        stored: dict[int, bytes],
        problems: _Problems,
        expected: dict[int, list],
    ) -> int:
        checked = 0
        for number, note in enumerate(notes, start=1):
            try:
                checkpoint = parse_and_verify(
                    note, self.origin, self.public_key, origin=self.origin
                )
            except CheckpointError as exc:
                problems.add("anchored", f"anchored checkpoint #{number}: {exc}")
                continue
            checked += 1
            label = f"anchored checkpoint {checkpoint.size}"
            if checkpoint.size not in stored:
                problems.add(
                    "anchored",
                    f"{label} is missing from the vault's access_checkpoints (deleted or "
                    "replaced there)",
                )
            elif stored[checkpoint.size] != checkpoint.root:
                problems.add(
                    "anchored",
                    f"{label} has a different root from the vault's checkpoint {checkpoint.size}"
                    ": the vault's checkpoints were re-signed (history rewritten)",
                )
            expected.setdefault(checkpoint.size, []).append((label, checkpoint.root))
        return checked

    def _scan_entries(
        self, conn: Connection, problems: _Problems, expected: dict[int, list]
    ) -> CompactTree:
        """Stream every entry in index order: re-hash, cross-check, build the tree, and
        compare its root with every expected root as the tree reaches that size."""
        tree, next_idx = CompactTree(), 0
        query = select(_LOG.c.idx, _LOG.c.entry, _LOG.c.leaf_hash, *[_LOG.c[c] for c in _COLUMNS])
        rows = conn.execution_options(yield_per=_STREAM_ROWS).execute(query.order_by(_LOG.c.idx))
        for idx, entry, stored_hash, *columns in rows:
            if idx != next_idx:
                problems.add(
                    "deleted",
                    f"entries {next_idx}..{idx - 1} are missing (deleted)"
                    if idx > next_idx
                    else f"entry index {idx} is out of order",
                )
            next_idx = idx + 1
            data = entry.encode("utf-8")
            actual_hash = leaf_hash(data)
            if actual_hash != stored_hash:
                problems.add("edited", f"entry {idx}: its text no longer matches its leaf hash")
            self._check_entry(idx, entry, columns, problems)
            tree.append(actual_hash)
            if tree.size in expected:
                self._compare_root(tree, expected[tree.size], problems)
        return tree

    @staticmethod
    def _check_entry(idx: int, entry: str, columns: list[Any], problems: _Problems) -> None:
        try:
            written_idx, values = parse_entry(entry)
        except ValueError as exc:
            problems.add("edited", f"entry {idx}: not a valid access log entry ({exc})")
            return
        if written_idx != idx:
            problems.add(
                "moved",
                f"entry {idx}: holds the entry written at index {written_idx} (entries "
                "reordered, inserted or deleted)",
            )
        if tuple(values.values()) != tuple(columns):
            changed = [
                name for name, value in zip(_COLUMNS, columns, strict=True) if values[name] != value
            ]
            problems.add(
                "edited",
                f"entry {idx}: column(s) {', '.join(changed)} disagree with the hashed entry",
            )

    @staticmethod
    def _compare_root(tree: CompactTree, wanted: list[tuple[str, bytes]], problems: _Problems):
        root = tree.root()
        for label, signed_root in wanted:
            if root != signed_root:
                problems.add(
                    "root",
                    f"{label}: the first {tree.size} entries no longer have the signed root "
                    "(entries edited, inserted, deleted or reordered, or history rewritten)",
                )
