"""Writing one DAG run's evidence and sealing it with a signed manifest.

Each task records its artifacts in its own ``<task_id>/_artifacts.json`` so parallel tasks never
write the same object; the seal task then hashes everything under the run folder into
``manifest.json`` and signs it. Once ``manifest.json`` exists the run is immutable.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custos.errors import EvidenceError
from custos.evidence.layout import (
    ARTIFACTS_INDEX_NAME,
    MANIFEST_NAME,
    RUN_CONTROL_FILES,
    SIGNATURE_NAME,
    RunRef,
    public_key_key,
    validate_id,
    validate_key_id,
)
from custos.evidence.manifest import (
    ARTIFACTS_INDEX_FORMAT,
    MANIFEST_FORMAT,
    canonical_json,
    describe_changes,
    encode_b64_text,
    guess_media_type,
    hash_object,
    parse_json_object,
    public_key_raw,
    sign,
    signature_valid,
    utc_now_iso,
)
from custos.evidence.store import EvidenceStore, validate_key
from custos.evidence.tags import artifact_name, index_controls, tag_list


class EvidenceRun:
    """The evidence folder of one DAG run: ``<period>/<dag_id>/<run_id, sanitised>``."""

    def __init__(self, store: EvidenceStore, ref: RunRef) -> None:
        self.store = store
        self.ref = ref

    def __repr__(self) -> str:
        return f"EvidenceRun({self.store.url!r}, {self.ref.prefix!r})"

    @property
    def prefix(self) -> str:
        return self.ref.prefix

    def _key(self, relative: str) -> str:
        return validate_key(f"{self.prefix}/{relative}")

    @property
    def sealed(self) -> bool:
        """A run is sealed once ``manifest.json`` exists (it is written last when sealing)."""
        return self.store.exists(self._key(MANIFEST_NAME))

    # -- writing -----------------------------------------------------------------------------

    def write_artifact(
        self,
        task_id: str,
        name: str,
        data: bytes | str,
        *,
        controls: list[str],
        articles: list[str],
        media_type: str | None = None,
    ) -> dict[str, Any]:
        """Write ``<prefix>/<task_id>/<name>`` and record it in the task's artifact index.

        Idempotent: a task retry that writes the same name replaces the file and its entry.
        Returns the index entry.
        """
        validate_id(task_id, "task id")
        artifact_name(name)
        entry_tags = {
            "controls": tag_list(controls, "controls", name, require=True),
            "articles": tag_list(articles, "articles", name),
        }
        if media_type is not None and (not isinstance(media_type, str) or "/" not in media_type):
            raise EvidenceError(
                f"artifact {name!r}: media_type {media_type!r} is not a type/subtype"
            )
        payload = data.encode("utf-8") if isinstance(data, str) else data
        if not isinstance(payload, bytes):
            raise EvidenceError(f"artifact {name!r}: data must be bytes or str")
        self._refuse_if_sealed(f"write artifact {task_id}/{name}")
        index = self._load_index(task_id)

        self.store.write_bytes(self._key(f"{task_id}/{name}"), payload)
        # The file goes first, the index second: a crash in between leaves a file the retry
        # overwrites, never an index entry pointing at nothing.
        entry = {
            "name": name,
            **entry_tags,
            "media_type": media_type or guess_media_type(name),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
            "written_at": utc_now_iso(),
        }
        others = [item for item in index["artifacts"] if item.get("name") != name]
        index["artifacts"] = sorted([*others, entry], key=lambda item: str(item.get("name")))
        self.store.write_bytes(
            self._key(f"{task_id}/{ARTIFACTS_INDEX_NAME}"), canonical_json(index)
        )
        return entry

    def read_artifact(self, task_id: str, name: str) -> bytes:
        validate_id(task_id, "task id")
        return self.store.read_bytes(self._key(f"{task_id}/{artifact_name(name)}"))

    def artifacts(self, task_id: str) -> list[dict[str, Any]]:
        """The entries recorded for one task (empty if the task wrote nothing)."""
        return list(self._load_index(validate_id(task_id, "task id"))["artifacts"])

    def _refuse_if_sealed(self, action: str) -> None:
        if self.sealed:
            raise EvidenceError(
                f"cannot {action}: run {self.prefix} is sealed ({MANIFEST_NAME} exists) and a "
                "sealed run is immutable; write to a new run instead"
            )

    def _load_index(self, task_id: str) -> dict[str, Any]:
        key = self._key(f"{task_id}/{ARTIFACTS_INDEX_NAME}")
        if not self.store.exists(key):
            return {
                "format": ARTIFACTS_INDEX_FORMAT,
                "period": self.ref.period,
                "dag_id": self.ref.dag_id,
                "run_id": self.ref.run_id,
                "task_id": task_id,
                "artifacts": [],
            }
        index = parse_json_object(self.store.read_bytes(key), key)
        self._check_index(key, index)
        return index

    def _check_index(self, key: str, index: dict[str, Any]) -> None:
        if index.get("format") != ARTIFACTS_INDEX_FORMAT or not isinstance(
            index.get("artifacts"), list
        ):
            raise EvidenceError(f"{key} is not a {ARTIFACTS_INDEX_FORMAT} document")
        # Two run ids can sanitise to one folder name; never mix their evidence.
        if index.get("run_id") != self.ref.run_id:
            raise EvidenceError(
                f"run folder {self.prefix} already holds evidence of run id "
                f"{index.get('run_id')!r}, not {self.ref.run_id!r} (their folder names clash)"
            )

    # -- sealing -----------------------------------------------------------------------------

    def seal(
        self,
        *,
        signing_key: Ed25519PrivateKey,
        key_id: str,
        code_version: str,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Hash every file of the run into a signed ``manifest.json``; return the manifest.

        Write order is key, signature, manifest: ``manifest.json`` is the commit point, so a
        crash before it leaves an unsealed run that a retry seals cleanly. Sealing again with
        identical content returns the existing manifest; anything else is refused.
        """
        validate_key_id(key_id)
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise EvidenceError(f"run {self.prefix}: signing_key must be an Ed25519PrivateKey")
        if not isinstance(code_version, str) or not code_version.strip():
            raise EvidenceError(f"run {self.prefix}: code_version must be a non-empty string")
        if extra is not None and not isinstance(extra, dict):
            raise EvidenceError(f"run {self.prefix}: extra must be a dict or None")

        manifest = {
            "format": MANIFEST_FORMAT,
            "period": self.ref.period,
            "dag_id": self.ref.dag_id,
            "run_id": self.ref.run_id,
            "sealed_at": utc_now_iso(),
            "code_version": code_version,
            "signing_key_id": key_id,
            "extra": extra or {},
            "files": self._file_entries(),
        }
        body = canonical_json(manifest)  # fails early if extra is not JSON
        manifest_key = self._key(MANIFEST_NAME)
        if self.store.exists(manifest_key):
            return self._existing_seal(manifest, signing_key)

        self._publish_key(key_id, public_key_raw(signing_key))
        self.store.write_bytes(self._key(SIGNATURE_NAME), sign(body, signing_key))
        self.store.write_bytes(manifest_key, body)
        return manifest

    def manifest(self) -> dict[str, Any] | None:
        """The sealed manifest, or None if the run is not sealed. (Not verified: see verify.)"""
        key = self._key(MANIFEST_NAME)
        if not self.store.exists(key):
            return None
        return parse_json_object(self.store.read_bytes(key), key)

    def _file_entries(self) -> list[dict[str, Any]]:
        """Hash every file under the run; cross-check artifacts against their task index."""
        recorded: dict[str, dict[str, Any]] = {}
        listing = [
            (key[len(self.prefix) + 1 :], key) for key in self.store.list_keys(f"{self.prefix}/")
        ]
        for rel, key in listing:
            task_id, _, name = rel.partition("/")
            if name == ARTIFACTS_INDEX_NAME:
                index = parse_json_object(self.store.read_bytes(key), key)
                self._check_index(key, index)
                for item in index["artifacts"]:
                    recorded[f"{task_id}/{item.get('name')}"] = item

        entries = []
        for rel, key in listing:
            if rel in RUN_CONTROL_FILES:
                continue
            sha256, size = hash_object(self.store, key)
            task_id, _, name = rel.partition("/")
            item = recorded.pop(rel, None)
            if item is not None and (item.get("sha256"), item.get("size")) != (sha256, size):
                raise EvidenceError(
                    f"cannot seal run {self.prefix}: artifact {rel} changed after it was written "
                    f"(recorded sha256 {item.get('sha256')}, now {sha256}); re-run the task"
                )
            controls, articles = index_controls(item)
            entries.append(
                {
                    "path": rel,
                    "sha256": sha256,
                    "size": size,
                    "task_id": task_id if name else None,
                    "controls": controls,
                    "articles": articles,
                    "media_type": (item or {}).get("media_type") or guess_media_type(rel),
                }
            )
        if recorded:
            raise EvidenceError(
                f"cannot seal run {self.prefix}: artifacts recorded but missing: "
                f"{', '.join(sorted(recorded))}"
            )
        return entries

    def _existing_seal(
        self, fresh: dict[str, Any], signing_key: Ed25519PrivateKey
    ) -> dict[str, Any]:
        existing = self.manifest() or {}
        same = {k: v for k, v in existing.items() if k != "sealed_at"} == {
            k: v for k, v in fresh.items() if k != "sealed_at"
        }
        if not same:
            raise EvidenceError(
                f"run {self.prefix} is already sealed and a sealed run is immutable; sealing "
                f"again would change: {describe_changes(fresh, existing)}"
            )
        body = self.store.read_bytes(self._key(MANIFEST_NAME))
        sig_key = self._key(SIGNATURE_NAME)
        sig = self.store.read_bytes(sig_key) if self.store.exists(sig_key) else b""
        if not signature_valid(body, sig, public_key_raw(signing_key)):
            raise EvidenceError(
                f"run {self.prefix} is sealed but {SIGNATURE_NAME} is missing or does not match "
                f"key {existing.get('signing_key_id')!r}; run verification"
            )
        return existing

    def _publish_key(self, key_id: str, raw: bytes) -> None:
        """Publish the public key once; refuse a different key under an existing id."""
        key = public_key_key(key_id)
        text = encode_b64_text(raw)
        if not self.store.exists(key):
            self.store.write_bytes(key, text)
        elif self.store.read_bytes(key).strip() != text.strip():
            raise EvidenceError(
                f"signing key id {key_id!r} is already published at {key} with a different "
                "public key; use a new key id for a new key"
            )
