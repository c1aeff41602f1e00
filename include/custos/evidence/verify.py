"""Verification an auditor can trust: signatures, hashes, and nothing added or taken away.

Problem kinds: ``unsealed`` (no manifest), ``bad_signature`` (manifest.sig missing or not valid
for the manifest bytes), ``bad_manifest`` (signed fields contradict the folder, e.g. a run copied
into another period), ``missing``, ``altered`` (hash or size), ``unexpected`` (not listed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from custos.errors import EvidenceError
from custos.evidence.layout import (
    MANIFEST_NAME,
    RUN_CONTROL_FILES,
    SIGNATURE_NAME,
    RunFiles,
    StrayObject,
    public_key_key,
    sanitise_run_id,
    scan_store,
    validate_key_id,
    validate_period,
)
from custos.evidence.manifest import (
    MANIFEST_FORMAT,
    decode_b64_text,
    hash_object,
    parse_json_object,
    signature_valid,
)
from custos.evidence.store import EvidenceStore, validate_key

PROBLEM_KINDS = ("unsealed", "bad_signature", "bad_manifest", "missing", "altered", "unexpected")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_store`.

    ``key_sources`` maps each signing key id met to where its public key came from: ``pinned``
    (given by the caller, proves who signed) or ``store:_keys/<id>.pub`` (read from the store
    itself, which only proves the manifests are consistent with the key stored beside them).
    """

    store_url: str
    period: str | None
    runs_checked: int = 0
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    key_sources: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, path: str, detail: str) -> None:
        self.problems.append(Problem(kind, path, detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "store_url": self.store_url,
            "period": self.period,
            "runs_checked": self.runs_checked,
            "files_checked": self.files_checked,
            "key_sources": dict(sorted(self.key_sources.items())),
            "problems": [p.to_dict() for p in self.problems],
        }


def verify_store(
    store: EvidenceStore,
    period: str | None = None,
    public_keys: Mapping[str, bytes] | None = None,
) -> VerifyReport:
    """Check every run in scope (the whole store, or one period).

    ``public_keys`` maps key id to a raw 32-byte Ed25519 public key the caller trusts. When
    given, only those keys are accepted: a key published in the store is ignored, because
    whoever can rewrite a manifest can rewrite the key beside it.
    """
    if period is not None:
        validate_period(period)
    pinned = _check_pinned(public_keys)
    report = VerifyReport(store_url=store.url, period=period)
    for item in scan_store(store, period):
        if isinstance(item, StrayObject):
            report.add(
                "unexpected",
                item.key,
                "not inside a run folder <period>/<dag_id>/<run_id>/ and not a published key",
            )
        else:
            _verify_run(store, item, pinned, report)
    return report


def _check_pinned(public_keys: Mapping[str, bytes] | None) -> dict[str, bytes] | None:
    if public_keys is None:
        return None
    for key_id, raw in public_keys.items():
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise EvidenceError(f"pinned public key {key_id!r} must be 32 raw bytes (Ed25519)")
    return dict(public_keys)


def _verify_run(
    store: EvidenceStore, run: RunFiles, pinned: dict[str, bytes] | None, report: VerifyReport
) -> None:
    report.runs_checked += 1
    actual = dict(run.files)
    manifest_key = f"{run.prefix}/{MANIFEST_NAME}"
    if MANIFEST_NAME not in actual:
        detail = f"no {MANIFEST_NAME}: the run was never sealed"
        if SIGNATURE_NAME in actual:
            detail += f" ({SIGNATURE_NAME} is present, so the manifest may have been deleted)"
        report.add("unsealed", run.prefix, detail)
        return
    body = store.read_bytes(manifest_key)
    try:
        manifest = parse_json_object(body, manifest_key)
    except EvidenceError as exc:
        report.add("bad_signature", manifest_key, f"{exc}, so it cannot be the signed manifest")
        return
    _check_signature(store, run, body, manifest, pinned, report)
    _check_fields(run, manifest, report)
    _check_files(store, run, actual, manifest, report)


def _check_signature(
    store: EvidenceStore,
    run: RunFiles,
    body: bytes,
    manifest: dict[str, Any],
    pinned: dict[str, bytes] | None,
    report: VerifyReport,
) -> None:
    manifest_key = f"{run.prefix}/{MANIFEST_NAME}"
    sig_key = f"{run.prefix}/{SIGNATURE_NAME}"
    key_id = manifest.get("signing_key_id")
    try:
        validate_key_id(key_id)
    except EvidenceError as exc:
        report.add("bad_signature", manifest_key, str(exc))
        return
    if not store.exists(sig_key):
        report.add("bad_signature", sig_key, f"{SIGNATURE_NAME} is missing")
        return
    if pinned is not None:
        if key_id not in pinned:
            report.add(
                "bad_signature",
                manifest_key,
                f"signed with key id {key_id!r}, which is not among the pinned keys "
                f"({', '.join(sorted(pinned)) or 'none'})",
            )
            return
        raw, source = pinned[key_id], "pinned"
    else:
        pub_key = public_key_key(key_id)
        source = f"store:{pub_key}"
        try:
            raw = decode_b64_text(store.read_bytes(pub_key), pub_key)
        except EvidenceError as exc:
            report.add("bad_signature", manifest_key, f"public key {pub_key} unusable: {exc}")
            return
    report.key_sources[key_id] = source
    if not signature_valid(body, store.read_bytes(sig_key), raw):
        report.add(
            "bad_signature",
            manifest_key,
            f"{SIGNATURE_NAME} does not verify over {MANIFEST_NAME} with key {key_id!r} "
            f"({source}): the manifest or signature was changed",
        )


def _check_fields(run: RunFiles, manifest: dict[str, Any], report: VerifyReport) -> None:
    """Signed fields must agree with where the run sits: catches runs moved or copied."""
    manifest_key = f"{run.prefix}/{MANIFEST_NAME}"
    if manifest.get("format") != MANIFEST_FORMAT:
        report.add("bad_manifest", manifest_key, f"format is not {MANIFEST_FORMAT!r}")
    for name, folder in (("period", run.period), ("dag_id", run.dag_id)):
        if manifest.get(name) != folder:
            report.add(
                "bad_manifest",
                manifest_key,
                f"manifest {name} {manifest.get(name)!r} does not match folder {folder!r}",
            )
    run_id = manifest.get("run_id")
    try:
        folder_ok = sanitise_run_id(run_id) == run.run_folder
    except EvidenceError:
        folder_ok = False
    if not folder_ok:
        report.add(
            "bad_manifest",
            manifest_key,
            f"manifest run_id {run_id!r} does not match folder {run.run_folder!r}",
        )


def _check_files(
    store: EvidenceStore,
    run: RunFiles,
    actual: dict[str, int],
    manifest: dict[str, Any],
    report: VerifyReport,
) -> None:
    manifest_key = f"{run.prefix}/{MANIFEST_NAME}"
    files = manifest.get("files")
    if not isinstance(files, list):
        report.add("bad_manifest", manifest_key, "files is not a list")
        files = []
    listed: set[str] = set()
    for position, entry in enumerate(files):
        rel = _entry_path(entry, listed)
        if rel is None:
            report.add("bad_manifest", manifest_key, f"files[{position}] is malformed or repeated")
            continue
        listed.add(rel)
        report.files_checked += 1
        _check_file(store, f"{run.prefix}/{rel}", actual.get(rel), entry, report)
    for rel in sorted(actual.keys() - listed - RUN_CONTROL_FILES):
        report.add("unexpected", f"{run.prefix}/{rel}", f"not listed in {MANIFEST_NAME}")


def _entry_path(entry: Any, seen: set[str]) -> str | None:
    """The entry's path if the entry is well formed and not a repeat, else None."""
    if not isinstance(entry, dict):
        return None
    rel, sha, size = entry.get("path"), entry.get("sha256"), entry.get("size")
    if not isinstance(rel, str) or rel in seen or rel in RUN_CONTROL_FILES:
        return None
    if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    try:
        validate_key(rel)
    except EvidenceError:
        return None
    return rel


def _check_file(
    store: EvidenceStore, key: str, actual_size: int | None, entry: dict, report: VerifyReport
) -> None:
    if actual_size is None:
        report.add("missing", key, f"listed in {MANIFEST_NAME} but not in the store")
        return
    if actual_size != entry["size"]:
        report.add("altered", key, f"size is {actual_size} bytes, manifest says {entry['size']}")
        return
    try:
        sha256, _ = hash_object(store, key)
    except EvidenceError:
        report.add("missing", key, "disappeared while being verified")
        return
    if sha256 != entry["sha256"]:
        report.add("altered", key, f"sha256 is {sha256}, manifest says {entry['sha256']}")
