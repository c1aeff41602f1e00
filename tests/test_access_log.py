"""The tamper-evident access log against a real vault (SQLite, and PostgreSQL when
CUSTOS_TEST_POSTGRES_URL is set): appends, signed checkpoints, proofs, verification, and
every kind of tampering done the way an insider would, with raw SQL on the tables."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, inspect, text

from custos.access import merkle
from custos.access.checkpoint import (
    DEFAULT_ORIGIN,
    CheckpointError,
    key_hash,
    open_note,
    parse_and_verify,
    parse_checkpoint_body,
    sign_checkpoint,
    sign_note,
    verifier_key,
)
from custos.access.log import (
    ANCHOR_ARTICLES,
    ANCHOR_CONTROLS,
    ANCHOR_TASK_ID,
    CHECKPOINT_ARTIFACT,
    AccessLog,
    AccessLogError,
    anchored_notes,
)
from custos.access.log_models import (
    AccessCheckpoint,
    AccessLogEntry,
    canonical_entry,
    canonical_json,
    parse_entry,
    validate_entry,
)
from custos.vault.models import PI_CLASSES, Base
from custos.vault.writer import new_id

LOG_TABLES = ("access_log", "access_checkpoints")


# -- helpers ------------------------------------------------------------------------------------


def _entries(count: int, start: int = 0, **overrides) -> list[dict]:
    """Decisions shaped like the reader's: pseudonymous ids and codes only."""
    base = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    entries = []
    for n in range(start, start + count):
        refused = n % 4 == 3
        entry = {
            "logged_at": base + timedelta(seconds=n),
            "staff_id": f"s-customer_service-{n % 3 + 1}",
            "department_id": "customer_service",
            "action": "read",
            "purpose": "order_fulfilment",
            "customer_id": f"c01a2257cb22{n:018x}",
            "categories": ["transaction", "basic"],
            "decision": "refused" if refused else "allowed",
            "reason": "NOT_IN_ACCESS_MATRIX" if refused else None,
        }
        entry.update(overrides)
        entries.append(entry)
    return entries


def _sql(rt, statement: str, **params) -> None:
    with rt.engine.begin() as conn:
        conn.execute(text(statement), params)


def _scalar(rt, statement: str, **params):
    with rt.engine.connect() as conn:
        return conn.execute(text(statement), params).scalar()


def _documents(rt) -> list[dict]:
    with rt.engine.connect() as conn:
        return [
            json.loads(t) for t in conn.scalars(text("SELECT entry FROM access_log ORDER BY idx"))
        ]


def _forge(rt, documents: list[dict]) -> None:
    """What an insider with write access to the vault, but not the signing key, can do best:
    rewrite the table so that every row is self-consistent (index inside the entry, leaf
    hash, columns). Only the Merkle roots can catch this."""
    rows = []
    for idx, document in enumerate(documents):
        entry = canonical_json(dict(document, idx=idx))
        rows.append(
            {
                "idx": idx,
                **parse_entry(entry)[1],
                "entry": entry,
                "leaf_hash": merkle.leaf_hash(entry.encode()),
            }
        )
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM access_log"))
        conn.execute(insert(AccessLogEntry.__table__), rows)


def _problems(result) -> str:
    return "\n".join(result.problems)


@pytest.fixture
def rt(initialised_vault):
    return initialised_vault


@pytest.fixture
def log(rt) -> AccessLog:
    return AccessLog.for_runtime(rt)


@pytest.fixture
def signed_log(rt, log):
    """45 entries: checkpoints at 20 and 40, the one at 40 anchored in the evidence store,
    and 5 entries appended after it (not yet signed)."""
    log.append(_entries(20))
    log.checkpoint()
    log.append(_entries(20, start=20))
    log.checkpoint()
    log.anchor(rt.evidence_run("2026-11", "access_log_anchor", "manual__1"))
    log.append(_entries(5, start=40))
    notes = anchored_notes(rt.evidence)
    assert len(notes) == 1
    return log, notes


# -- schema -------------------------------------------------------------------------------------


