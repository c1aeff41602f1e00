"""The evidence store: every duty's artifacts, sealed per run by a signed manifest.

Layout ``<period>/<dag_id>/<run_id, sanitised>/<task_id>/<artifact>``; see DESIGN.md
("Evidence is the product", "Evidence layout").
"""

from __future__ import annotations

from custos.evidence.catalog import RunSummary, list_runs
from custos.evidence.layout import (
    ARTIFACTS_INDEX_NAME,
    KEYS_DIR,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    RunRef,
    sanitise_run_id,
    validate_period,
)
from custos.evidence.manifest import MANIFEST_FORMAT, canonical_json, public_key_raw
from custos.evidence.run import EvidenceRun
from custos.evidence.store import (
    EvidenceStore,
    LocalFolderEvidenceStore,
    open_evidence_store,
    validate_key,
)
from custos.evidence.verify import PROBLEM_KINDS, Problem, VerifyReport, verify_store

__all__ = [
    "ARTIFACTS_INDEX_NAME",
    "KEYS_DIR",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "PROBLEM_KINDS",
    "SIGNATURE_NAME",
    "EvidenceRun",
    "EvidenceStore",
    "LocalFolderEvidenceStore",
    "Problem",
    "RunRef",
    "RunSummary",
    "VerifyReport",
    "canonical_json",
    "list_runs",
    "open_evidence_store",
    "public_key_raw",
    "sanitise_run_id",
    "validate_key",
    "validate_period",
    "verify_store",
]
