"""Browsing evidence: which runs exist for a period, sealed or not, and what they cover.

This reads what the store says; it does not prove anything. Proof is :func:`verify_store`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from custos.errors import EvidenceError
from custos.evidence.layout import (
    ARTIFACTS_INDEX_NAME,
    MANIFEST_NAME,
    RUN_CONTROL_FILES,
    RunFiles,
    scan_store,
)
from custos.evidence.manifest import parse_json_object
from custos.evidence.store import EvidenceStore


@dataclass(frozen=True)
class RunSummary:
    """One run folder. Counts exclude manifest.json/manifest.sig (what a manifest lists)."""

    period: str
    dag_id: str
    run_id: str
    prefix: str
    sealed: bool
    file_count: int
    total_bytes: int
    controls: tuple[str, ...]
    sealed_at: str | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["controls"] = list(self.controls)
        return data


def list_runs(store: EvidenceStore, period: str | None = None) -> list[RunSummary]:
    """Every run in the store (or in one period), sorted by prefix."""
    return [
        _summarise(store, item) for item in scan_store(store, period) if isinstance(item, RunFiles)
    ]


def _summarise(store: EvidenceStore, run: RunFiles) -> RunSummary:
    names = {rel for rel, _ in run.files}
    content = [(rel, size) for rel, size in run.files if rel not in RUN_CONTROL_FILES]
    sealed = MANIFEST_NAME in names
    if sealed:
        run_id, sealed_at, controls = _from_manifest(store, run)
    else:
        run_id, controls = _from_indexes(store, run)
        sealed_at = None
    return RunSummary(
        period=run.period,
        dag_id=run.dag_id,
        run_id=run_id,
        prefix=run.prefix,
        sealed=sealed,
        file_count=len(content),
        total_bytes=sum(size for _, size in content),
        controls=tuple(sorted(controls)),
        sealed_at=sealed_at,
    )


def _read(store: EvidenceStore, key: str) -> dict[str, Any] | None:
    """A JSON document or None: a damaged file must not stop the listing (verify reports it)."""
    try:
        return parse_json_object(store.read_bytes(key), key)
    except EvidenceError:
        return None


def _from_manifest(store: EvidenceStore, run: RunFiles) -> tuple[str, str | None, set[str]]:
    manifest = _read(store, f"{run.prefix}/{MANIFEST_NAME}") or {}
    controls: set[str] = set()
    for entry in manifest.get("files") or []:
        if isinstance(entry, dict):
            controls.update(c for c in entry.get("controls") or [] if isinstance(c, str))
    run_id = manifest.get("run_id")
    sealed_at = manifest.get("sealed_at")
    return (
        run_id if isinstance(run_id, str) else run.run_folder,
        sealed_at if isinstance(sealed_at, str) else None,
        controls,
    )


def _from_indexes(store: EvidenceStore, run: RunFiles) -> tuple[str, set[str]]:
    run_id = run.run_folder  # the sanitised name, until an index tells us the original
    controls: set[str] = set()
    for rel, _ in run.files:
        if rel.count("/") != 1 or not rel.endswith(f"/{ARTIFACTS_INDEX_NAME}"):
            continue
        index = _read(store, f"{run.prefix}/{rel}") or {}
        if isinstance(index.get("run_id"), str):
            run_id = index["run_id"]
        for item in index.get("artifacts") or []:
            if isinstance(item, dict):
                controls.update(c for c in item.get("controls") or [] if isinstance(c, str))
    return run_id, controls