def test_migration_creates_exactly_the_log_models(rt):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    live = inspect(rt.engine)
    for name in LOG_TABLES:
        table = Base.metadata.tables[name]
        assert {c["name"] for c in live.get_columns(name)} == set(table.c.keys())
    with rt.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(name in repr(d) for name in LOG_TABLES)] == []


def test_every_log_column_is_classified():
    for name in LOG_TABLES:
        for column in Base.metadata.tables[name].c:
            assert column.info.get("pi") in PI_CLASSES, f"{name}.{column.name}"


# -- appending and reading ---------------------------------------------------------------------


def test_round_trip_assigns_contiguous_indexes_and_verifies(rt, log):
    assert (log.size(), log.root()) == (0, merkle.EMPTY_ROOT)
    assert log.append(_entries(3)) == range(0, 3)
    assert log.append([]) == range(3, 3)
    assert log.append(_entries(4, start=3)) == range(3, 7)
    assert log.size() == 7

    with rt.engine.connect() as conn:
        rows = conn.execute(text("SELECT idx, entry, leaf_hash FROM access_log ORDER BY idx")).all()
    assert [row.idx for row in rows] == list(range(7))
    for row in rows:
        assert bytes(row.leaf_hash) == hashlib.sha256(b"\x00" + row.entry.encode()).digest()
    hashes = [bytes(row.leaf_hash) for row in rows]
    assert log.root() == merkle.root_from_leaf_hashes(hashes)
    assert log.root(4) == merkle.root_from_leaf_hashes(hashes[:4])

    note = log.checkpoint()
    checkpoint = parse_and_verify(note, DEFAULT_ORIGIN, log.public_key)
    assert (checkpoint.size, checkpoint.root) == (7, log.root())
    result = log.verify([note])
    assert (result.ok, result.problems, result.size, result.root) == (True, [], 7, log.root())


def test_entries_are_stored_canonically_with_their_queryable_columns(rt, log):
    log.append(
        _entries(1, logged_at=datetime(2026, 11, 2, 17, 0, tzinfo=timezone(timedelta(hours=8))))
    )
    with rt.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM access_log")).mappings().one()
    document = json.loads(row["entry"])
    assert row["entry"] == json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert document == {
        "action": "read",
        "categories": ["basic", "transaction"],
        "customer_id": "c01a2257cb22000000000000000000",
        "decision": "allowed",
        "department_id": "customer_service",
        "idx": 0,
        "logged_at": "2026-11-02T09:00:00.000000Z",  # 17:00 at UTC+8, stored as UTC
        "purpose": "order_fulfilment",
        "reason": None,
        "staff_id": "s-customer_service-1",
    }
    assert row["categories"] == "basic;transaction"
    assert row["staff_id"] == "s-customer_service-1"
    assert row["reason"] is None


