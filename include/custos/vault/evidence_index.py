"""The vault's record of sealed evidence runs, and the check of a store against it.

A manifest proves its own run is intact, but cannot reveal that a whole run was deleted.
The vault keeps one row per sealed run (prefix, manifest hash); verification compares the
store with it, so a deleted or replaced run is named like any missing or altered file.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from custos.vault.db import session_scope
from custos.vault.models import EvidenceRunRecord

MANIFEST = "manifest.json"


def record_sealed_run(engine: Engine, store, run, manifest: dict) -> None:
    """Idempotent: sealing is immutable, so a repeat records the same hash."""
    digest = hashlib.sha256(store.read_bytes(f"{run.prefix}/{MANIFEST}")).hexdigest()
    with session_scope(engine) as session:
        row = session.get(EvidenceRunRecord, run.prefix) or EvidenceRunRecord(prefix=run.prefix)
        row.period, row.dag_id, row.run_id = run.ref.period, run.ref.dag_id, run.ref.run_id
        row.manifest_sha256, row.file_count = digest, len(manifest["files"])
        row.sealed_at = row.sealed_at or datetime.now(UTC).replace(tzinfo=None)
        session.add(row)


def check_store_against_vault(engine: Engine, store, report, period: str | None = None) -> int:
    """Add a problem to ``report`` for each recorded run whose manifest is gone or changed.
    Returns how many recorded runs were compared."""
    query = select(EvidenceRunRecord)
    if period:
        query = query.where(EvidenceRunRecord.period == period)
    with session_scope(engine) as session:
        records = session.scalars(query.order_by(EvidenceRunRecord.prefix)).all()
    for record in records:
        key = f"{record.prefix}/{MANIFEST}"
        if not store.exists(key):
            report.add(
                "missing",
                key,
                f"run sealed on {record.sealed_at:%Y-%m-%d %H:%M} with {record.file_count} files "
                "is recorded in the vault but absent from the store (deleted run?)",
            )
        elif hashlib.sha256(store.read_bytes(key)).hexdigest() != record.manifest_sha256:
            report.add("altered", key, "manifest differs from the one recorded when sealed")
    return len(records)
