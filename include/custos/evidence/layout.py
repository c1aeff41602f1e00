"""The evidence layout: ``<period>/<dag_id>/<run_id, sanitised>/<task_id>/<artifact>``.

Names, validation and the scan that finds runs in a store live here so that writing
(:mod:`run`), listing (:mod:`catalog`) and verifying (:mod:`verify`) agree on one layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from custos.errors import EvidenceError
from custos.evidence.store import EvidenceStore, validate_prefix

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
ARTIFACTS_INDEX_NAME = "_artifacts.json"
KEYS_DIR = "_keys"
RUN_CONTROL_FILES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
"""Files at the run root that the manifest cannot list (it cannot hash itself)."""

PERIOD_FORMS = ("YYYY-MM (2026-10)", "YYYY-Qn (2026-Q3)", "YYYY-Hn (2026-H2)", "YYYY (2026)")
_PERIOD_RE = re.compile(r"\d{4}(-(0[1-9]|1[0-2])|-Q[1-4]|-H[12])?")
# Airflow ids are [A-Za-z0-9_.-]; we keep that set so ids map to folders unchanged.
_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}")
_KEY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_UNSAFE_RUN_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def validate_period(p: str) -> str:
    """Return ``p`` if it is a reporting period in one of the canonical forms.

    Only the canonical spelling is accepted (no ``2026-q3``, no ``2026-1``) because the period
    is a folder name: two spellings of one period would split its evidence in two.
    """
    if isinstance(p, str) and _PERIOD_RE.fullmatch(p):
        return p
    raise EvidenceError(f"period {p!r} is invalid: use one of {', '.join(PERIOD_FORMS)}")


def sanitise_run_id(run_id: str) -> str:
    """Map an Airflow run id to a folder/S3-safe name, deterministically and readably.

    Every character outside ``[A-Za-z0-9._-]`` becomes '_' (so
    ``manual__2026-11-01T00:00:00+00:00`` becomes ``manual__2026-11-01T00_00_00_00_00``), and
    leading dots become '_' so the result can never be '.', '..' or a hidden file. The mapping
    is not injective; the original id is recorded in the run's files and a clash is refused.
    """
    if not isinstance(run_id, str) or not run_id:
        raise EvidenceError(f"run id {run_id!r} is invalid: it must be a non-empty string")
    if len(run_id) > 250:
        raise EvidenceError(f"run id {run_id[:40]!r}... is invalid: longer than 250 characters")
    safe = _UNSAFE_RUN_CHARS.sub("_", run_id)
    stripped = safe.lstrip(".")
    return "_" * (len(safe) - len(stripped)) + stripped


def validate_id(value: str, what: str) -> str:
    """Return an Airflow dag/task id if it is usable as one folder name, else raise."""
    if isinstance(value, str) and _ID_RE.fullmatch(value) and value not in RUN_CONTROL_FILES:
        return value
    raise EvidenceError(
        f"{what} {value!r} is invalid: use 1-250 characters from A-Z a-z 0-9 _ . - "
        f"(not starting with '.' or '-', and not {' or '.join(sorted(RUN_CONTROL_FILES))})"
    )


def validate_key_id(key_id: str) -> str:
    """Signing key ids name the published key file ``_keys/<key_id>.pub``."""
    if isinstance(key_id, str) and _KEY_ID_RE.fullmatch(key_id):
        return key_id
    raise EvidenceError(
        f"signing key id {key_id!r} is invalid: use 1-128 characters from A-Z a-z 0-9 _ . - "
        "starting with a letter or digit"
    )


def public_key_key(key_id: str) -> str:
    """Store key of the published public key for ``key_id``."""
    return f"{KEYS_DIR}/{validate_key_id(key_id)}.pub"


@dataclass(frozen=True)
class RunRef:
    """Which run evidence belongs to. ``run_id`` is Airflow's original id."""

    period: str
    dag_id: str
    run_id: str

    def __post_init__(self) -> None:
        validate_period(self.period)
        validate_id(self.dag_id, "DAG id")
        sanitise_run_id(self.run_id)

    @property
    def prefix(self) -> str:
        return f"{self.period}/{self.dag_id}/{sanitise_run_id(self.run_id)}"


@dataclass(frozen=True)
class RunFiles:
    """One run folder found by a scan, with every object under it as ``(relative path, size)``."""

    period: str
    dag_id: str
    run_folder: str
    files: tuple[tuple[str, int], ...]

    @property
    def prefix(self) -> str:
        return f"{self.period}/{self.dag_id}/{self.run_folder}"


@dataclass(frozen=True)
class StrayObject:
    """An object in scope that is not inside any run folder (and is not a published key)."""

    key: str


def scan_store(store: EvidenceStore, period: str | None = None) -> Iterator[RunFiles | StrayObject]:
    """Group the store's objects into runs by the 3-level layout, streaming.

    Keys come sorted, and all keys sharing ``<period>/<dag>/<run>/`` are contiguous in sorted
    order, so memory is bounded by the largest run, not by the store.
    """
    prefix = f"{validate_period(period)}/" if period is not None else ""
    validate_prefix(prefix)
    current: tuple[str, str, str] | None = None
    files: list[tuple[str, int]] = []
    for key, size in store.iter_objects(prefix):
        parts = key.split("/", 3)
        if len(parts) < 4 or not _PERIOD_RE.fullmatch(parts[0]):
            if parts[0] != KEYS_DIR:
                yield StrayObject(key)
            continue
        run = (parts[0], parts[1], parts[2])
        if run != current:
            if current is not None:
                yield RunFiles(*current, files=tuple(files))
            current, files = run, []
        files.append((parts[3], size))
    if current is not None:
        yield RunFiles(*current, files=tuple(files))