def test_canonical_entry_is_exactly_sorted_compact_json():
    rng = random.Random(3)
    alphabet = ["a", "Z", "0", "_", "-", "\u89c4", "\u00e9", '"', "\\", " ", "/", "\u2028"]
    for n in range(300):
        reason = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))).strip() or "x"
        entry = validate_entry(
            _entries(1, start=n, reason=reason if "@" not in reason else "x")[0]
            | {"categories": rng.sample(["basic", "identity", "transaction"], rng.randint(0, 3))}
        )
        reference = dict(
            entry, idx=n * 7919, logged_at=entry["logged_at"].isoformat(timespec="microseconds")
        )
        reference["logged_at"] += "Z"
        assert canonical_entry(n * 7919, entry) == json.dumps(
            reference, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


def test_concurrent_writers_get_contiguous_disjoint_indexes(rt):
    logs = [AccessLog.for_runtime(rt) for _ in range(4)]
    ranges: list[range] = []
    errors: list[BaseException] = []

    def writer(log: AccessLog, seed: int) -> None:
        try:
            for batch in range(8):
                ranges.append(log.append(_entries(25, start=seed * 1000 + batch * 25)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(lg, n)) for n, lg in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    indexes = sorted(i for r in ranges for i in r)
    assert indexes == list(range(4 * 8 * 25))
    assert all(len(r) == 25 for r in ranges)
    assert logs[0].verify().ok


# -- personal information and the fixed schema ---------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field", "says"),
    [
        ({"staff_id": "alice@example.com"}, "staff_id", "e-mail"),
        ({"customer_id": "13812345678"}, "customer_id", "phone"),
        ({"customer_id": "138-1234-5678"}, "customer_id", "phone"),
        ({"reason": "called +86 138 1234 5678"}, "reason", "phone"),
        ({"reason": "call (415) 555-0100 back"}, "reason", "phone"),
        ({"reason": "wrote to bob.smith@example.co.uk"}, "reason", "e-mail"),
        ({"categories": ["basic", "x@y.cn"]}, "categories", "e-mail"),
        ({"staff_id": "Alice Smith"}, "staff_id", "id or code"),
        ({"decision": "maybe"}, "decision", "allowed, refused"),
        ({"staff_id": None}, "staff_id", "required"),
        ({"action": ""}, "action", "required"),
        ({"staff_id": ["s-1"]}, "staff_id", "must be a string"),
        ({"logged_at": "yesterday"}, "logged_at", "ISO 8601"),
        ({"reason": "x" * 401}, "reason", "longer than 400"),
    ],
)
def test_bad_entries_are_refused_naming_the_field_and_nothing_is_written(
    log, override, field, says
):
    log.append(_entries(1))
    with pytest.raises(ValueError) as excinfo:
        log.append([*_entries(1, start=1), *_entries(1, start=2, **override)])
    message = str(excinfo.value)
    assert "entry 1" in message and repr(field) in message and says in message
    # The message never repeats the value: it may be personal information.
    for value in override.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in message
    assert log.size() == 1
    assert log.verify().ok


@pytest.mark.parametrize("key", ["name", "email", "idx", "phone"])
def test_keys_outside_the_entry_schema_are_refused(log, key):
    with pytest.raises(ValueError, match=f"unknown field\\(s\\) {key}"):
        log.append(_entries(1, **{key: "x"}))
    assert log.size() == 0


def test_pseudonymous_ids_codes_and_dates_are_accepted(log):
    ids = [new_id("c") for _ in range(2000)]
    entries = [
        *_entries(1, customer_id="unregistered:0a1b2c3d4e5f", staff_id="unregistered:9f8e7d6c5b4a"),
        *_entries(1, reason="retention until 2026-11-29 (rule R-16.2), 3 refusals at 10:42"),
        *_entries(1, logged_at="2026-11-02T09:00:00+08:00", purpose=None, department_id=None),
        *[_entries(1, customer_id=customer_id)[0] for customer_id in ids],
    ]
    assert log.append(entries) == range(0, len(entries))


# -- checkpoints and signed notes ----------------------------------------------------------------

# golang.org/x/mod/sumdb/note's documented example key and note: Ed25519 is deterministic,
# so the same key and text must give this exact signature line.
GO_NOTE_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # 0x01 || seed
GO_NOTE_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_notes_match_the_go_reference_byte_for_byte():
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_NOTE_SEED)[1:])
    assert key_hash("PeterNeumann", key.public_key()).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", key.public_key()) == GO_NOTE_VERIFIER
    note = sign_note(GO_NOTE_TEXT, "PeterNeumann", key)
    assert note == GO_NOTE_TEXT + "\n" + GO_NOTE_SIGNATURE
    assert open_note(note, "PeterNeumann", key.public_key()) == GO_NOTE_TEXT
    with pytest.raises(CheckpointError, match="altered"):
        open_note(note.replace("answer", "answers"), "PeterNeumann", key.public_key())


