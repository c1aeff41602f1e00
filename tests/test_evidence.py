"""Evidence store: layout, sealing, and verification that catches every kind of tampering.

Each tamper test changes exactly one thing and asserts verification reports exactly that
problem on exactly that file, so a verifier that stopped checking would fail here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from custos.errors import EvidenceError
from custos.evidence import (
    EvidenceRun,
    LocalFolderEvidenceStore,
    Problem,
    RunRef,
    list_runs,
    open_evidence_store,
    public_key_raw,
    sanitise_run_id,
    validate_period,
    verify_store,
)

RUN_ID = "manual__2026-11-01T00:00:00+00:00"
RUN_FOLDER = "manual__2026-11-01T00_00_00_00_00"
PREFIX = f"2026-10/monthly_check/{RUN_FOLDER}"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def store(tmp_path: Path) -> LocalFolderEvidenceStore:
    return LocalFolderEvidenceStore(tmp_path / "evidence")


def _write_two_tasks(run: EvidenceRun) -> None:
    run.write_artifact(
        "count_customers",
        "counts.json",
        json.dumps({"customers": 42}),
        controls=["ART18-MONTHLY-CHECK"],
        articles=["Art. 18"],
    )
    run.write_artifact(
        "count_customers",
        "counts.csv",
        "category,count\nbasic,42\n",
        controls=["ART18-MONTHLY-CHECK"],
        articles=["Art. 18"],
    )
    run.write_artifact(
        "check_retention",
        "report.html",
        b"<html><body>ok</body></html>",
        controls=["ART16-DESTRUCTION-RECORD", "ART12-RETENTION"],
        articles=["Art. 12", "Art. 16"],
    )


@pytest.fixture
def sealed(store: LocalFolderEvidenceStore, key: Ed25519PrivateKey) -> EvidenceRun:
    run = EvidenceRun(store, RunRef("2026-10", "monthly_check", RUN_ID))
    _write_two_tasks(run)
    run.seal(signing_key=key, key_id="k1", code_version="abc123")
    return run


def _file(store: LocalFolderEvidenceStore, key: str) -> Path:
    return store.root / key


def _only_problem(report) -> Problem:
    assert not report.ok
    assert len(report.problems) == 1, report.problems
    return report.problems[0]


# -- store ------------------------------------------------------------------------------------


def test_store_round_trip_lists_sorted_keys_under_prefix(store: LocalFolderEvidenceStore) -> None:
    store.write_bytes("b/2.txt", b"two")
    store.write_bytes("a/1.txt", b"one")
    store.write_bytes("a/0/x.txt", b"x")
    store.write_bytes("ab.txt", b"ab")

    assert store.read_bytes("a/1.txt") == b"one"
    assert store.exists("b/2.txt") and not store.exists("b/3.txt")
    assert store.size("b/2.txt") == 3
    assert list(store.list_keys()) == ["a/0/x.txt", "a/1.txt", "ab.txt", "b/2.txt"]
    assert list(store.list_keys("a/")) == ["a/0/x.txt", "a/1.txt"]
    assert list(store.list_keys("a")) == ["a/0/x.txt", "a/1.txt", "ab.txt"]
    assert b"".join(store.iter_chunks("a/1.txt", chunk_size=1)) == b"one"


def test_store_overwrite_is_atomic_and_leaves_no_temp_files(
    store: LocalFolderEvidenceStore,
) -> None:
    store.write_bytes("a.txt", b"old")
    store.write_bytes("a.txt", b"new")
    assert store.read_bytes("a.txt") == b"new"
    assert list(store.list_keys()) == ["a.txt"]
    assert not any((store.root / ".custos-tmp").iterdir())


def test_store_root_is_created_on_first_write(tmp_path: Path) -> None:
    store = LocalFolderEvidenceStore(tmp_path / "not" / "yet")
    assert list(store.list_keys()) == []
    assert not (tmp_path / "not").exists()
    store.write_bytes("x", b"1")
    assert (tmp_path / "not" / "yet" / "x").read_bytes() == b"1"


@pytest.mark.parametrize(
    "bad", ["../x", "/abs", "a/../b", "a//b", "a\\b", "", "a/./b", "a/", ".custos-tmp/x"]
)
def test_store_rejects_unsafe_keys(store: LocalFolderEvidenceStore, bad: str) -> None:
    with pytest.raises(EvidenceError, match="invalid"):
        store.write_bytes(bad, b"x")
    with pytest.raises(EvidenceError, match="invalid"):
        store.read_bytes(bad)
    assert not (store.root.parent / "x").exists()


def test_reading_a_missing_item_names_it(store: LocalFolderEvidenceStore) -> None:
    with pytest.raises(EvidenceError, match="nope.json"):
        store.read_bytes("nope.json")


def test_open_evidence_store_accepts_file_url_and_plain_path(tmp_path: Path) -> None:
    by_url = open_evidence_store(f"file://{tmp_path}/ev")
    by_path = open_evidence_store(str(tmp_path / "ev"))
    assert isinstance(by_url, LocalFolderEvidenceStore)
    assert by_url.root == by_path.root == (tmp_path / "ev").resolve()
    assert by_url.url == (tmp_path / "ev").resolve().as_uri()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket/prefix", "S3 evidence store comes later"),
        ("http://example.com/x", "unsupported scheme"),
        ("file://./relative", "names host"),
        ("", "empty"),
    ],
)
def test_open_evidence_store_refuses_other_urls(url: str, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        open_evidence_store(url)


# -- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["2026-10", "2026-01", "2026-Q3", "2026-H2", "2026"])
def test_valid_periods_accepted(good: str) -> None:
    assert validate_period(good) == good


@pytest.mark.parametrize(
    "bad", ["2026-13", "2026-00", "2026-1", "2026-q3", "2026-Q5", "2026-H3", "26", "2026-10\n", ""]
)
def test_bad_periods_rejected_naming_value_and_forms(bad: str) -> None:
    with pytest.raises(EvidenceError) as caught:
        validate_period(bad)
    assert repr(bad) in str(caught.value)
    assert "2026-Q3" in str(caught.value)


def test_sanitise_run_id_is_readable_and_safe() -> None:
    assert sanitise_run_id(RUN_ID) == RUN_FOLDER
    assert sanitise_run_id(RUN_ID) == sanitise_run_id(RUN_ID)
    # '+' and '-' offsets must not collapse into one folder.
    assert sanitise_run_id("x+01:00") != sanitise_run_id("x-01:00")
    assert sanitise_run_id("..") == "__"
    assert sanitise_run_id("a/b\\c d") == "a_b_c_d"


def test_run_ref_prefix_and_validation() -> None:
    assert RunRef("2026-10", "monthly_check", RUN_ID).prefix == PREFIX
    with pytest.raises(EvidenceError, match="period"):
        RunRef("2026-13", "monthly_check", RUN_ID)
    with pytest.raises(EvidenceError, match="DAG id"):
        RunRef("2026-10", "../etc", RUN_ID)


# -- writing and sealing ----------------------------------------------------------------------


def test_seal_then_verify_ok(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun, key: Ed25519PrivateKey
) -> None:
    report = verify_store(store)
    assert report.ok, report.problems
    assert report.runs_checked == 1
    assert report.files_checked == 5  # 3 artifacts + 2 task indexes
    assert report.key_sources == {"k1": "store:_keys/k1.pub"}

    pinned = verify_store(store, "2026-10", public_keys={"k1": public_key_raw(key)})
    assert pinned.ok and pinned.key_sources == {"k1": "pinned"}
    assert json.loads(json.dumps(pinned.to_dict()))["ok"] is True


def test_manifest_lists_every_file_and_verifies_offline(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun, key: Ed25519PrivateKey
) -> None:
    body = _file(store, f"{PREFIX}/manifest.json").read_bytes()
    manifest = json.loads(body)
    # Canonical JSON: what is on disk is exactly the canonical encoding that was signed.
    assert (
        body
        == json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert manifest["format"] == "custos-evidence-manifest/1"
    assert (manifest["period"], manifest["dag_id"], manifest["run_id"]) == (
        "2026-10",
        "monthly_check",
        RUN_ID,
    )
    assert manifest["code_version"] == "abc123" and manifest["signing_key_id"] == "k1"
    by_path = {f["path"]: f for f in manifest["files"]}
    assert sorted(by_path) == [
        "check_retention/_artifacts.json",
        "check_retention/report.html",
        "count_customers/_artifacts.json",
        "count_customers/counts.csv",
        "count_customers/counts.json",
    ]
    html = by_path["check_retention/report.html"]
    html_bytes = _file(store, f"{PREFIX}/check_retention/report.html").read_bytes()
    assert html["sha256"] == hashlib.sha256(html_bytes).hexdigest()
    assert html["size"] == len(html_bytes)
    assert html["task_id"] == "check_retention"
    assert html["controls"] == ["ART16-DESTRUCTION-RECORD", "ART12-RETENTION"]
    assert html["media_type"] == "text/html"
    assert by_path["count_customers/counts.csv"]["media_type"] == "text/csv"
    assert by_path["count_customers/_artifacts.json"]["controls"] == []

    # Offline: only the published raw key, base64 and an Ed25519 library.
    raw = base64.b64decode(_file(store, "_keys/k1.pub").read_text())
    assert raw == public_key_raw(key)
    signature = base64.b64decode(_file(store, f"{PREFIX}/manifest.sig").read_text())
    Ed25519PublicKey.from_public_bytes(raw).verify(signature, body)


def test_task_retry_rewriting_an_artifact_keeps_one_entry(store: LocalFolderEvidenceStore) -> None:
    run = EvidenceRun(store, RunRef("2026-10", "monthly_check", RUN_ID))
    run.write_artifact("t", "a.json", "{}", controls=["C1"], articles=["Art. 18"])
    run.write_artifact("t", "b.json", "{}", controls=["C1"], articles=["Art. 18"])
    run.write_artifact("t", "a.json", '{"v":2}', controls=["C2"], articles=["Art. 18"])

    entries = run.artifacts("t")
    assert [e["name"] for e in entries] == ["a.json", "b.json"]
    assert entries[0]["controls"] == ["C2"]
    assert run.read_artifact("t", "a.json") == b'{"v":2}'


def test_sealed_run_refuses_new_artifacts(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    with pytest.raises(EvidenceError, match="sealed"):
        sealed.write_artifact("late_task", "late.json", "{}", controls=["C"], articles=[])
    assert not store.exists(f"{PREFIX}/late_task/late.json")


def test_sealing_twice_returns_the_same_manifest(
    sealed: EvidenceRun, key: Ed25519PrivateKey
) -> None:
    first = sealed.manifest()
    again = sealed.seal(signing_key=key, key_id="k1", code_version="abc123")
    assert again == first  # same sealed_at: nothing was rewritten


def test_seal_after_new_files_is_refused(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun, key: Ed25519PrivateKey
) -> None:
    store.write_bytes(f"{PREFIX}/count_customers/sneaky.json", b"{}")
    with pytest.raises(EvidenceError, match="new file count_customers/sneaky.json"):
        sealed.seal(signing_key=key, key_id="k1", code_version="abc123")


def test_seal_refuses_an_artifact_changed_after_it_was_written(
    store: LocalFolderEvidenceStore, key: Ed25519PrivateKey
) -> None:
    run = EvidenceRun(store, RunRef("2026-10", "monthly_check", RUN_ID))
    _write_two_tasks(run)
    _file(store, f"{PREFIX}/count_customers/counts.csv").write_bytes(b"forged")
    with pytest.raises(EvidenceError, match="count_customers/counts.csv changed"):
        run.seal(signing_key=key, key_id="k1", code_version="abc123")
    assert not run.sealed


def test_a_different_key_under_a_published_key_id_is_refused(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    other = EvidenceRun(store, RunRef("2026-10", "monthly_check", "other_run"))
    other.write_artifact("t", "a.json", "{}", controls=["C"], articles=[])
    with pytest.raises(EvidenceError, match="already published"):
        other.seal(signing_key=Ed25519PrivateKey.generate(), key_id="k1", code_version="x")
    assert not other.sealed


def test_run_ids_that_sanitise_alike_do_not_mix(store: LocalFolderEvidenceStore) -> None:
    EvidenceRun(store, RunRef("2026-10", "d", "run:1")).write_artifact(
        "t", "a.json", "{}", controls=["C"], articles=[]
    )
    clash = EvidenceRun(store, RunRef("2026-10", "d", "run+1"))
    with pytest.raises(EvidenceError, match="clash"):
        clash.write_artifact("t", "b.json", "{}", controls=["C"], articles=[])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"controls": "ART18", "articles": []}, "list of strings"),
        ({"controls": [], "articles": []}, "at least one control"),
        ({"controls": ["C"], "articles": [""]}, "non-empty string"),
    ],
)
def test_artifact_tags_are_validated(
    store: LocalFolderEvidenceStore, kwargs: dict, message: str
) -> None:
    run = EvidenceRun(store, RunRef("2026-10", "d", "r"))
    with pytest.raises(EvidenceError, match=message):
        run.write_artifact("t", "a.json", "{}", **kwargs)


@pytest.mark.parametrize("name", ["../x.json", "/abs.json", "_artifacts.json"])
def test_artifact_names_are_validated(store: LocalFolderEvidenceStore, name: str) -> None:
    run = EvidenceRun(store, RunRef("2026-10", "d", "r"))
    with pytest.raises(EvidenceError, match="artifact name"):
        run.write_artifact("t", name, "{}", controls=["C"], articles=[])


# -- verification: each tampering is found, on the exact file, with the exact kind -------------


def test_one_changed_byte_is_altered(store: LocalFolderEvidenceStore, sealed: EvidenceRun) -> None:
    path = _file(store, f"{PREFIX}/check_retention/report.html")
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("altered", f"{PREFIX}/check_retention/report.html")
    assert "sha256" in problem.detail


def test_truncated_file_is_altered(store: LocalFolderEvidenceStore, sealed: EvidenceRun) -> None:
    path = _file(store, f"{PREFIX}/count_customers/counts.csv")
    path.write_bytes(path.read_bytes()[:-1])
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("altered", f"{PREFIX}/count_customers/counts.csv")


def test_deleted_artifact_is_missing(store: LocalFolderEvidenceStore, sealed: EvidenceRun) -> None:
    _file(store, f"{PREFIX}/count_customers/counts.json").unlink()
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("missing", f"{PREFIX}/count_customers/counts.json")


def test_stray_file_is_unexpected(store: LocalFolderEvidenceStore, sealed: EvidenceRun) -> None:
    store.write_bytes(f"{PREFIX}/check_retention/extra.csv", b"a,b\n")
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("unexpected", f"{PREFIX}/check_retention/extra.csv")


def test_stray_file_outside_any_run_is_unexpected(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    store.write_bytes("2026-10/monthly_check/notes.txt", b"?")
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("unexpected", "2026-10/monthly_check/notes.txt")


def test_edited_manifest_is_bad_signature(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    path = _file(store, f"{PREFIX}/manifest.json")
    path.write_bytes(path.read_bytes().replace(b'"abc123"', b'"abc124"'))
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("bad_signature", f"{PREFIX}/manifest.json")


def test_manifest_that_is_not_json_is_bad_signature(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    _file(store, f"{PREFIX}/manifest.json").write_bytes(b"{not json")
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("bad_signature", f"{PREFIX}/manifest.json")


def test_missing_signature_is_bad_signature(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    _file(store, f"{PREFIX}/manifest.sig").unlink()
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("bad_signature", f"{PREFIX}/manifest.sig")


def _resign_with(store: LocalFolderEvidenceStore, attacker: Ed25519PrivateKey) -> None:
    """What someone with write access to the store could do: forge an edit and re-sign it."""
    path = _file(store, f"{PREFIX}/manifest.json")
    forged = path.read_bytes().replace(b'"abc123"', b'"forged"')
    path.write_bytes(forged)
    sig = base64.b64encode(attacker.sign(forged)) + b"\n"
    _file(store, f"{PREFIX}/manifest.sig").write_bytes(sig)
    pub = base64.b64encode(public_key_raw(attacker)) + b"\n"
    _file(store, "_keys/k1.pub").write_bytes(pub)


def test_resigned_manifest_fails_against_pinned_key(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun, key: Ed25519PrivateKey
) -> None:
    _resign_with(store, Ed25519PrivateKey.generate())
    report = verify_store(store, public_keys={"k1": public_key_raw(key)})
    problem = _only_problem(report)
    assert (problem.kind, problem.path) == ("bad_signature", f"{PREFIX}/manifest.json")
    assert "pinned" in problem.detail
    # Without pinning, the swapped store key makes the forgery look consistent: this is why
    # the report says which key was trusted.
    unpinned = verify_store(store)
    assert unpinned.ok and unpinned.key_sources == {"k1": "store:_keys/k1.pub"}


def test_key_id_not_pinned_is_bad_signature(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun, key: Ed25519PrivateKey
) -> None:
    problem = _only_problem(verify_store(store, public_keys={"k2": public_key_raw(key)}))
    assert (problem.kind, problem.path) == ("bad_signature", f"{PREFIX}/manifest.json")
    assert "not among the pinned keys" in problem.detail


def test_run_copied_into_another_period_is_bad_manifest(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    for key_ in list(store.list_keys(f"{PREFIX}/")):
        store.write_bytes(key_.replace("2026-10/", "2026-11/", 1), store.read_bytes(key_))
    assert verify_store(store, "2026-10").ok
    problem = _only_problem(verify_store(store, "2026-11"))
    assert problem.kind == "bad_manifest"
    assert problem.path == f"2026-11/monthly_check/{RUN_FOLDER}/manifest.json"
    assert "period" in problem.detail


def test_unsealed_run_is_reported(store: LocalFolderEvidenceStore) -> None:
    run = EvidenceRun(store, RunRef("2026-10", "monthly_check", RUN_ID))
    _write_two_tasks(run)
    problem = _only_problem(verify_store(store))
    assert (problem.kind, problem.path) == ("unsealed", PREFIX)


def test_verify_scope_is_the_requested_period(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    EvidenceRun(store, RunRef("2026-Q4", "risk", "r1")).write_artifact(
        "t", "a.json", "{}", controls=["C"], articles=[]
    )
    assert verify_store(store, "2026-10").ok
    problem = _only_problem(verify_store(store, "2026-Q4"))
    assert (problem.kind, problem.path) == ("unsealed", "2026-Q4/risk/r1")
    with pytest.raises(EvidenceError, match="period"):
        verify_store(store, "Q4")


# -- listing ----------------------------------------------------------------------------------


def test_list_runs_summarises_sealed_and_unsealed_runs(
    store: LocalFolderEvidenceStore, sealed: EvidenceRun
) -> None:
    open_run = EvidenceRun(store, RunRef("2026-10", "access_watch", "scheduled__x:1"))
    open_run.write_artifact("t", "a.json", "{}", controls=["ART17-WATCH"], articles=["Art. 17"])
    EvidenceRun(store, RunRef("2026-Q4", "risk", "r1")).write_artifact(
        "t", "a.json", "{}", controls=["C"], articles=[]
    )

    runs = {r.prefix: r for r in list_runs(store, "2026-10")}
    assert sorted(runs) == ["2026-10/access_watch/scheduled__x_1", PREFIX]
    done = runs[PREFIX]
    assert done.sealed and done.run_id == RUN_ID and done.sealed_at
    assert done.file_count == 5
    assert done.controls == ("ART12-RETENTION", "ART16-DESTRUCTION-RECORD", "ART18-MONTHLY-CHECK")
    assert done.total_bytes == sum(
        store.size(k)
        for k in store.list_keys(f"{PREFIX}/")
        if not k.endswith(("manifest.json", "manifest.sig"))
    )
    pending = runs["2026-10/access_watch/scheduled__x_1"]
    assert not pending.sealed and pending.run_id == "scheduled__x:1"
    assert pending.controls == ("ART17-WATCH",) and pending.sealed_at is None
    assert len(list_runs(store)) == 3


def test_a_seal_killed_before_the_manifest_can_be_retried(
    store: LocalFolderEvidenceStore, key: Ed25519PrivateKey
) -> None:
    run = EvidenceRun(store, RunRef("2026-10", "monthly_check", RUN_ID))
    _write_two_tasks(run)
    # What a kill between writing manifest.sig and manifest.json leaves behind.
    store.write_bytes(f"{PREFIX}/manifest.sig", b"c3RhbGU=\n")
    report = verify_store(store)
    assert [(p.kind, p.path) for p in report.problems] == [("unsealed", PREFIX)]
    assert "manifest.sig is present" in report.problems[0].detail

    run.seal(signing_key=key, key_id="k1", code_version="abc123")
    assert verify_store(store, public_keys={"k1": public_key_raw(key)}).ok


def test_empty_store_verifies_with_nothing_checked(store: LocalFolderEvidenceStore) -> None:
    report = verify_store(store)
    assert report.ok and report.runs_checked == 0 and report.files_checked == 0
    assert list_runs(store) == []


def test_file_and_folder_sharing_a_name_is_refused(store: LocalFolderEvidenceStore) -> None:
    store.write_bytes("a/b", b"file")
    with pytest.raises(EvidenceError, match="'a/b/c'"):
        store.write_bytes("a/b/c", b"x")
    with pytest.raises(EvidenceError, match="already a folder"):
        store.write_bytes("a", b"x")