def test_the_tlog_checkpoint_spec_example_parses():
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = parse_checkpoint_body(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert len(checkpoint.root) == 32


def test_checkpoint_round_trip_and_its_exact_layout():
    key = Ed25519PrivateKey.generate()
    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    note = sign_checkpoint("custos.local/access-log", 2, root, "custos.local/access-log", key)
    body, signature_line = note.split("\n\n")
    assert body == f"custos.local/access-log\n2\n{base64.b64encode(root).decode()}"
    name, blob = signature_line.removeprefix("\u2014 ").removesuffix("\n").split(" ")
    raw = base64.b64decode(blob)
    assert name == "custos.local/access-log" and len(raw) == 4 + 64
    public = key.public_key()
    expected_hash = hashlib.sha256(
        b"custos.local/access-log\n\x01" + public.public_bytes_raw()
    ).digest()[:4]
    assert raw[:4] == expected_hash
    public.verify(raw[4:], (body + "\n").encode())  # the signature covers the text only
    checkpoint = parse_and_verify(note, "custos.local/access-log", public)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (
        "custos.local/access-log",
        2,
        root,
    )


def _note(size: int = 5, origin: str = DEFAULT_ORIGIN, key=None):
    key = key or Ed25519PrivateKey.generate()
    return key, sign_checkpoint(origin, size, bytes(range(32)), origin, key)


def test_a_checkpoint_signed_by_another_key_is_refused():
    _, note = _note()
    stranger = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(CheckpointError, match="not signed by custos.local/access-log"):
        parse_and_verify(note, DEFAULT_ORIGIN, stranger)


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        (lambda n: n.replace("\n5\n", "\n6\n"), "altered"),
        (lambda n: n.replace("\n5\n", "\n05\n"), "altered"),
        (lambda n: n.replace("\u2014 ", "-- "), "em dash"),
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n.rstrip("\n"), "end with a newline"),
        (lambda n: n[: n.rindex(" ") + 5] + "!!\n", "not base64"),
        (lambda n: n.replace("\n\n", "\nextension\n\n"), "altered"),
        (lambda n: n.replace("\u2014 custos.local/access-log", "\u2014 other.log"), "not signed"),
    ],
)
def test_an_altered_checkpoint_note_is_refused(tamper, says):
    key, note = _note()
    with pytest.raises(CheckpointError, match=says):
        parse_and_verify(tamper(note), DEFAULT_ORIGIN, key.public_key())


def test_a_failing_signature_that_claims_the_log_key_rejects_the_note():
    key, note = _note()
    forged = key_hash(DEFAULT_ORIGIN, key.public_key()) + bytes(64)
    line = f"\u2014 {DEFAULT_ORIGIN} {base64.b64encode(forged).decode()}\n"
    with pytest.raises(CheckpointError, match="altered"):
        parse_and_verify(note + line, DEFAULT_ORIGIN, key.public_key())


def test_a_checkpoint_of_another_log_or_with_extension_lines_is_refused():
    key, note = _note(origin="other.example/log")
    with pytest.raises(CheckpointError, match="belongs to another log"):
        parse_and_verify(note, "other.example/log", key.public_key(), origin=DEFAULT_ORIGIN)
    text_ = f"{DEFAULT_ORIGIN}\n1\n{base64.b64encode(bytes(32)).decode()}\nextra\n"
    with pytest.raises(CheckpointError, match="extension line"):
        parse_and_verify(sign_note(text_, DEFAULT_ORIGIN, key), DEFAULT_ORIGIN, key.public_key())


def test_a_signature_by_an_unknown_key_is_ignored_but_the_known_one_counts():
    key, note = _note()
    witness = sign_note(
        note.split("\n\n")[0] + "\n", "witness.example/w1", Ed25519PrivateKey.generate()
    )
    cosigned = note + witness.split("\n\n")[1]
    assert parse_and_verify(cosigned, DEFAULT_ORIGIN, key.public_key()).size == 5


def test_bad_origins_are_refused(rt):
    key_id, key = rt.keys.evidence_signing_key()
    for origin in ("", "custos local", "custos+log", "a\nb"):
        with pytest.raises(Exception, match="origin"):
            AccessLog(rt.engine, key_id, key, origin)


def test_the_log_refuses_to_sign_over_changed_entries(rt, log):
    log.append(_entries(10))
    log.checkpoint()
    log.append(_entries(2, start=10))
    _sql(rt, "UPDATE access_log SET leaf_hash = :h WHERE idx = 3", h=merkle.leaf_hash(b"x"))
    with pytest.raises(AccessLogError, match="refusing to sign: the first 10 entries"):
        log.checkpoint()
    assert _scalar(rt, "SELECT count(*) FROM access_checkpoints") == 1


def test_checkpointing_an_unchanged_log_returns_the_same_note(rt, log):
    log.append(_entries(3))
    assert log.checkpoint() == log.checkpoint()
    assert _scalar(rt, "SELECT count(*) FROM access_checkpoints") == 1


def test_maybe_checkpoint_signs_when_enough_entries_or_time_passed(rt, log):
    assert log.maybe_checkpoint(every_entries=10, every_minutes=60) is None  # empty log
    log.append(_entries(3))
    assert log.maybe_checkpoint(every_entries=10, every_minutes=60) is not None  # first one
    log.append(_entries(5, start=3))
    assert log.maybe_checkpoint(every_entries=10, every_minutes=60) is None
    log.append(_entries(5, start=8))
    assert (
        parse_and_verify(
            log.maybe_checkpoint(every_entries=10, every_minutes=60), DEFAULT_ORIGIN, log.public_key
        ).size
        == 13
    )
    log.append(_entries(1, start=13))
    assert log.maybe_checkpoint(every_entries=10, every_minutes=60) is None
    _sql(rt, "UPDATE access_checkpoints SET created_at = :t", t=datetime(2026, 1, 1))
    assert log.maybe_checkpoint(every_entries=10, every_minutes=60) is not None
    assert log.maybe_checkpoint(every_entries=10, every_minutes=60) is None  # nothing new
    with pytest.raises(ValueError, match="at least 1"):
        log.maybe_checkpoint(every_entries=0, every_minutes=5)


def test_anchor_writes_the_note_into_the_evidence_store_and_marks_it(rt, log):
    log.append(_entries(4))
    run = rt.evidence_run("2026-11", "access_log_anchor", "scheduled__2026-11-02")
    anchored = log.anchor(run)  # no checkpoint yet: signs one
    assert anchored["size"] == 4
    note = run.read_artifact(ANCHOR_TASK_ID, CHECKPOINT_ARTIFACT).decode()
    assert parse_and_verify(note, DEFAULT_ORIGIN, log.public_key).root == log.root()
    (item,) = run.artifacts(ANCHOR_TASK_ID)
    assert (item["name"], item["controls"], item["articles"]) == (
        CHECKPOINT_ARTIFACT,
        ANCHOR_CONTROLS,
        ANCHOR_ARTICLES,
    )
    assert _scalar(rt, "SELECT anchored_at FROM access_checkpoints WHERE size = 4") is not None
    assert anchored_notes(rt.evidence) == [note]


# -- proofs for auditors -------------------------------------------------------------------------


def test_prove_gives_an_auditor_everything_to_check_an_entry_by_hand(signed_log):
    log, _ = signed_log
    proof = log.prove(33)
    assert (proof["leaf_index"], proof["tree_size"]) == (33, 40)  # the anchored checkpoint
    entry_hash = hashlib.sha256(b"\x00" + proof["entry"].encode()).digest()
    assert entry_hash.hex() == proof["leaf_hash"]
    assert json.loads(proof["entry"])["idx"] == 33
    root = base64.b64decode(proof["root"])
    path = [bytes.fromhex(node) for node in proof["audit_path"]]
    assert merkle.verify_inclusion(entry_hash, 33, 40, path, root)
    # The verifier key string alone (what an auditor is given) checks the signed note.
    name, key_id, encoded = proof["verifier_key"].split("+", 2)  # base64 may hold "+"
    public = base64.b64decode(encoded)[1:]
    assert key_hash(name, public).hex() == key_id
    checkpoint = parse_and_verify(proof["checkpoint"], name, public)
    assert (checkpoint.size, checkpoint.root) == (40, root)
    # An entry after the last checkpoint gets a fresh one.
    later = log.prove(44)
    assert later["tree_size"] == 45
    assert not merkle.verify_inclusion(entry_hash, 34, 40, path, root)


# -- tampering: each must be found ----------------------------------------------------------------


def test_an_intact_log_verifies_against_its_anchor(signed_log):
    log, notes = signed_log
    result = log.verify(notes)
    assert result.ok, result.problems
    assert (result.size, result.checkpoints_checked, result.anchored_checked) == (45, 2, 1)


def test_an_edited_entry_is_detected(rt, signed_log):
    log, notes = signed_log
    _sql(rt, "UPDATE access_log SET entry = replace(entry, '\"read\"', '\"export\"') WHERE idx = 7")
    problems = _problems(log.verify(notes))
    assert "entry 7: its text no longer matches its leaf hash" in problems
    assert "stored checkpoint 20: the first 20 entries no longer have the signed root" in problems
    assert "anchored checkpoint 40: the first 40 entries no longer have the signed root" in problems


def test_an_edited_column_is_detected(rt, signed_log):
    log, notes = signed_log
    _sql(rt, "UPDATE access_log SET staff_id = 's-legal-1', decision = 'allowed' WHERE idx = 3")
    problems = _problems(log.verify(notes))
    assert "entry 3: column(s) staff_id, decision disagree with the hashed entry" in problems


def test_an_entry_edited_and_rehashed_is_detected_by_the_signed_roots(rt, signed_log):
    log, notes = signed_log
    documents = _documents(rt)
    documents[11]["customer_id"] = "c01a2257cb22ffffffffffffffffff"
    _forge(rt, documents)
    problems = _problems(log.verify(notes))
    assert "entry" not in problems.split("checkpoint")[0]  # every row is self-consistent
    assert "stored checkpoint 20: the first 20 entries no longer have the signed root" in problems


def test_a_deleted_entry_is_detected(rt, signed_log):
    log, notes = signed_log
    _sql(rt, "DELETE FROM access_log WHERE idx = 12")
    problems = _problems(log.verify(notes))
    assert "entries 12..12 are missing (deleted)" in problems
    assert "stored checkpoint 20: the first 20 entries" in problems


def test_a_deleted_entry_is_detected_even_when_the_rest_is_renumbered(rt, signed_log):
    log, notes = signed_log
    documents = _documents(rt)
    del documents[12]
    _forge(rt, documents)
    assert "stored checkpoint 20: the first 20 entries" in _problems(log.verify(notes))


def test_an_inserted_entry_is_detected(rt, signed_log):
    log, notes = signed_log
    documents = _documents(rt)
    documents.insert(10, dict(documents[10], customer_id="c01a2257cb22eeeeeeeeeeeeeeeeee"))
    _forge(rt, documents)
    result = log.verify(notes)
    assert not result.ok and result.size == 46
    assert "stored checkpoint 20: the first 20 entries" in _problems(result)
    assert "anchored checkpoint 40: the first 40 entries" in _problems(result)


def test_an_entry_inserted_into_a_gap_is_detected(rt, signed_log):
    log, notes = signed_log
    _sql(rt, "DELETE FROM access_log WHERE idx = 5")
    documents = _documents(rt)
    entry = canonical_json(dict(documents[6], idx=5, decision="allowed", reason=None))
    with rt.engine.begin() as conn:
        conn.execute(
            insert(AccessLogEntry.__table__),
            [
                {
                    "idx": 5,
                    **parse_entry(entry)[1],
                    "entry": entry,
                    "leaf_hash": merkle.leaf_hash(entry.encode()),
                }
            ],
        )
    assert "stored checkpoint 20: the first 20 entries" in _problems(log.verify(notes))


def test_reordered_entries_are_detected(rt, signed_log):
    log, notes = signed_log
    # Swap rows 3 and 4 wholesale (every column), as an UPDATE would.
    _sql(rt, "UPDATE access_log SET idx = -1 WHERE idx = 3")
    _sql(rt, "UPDATE access_log SET idx = 3 WHERE idx = 4")
    _sql(rt, "UPDATE access_log SET idx = 4 WHERE idx = -1")
    problems = _problems(log.verify(notes))
    assert "entry 3: holds the entry written at index 4" in problems
    assert "stored checkpoint 20: the first 20 entries" in problems


def test_reordered_entries_are_detected_even_when_renumbered_consistently(rt, signed_log):
    log, notes = signed_log
    documents = _documents(rt)
    documents[3], documents[4] = documents[4], documents[3]
    _forge(rt, documents)
    assert "stored checkpoint 20: the first 20 entries" in _problems(log.verify(notes))


def test_a_truncated_log_is_detected_and_refuses_appends(rt, signed_log):
    log, notes = signed_log
    _sql(rt, "DELETE FROM access_log WHERE idx >= 30")
    problems = _problems(log.verify(notes))
    assert (
        "stored checkpoint 40 covers 40 entries but the log has only 30: entries 30..39 were "
        "deleted (log truncated)"
    ) in problems
    assert "anchored checkpoint 40 covers 40 entries" in problems
    with pytest.raises(AccessLogError, match="checkpoint of 40 entries was signed"):
        log.append(_entries(1))
    with pytest.raises(AccessLogError, match="refusing to sign"):
        log.checkpoint()


def test_a_truncation_that_also_deletes_the_vault_checkpoints_is_caught_by_the_anchor(
    rt, signed_log
):
    log, notes = signed_log
    _sql(rt, "DELETE FROM access_log WHERE idx >= 30")
    _sql(rt, "DELETE FROM access_checkpoints WHERE size > 20")
    assert log.verify().ok  # the vault alone can no longer tell...
    problems = _problems(log.verify(notes))  # ...the evidence store can
    assert "anchored checkpoint 40 is missing from the vault's access_checkpoints" in problems
    assert "anchored checkpoint 40 covers 40 entries but the log has only 30" in problems


def test_history_rewritten_and_re_signed_after_the_anchor_is_detected(rt, signed_log):
    """The strongest insider: vault write access *and* the signing key. They rewrite an
    entry, recompute everything and re-sign every checkpoint in the vault. Only the note
    already anchored in the evidence store can tell."""
    log, notes = signed_log
    documents = _documents(rt)
    documents[7]["decision"], documents[7]["reason"] = "allowed", None
    _forge(rt, documents)
    _sql(rt, "DELETE FROM access_checkpoints")
    key_id, key = rt.keys.evidence_signing_key()
    for size in (20, 40):
        note = sign_checkpoint(DEFAULT_ORIGIN, size, log.root(size), DEFAULT_ORIGIN, key)
        with rt.engine.begin() as conn:
            conn.execute(
                insert(AccessCheckpoint.__table__),
                [
                    {
                        "size": size,
                        "root": log.root(size),
                        "signed_note": note,
                        "created_at": datetime(2026, 11, 3),
                    }
                ],
            )
    log.checkpoint()

    assert log.verify().ok  # self-consistent and validly signed...
    problems = _problems(log.verify(notes))
    assert (
        "anchored checkpoint 40 has a different root from the vault's checkpoint 40: the "
        "vault's checkpoints were re-signed (history rewritten)"
    ) in problems
    assert "anchored checkpoint 40: the first 40 entries no longer have the signed root" in problems


def test_a_forged_or_foreign_anchored_note_is_reported(signed_log):
    log, notes = signed_log
    _, foreign = _note(size=40)
    result = log.verify([notes[0].replace("\n40\n", "\n41\n"), foreign])
    assert "anchored checkpoint #1: the signature by custos.local/access-log" in _problems(result)
    assert "anchored checkpoint #2: the note is not signed by" in _problems(result)


def test_a_stored_checkpoint_with_a_forged_signature_is_reported(rt, signed_log):
    log, notes = signed_log
    _sql(
        rt,
        "UPDATE access_checkpoints SET signed_note = :n WHERE size = 20",
        n=_note(size=20)[1],
    )
    assert "stored checkpoint 20: the note is not signed by" in _problems(log.verify(notes))


def test_many_problems_are_summarised_not_listed_one_by_one(rt, signed_log):
    log, notes = signed_log
    _sql(rt, "UPDATE access_log SET staff_id = 's-legal-1'")
    result = log.verify(notes)
    assert len(result.problems) < 30
    assert "... and 25 more problem(s) of kind 'edited'" in result.problems
