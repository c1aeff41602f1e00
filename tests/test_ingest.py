"""The collection pipeline end to end: ``custos ingest`` against a real vault.

The oracle is the report of :func:`custos.demo.landing.write_landing_batch`, which says
exactly how many rows each reason code must quarantine; the hand-written batches cover
every malformed-file case, upserts, withdrawals, minimisation, lineage, the quality gate,
the quarantine review and atomicity of a killed run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from custos.access.reader import AccessRefused, read_quarantined
from custos.cli import main
from custos.collection import contract as c
from custos.collection.ingest import ingest_batch
from custos.demo.landing import write_landing_batch

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CUSTOMER_HEADER = (
    "external_id,source_system,collected_at,country,name,gender,email,phone,address_line,"
    "city,postal_code,birth_date,passport_number,national_id,consent_id"
)
CONSENT_HEADER = (
    "consent_id,external_id,subject,notice_version,purposes,channel,granted_at,withdrawn_at"
)


def _count(rt, sql: str, **params) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _customer(ext: str, *, country="DE", email=None, birth="1980-01-01", national_id=""):
    email = email or f"{ext}@example.de"
    return (
        f"{ext},shopify,2026-10-01T12:00:00Z,{country},Erika Muster,f,{email},030 1234567,"
        f"Str 1,Berlin,10115,{birth},P1234567,{national_id},K{ext}"
    )


def _consent(
    ext: str,
    purposes="order_fulfilment;payment",
    *,
    ref=None,
    subject="customer",
    channel="popup",
    withdrawn="",
):
    return (
        f"{ref or 'K' + ext},{ext},{subject},v3,{purposes},{channel},2026-10-01T12:00:00Z,"
        f"{withdrawn}"
    )


def _batch(root: Path, name: str, files: dict[str, str | bytes]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for file_name, content in files.items():
        data = content if isinstance(content, bytes) else (content.rstrip("\n") + "\n").encode()
        (folder / file_name).write_bytes(data)
    return folder


def _lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


@pytest.fixture
def landing(initialised_vault) -> Path:
    root = initialised_vault.settings.landing_root
    root.mkdir(parents=True, exist_ok=True)
    return root


# ---- the oracle: every reason code at known counts ------------------------------------------


@pytest.mark.parametrize("formats", ["mixed", "csv", "jsonl"])
def test_generated_batch_reconciles_exactly_with_the_oracle(initialised_vault, landing, formats):
    rt = initialised_vault
    report = write_landing_batch(
        landing / f"gen-{formats}",
        customers=400,
        seed=7,
        as_of=AS_OF,
        formats=formats,
        min_each=2,
    )
    summary = ingest_batch(rt, landing / f"gen-{formats}", now=AS_OF)
    expected = report["expected"]
    assert summary["received"] == expected["received"]
    assert summary["accepted"] == expected["accepted"]
    assert summary["quarantined"] == {k: v for k, v in expected["quarantined"].items() if v}
    assert summary["delete_requested"] == expected["delete_requested"]
    assert summary["received"] == summary["accepted"] + sum(summary["quarantined"].values())
    for f in summary["files"]:
        want = expected["by_file"][f["file"]]
        assert (f["received"], f["accepted"]) == (want["received"], want["accepted"]), f["file"]
        assert f["quarantined"] == {k: v for k, v in want["quarantined"].items() if v}
        assert f["quality"]["passed"], f["file"]
    # every validation and gate reason code of the contract appears
    for code in (
        c.NO_CONSENT,
        c.MINOR_WITHOUT_GUARDIAN_CONSENT,
        c.INVALID_COUNTRY,
        c.INVALID_EMAIL,
        c.INVALID_PHONE,
        c.FUTURE_DATE,
        c.FIELD_TOO_LONG,
        c.NOT_UTF8,
        c.MALFORMED_ROW,
        c.DUPLICATE_IN_BATCH,
        c.UNKNOWN_PURPOSE,
        c.UNKNOWN_CUSTOMER,
        c.CUSTOMER_QUARANTINED,
    ):
        assert summary["quarantined"].get(code, 0) >= 1, code
    # the vault holds exactly the accepted customers, once each; quarantine holds the rest
    customers_accepted = expected["by_file"][
        next(f for f in expected["by_file"] if f.startswith("customers"))
    ]["accepted"]
    assert _count(rt, "SELECT count(*) FROM customers") == customers_accepted
    assert _count(rt, "SELECT count(*) FROM quarantine") == sum(summary["quarantined"].values())
    assert not (landing / f"gen-{formats}").exists(), "landing copy must be destroyed"
    assert summary["landing_copy"]["folder_removed"]


def test_reingesting_the_same_content_changes_nothing(initialised_vault, landing):
    rt = initialised_vault
    write_landing_batch(landing / "a", customers=120, seed=3, as_of=AS_OF, min_each=1)
    write_landing_batch(landing / "a-again", customers=120, seed=3, as_of=AS_OF, min_each=1)
    first = ingest_batch(rt, landing / "a", now=AS_OF)

    def snapshot():
        return {
            t: _count(rt, f"SELECT count(*) FROM {t}")
            for t in ("customers", "consents", "orders", "events", "quarantine", "data_keys")
        }

    before = snapshot()
    # same content under another folder name: the content hash decides
    again = ingest_batch(rt, landing / "a-again", now=AS_OF)
    assert again["already_ingested"] is True
    assert snapshot() == before
    assert again["received"] == first["received"]
    assert not (landing / "a-again").exists()


def test_a_failing_run_leaves_nothing_and_keeps_the_landing_copy(
    initialised_vault, landing, monkeypatch
):
    rt = initialised_vault
    write_landing_batch(landing / "k", customers=100, seed=5, as_of=AS_OF, min_each=1)
    from custos.collection import ingest

    def killed(self, f):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(ingest._Ingest, "items", killed)
    with pytest.raises(RuntimeError):
        ingest_batch(rt, landing / "k", now=AS_OF)
    for table in ("customers", "consents", "quarantine", "quarantine_keys", "ingest_batches"):
        assert _count(rt, f"SELECT count(*) FROM {table}") == 0, table
    assert (landing / "k" / "customers.csv").exists()
    monkeypatch.undo()
    summary = ingest_batch(rt, landing / "k", now=AS_OF)
    assert summary["accepted"] > 0 and not (landing / "k").exists()


# ---- malformed files: never crash, never lose good rows --------------------------------------


def test_every_malformed_file_case_is_reported_with_file_and_line(initialised_vault, landing):
    rt = initialised_vault
    good = [_customer(f"m{i}") for i in range(3)]
    consents = [_consent(f"m{i}") for i in range(3)]
    folder = _batch(
        landing,
        "broken",
        {
            "customers.csv": _lines(CUSTOMER_HEADER, *good),
            "consents.csv": _lines(CONSENT_HEADER, *consents),
            # wrong header: every data line is held under BAD_HEADER
            "customers-wrongheader.csv": _lines("id,name,mail", "x1,A,a@b.de", "x2,B,b@b.de"),
            # binary: held whole as one item
            "orders-binary.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
            # truncated: last line cut mid-row
            "orders.csv": b"order_id,external_id,placed_at,amount,currency\n"
            b"o1,m0,2026-10-02T12:00:00Z,10.00,EUR\no2,m1,2026-10-0",
            # an unparsable JSON line between good ones
            "events.jsonl": '{"external_id":"m0","occurred_at":"2026-10-03T00:00:00Z",'
            '"event_type":"view"}\n{"external_id": "m1", oops\n',
            # empty file
            "events-empty.jsonl": b"",
            # not a landing kind at all: held whole, its name never recorded
            "notes.txt": "whatever\n",
        },
    )
    s = ingest_batch(rt, folder, now=AS_OF)
    files = {f["file"]: f for f in s["files"]}
    assert s["received"] == s["accepted"] + sum(s["quarantined"].values())
    # good rows kept: 3 customers, 3 consents, 1 order (o1); the event needs behaviour consent
    assert files["customers.csv"]["accepted"] == 3
    assert files["consents.csv"]["accepted"] == 3
    assert files["orders.csv"]["accepted"] == 1
    assert files["orders.csv"]["quarantined"] == {c.MALFORMED_ROW: 1}
    truncated = [p for p in files["orders.csv"]["problems"] if p["code"] == "TRUNCATED_LAST_LINE"]
    assert truncated and truncated[0]["line"] == 3
    assert files["customers-wrongheader.csv"]["quarantined"] == {c.BAD_HEADER: 2}
    assert [p["code"] for p in files["customers-wrongheader.csv"]["problems"]] == ["BAD_HEADER"]
    assert files["orders-binary.csv"]["quarantined"] == {"BINARY_FILE": 1}
    assert files["events.jsonl"]["quarantined"] == {c.MALFORMED_ROW: 1, c.CATEGORY_NOT_CONSENTED: 1}
    assert [p["code"] for p in files["events-empty.jsonl"]["problems"]] == ["EMPTY_FILE"]
    assert files["events-empty.jsonl"]["received"] == 0
    unknown = [f for f in s["files"] if f["kind"] is None]
    assert len(unknown) == 1 and unknown[0]["file"].startswith("file-")
    assert unknown[0]["quarantined"] == {"UNKNOWN_FILE_KIND": 1}
    assert "notes" not in json.dumps(s)
    # the unreadable JSON line and the binary file are kept encrypted, not dropped
    assert _count(rt, "SELECT count(*) FROM quarantine WHERE payload IS NOT NULL") == sum(
        s["quarantined"].values()
    )


def test_quality_gate_holds_an_evidently_broken_file_whole(initialised_vault, landing):
    rt = initialised_vault
    rows = [_customer(f"q{i}", email="not-an-email" if i % 3 == 0 else None) for i in range(60)]
    folder = _batch(
        landing,
        "shifted",
        {
            "customers.csv": _lines(CUSTOMER_HEADER, *rows),
            "consents.csv": _lines(CONSENT_HEADER, *[_consent(f"q{i}") for i in range(60)]),
        },
    )
    s = ingest_batch(rt, folder, now=AS_OF)
    customers = next(f for f in s["files"] if f["file"] == "customers.csv")
    assert customers["held_by_quality_gate"] and not customers["quality"]["passed"]
    assert customers["quarantined"] == {c.FILE_QUALITY_GATE: 60}
    failing = [e for e in customers["quality"]["expectations"] if not e["success"]]
    assert [e["column"] for e in failing] == ["email"]
    assert failing[0]["unexpected_count"] == 20
    # results are counts only: no value of the file in them
    assert "not-an-email" not in json.dumps(customers["quality"])
    assert _count(rt, "SELECT count(*) FROM customers") == 0
    consents = next(f for f in s["files"] if f["file"] == "consents.csv")
    assert consents["quarantined"] == {c.CUSTOMER_QUARANTINED: 60}


# ---- upsert, withdrawal, minimisation, lineage ------------------------------------------------


def test_known_customer_is_updated_never_duplicated(initialised_vault, landing):
    rt = initialised_vault
    ingest_batch(
        rt,
        _batch(
            landing,
            "u1",
            {
                "customers.csv": _lines(CUSTOMER_HEADER, _customer("u1")),
                "consents.csv": _lines(CONSENT_HEADER, _consent("u1")),
            },
        ),
        now=AS_OF,
    )
    (cid,) = [r for r in _ids(rt)]
    from custos.crypto.blind_index import BlindIndexer

    indexer = BlindIndexer(rt.keys.blind_index_key())
    s = ingest_batch(
        rt,
        _batch(
            landing,
            "u2",
            {
                "customers.csv": _lines(CUSTOMER_HEADER, _customer("u1", email="new@example.de")),
            },
        ),
        now=AS_OF,
    )
    assert s["accepted"] == 1
    assert _ids(rt) == [cid]
    with rt.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT email_bidx FROM basic_info WHERE customer_id = :c"), {"c": cid}
        ).scalar()
        keys = conn.execute(
            text("SELECT count(*) FROM data_keys WHERE customer_id = :c AND category = 'basic'"),
            {"c": cid},
        ).scalar()
    assert bytes(stored) == indexer.index("email", "new@example.de")
    assert keys == 1


def _ids(rt) -> list[str]:
    with rt.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM customers ORDER BY id"))]


def test_withdrawal_in_a_later_batch_requests_deletion(initialised_vault, landing):
    rt = initialised_vault
    ingest_batch(
        rt,
        _batch(
            landing,
            "w1",
            {
                "customers.csv": _lines(CUSTOMER_HEADER, _customer("w1"), _customer("w2")),
                "consents.csv": _lines(CONSENT_HEADER, _consent("w1"), _consent("w2")),
            },
        ),
        now=AS_OF,
    )
    s = ingest_batch(
        rt,
        _batch(
            landing,
            "w2",
            {
                "consents.csv": _lines(
                    CONSENT_HEADER, _consent("w1", withdrawn="2026-11-10T00:00:00Z")
                ),
            },
        ),
        now=AS_OF,
    )
    assert s["accepted"] == 1 and s["delete_requested"] == 1
    statuses = _count(rt, "SELECT count(*) FROM customers WHERE status = 'deletion_requested'")
    assert statuses == 1
    # the stored consent was updated, not duplicated
    assert _count(rt, "SELECT count(*) FROM consents") == 2
    assert _count(rt, "SELECT count(*) FROM consents WHERE withdrawn_at IS NOT NULL") == 1


def test_minimisation_drops_fields_no_consented_purpose_needs(initialised_vault, landing):
    rt = initialised_vault
    s = ingest_batch(
        rt,
        _batch(
            landing,
            "min",
            {
                "customers.csv": _lines(
                    CUSTOMER_HEADER,
                    _customer("n1", national_id="ID-1"),  # payment only: no address, no ids
                    _customer("n2", national_id="ID-2"),  # customs clearance: ids kept
                ),
                "consents.csv": _lines(
                    CONSENT_HEADER, _consent("n1", "payment"), _consent("n2", "customs_clearance")
                ),
            },
        ),
        now=AS_OF,
    )
    assert s["accepted"] == 4
    assert s["dropped_fields"]["national_id"] == 1
    assert s["dropped_fields"]["passport_number"] == 1
    assert s["dropped_fields"]["phone"] == 2
    assert _count(rt, "SELECT count(*) FROM identity_info") == 1
    assert _count(rt, "SELECT count(*) FROM basic_info WHERE address_line IS NULL") == 1


def test_every_stored_item_records_its_source(initialised_vault, landing):
    rt = initialised_vault
    ingest_batch(
        rt,
        _batch(
            landing,
            "lin",
            {
                "customers.csv": _lines(CUSTOMER_HEADER, _customer("l1")),
                "consents.csv": _lines(
                    CONSENT_HEADER, _consent("l1", "order_fulfilment;marketing")
                ),
                "orders.csv": "order_id,external_id,placed_at,amount,currency\n"
                "o1,l1,2026-10-02T12:00:00Z,10.00,EUR\n",
                "events.jsonl": '{"external_id":"l1","occurred_at":"2026-10-03T00:00:00Z",'
                '"event_type":"view"}\n',
            },
        ),
        now=AS_OF,
    )
    with rt.engine.connect() as conn:
        refs = {
            table: conn.execute(text(f"SELECT {col} FROM {table}")).scalar()
            for table, col in (
                ("customers", "source_ref"),
                ("consents", "source"),
                ("orders", "source_ref"),
                ("events", "source_ref"),
            )
        }
        platform = conn.execute(text("SELECT source_system FROM customers")).scalar()
    assert platform == "shopify"
    assert refs["customers"] == "batch=lin;file=customers.csv;line=2;notice=v3"
    assert refs["consents"] == "batch=lin;file=consents.csv;line=2"
    assert refs["orders"] == "batch=lin;file=orders.csv;line=2"
    assert refs["events"] == "batch=lin;file=events.jsonl;line=1"


def test_orders_upsert_on_the_order_id(initialised_vault, landing):
    rt = initialised_vault
    files = {
        "customers.csv": _lines(CUSTOMER_HEADER, _customer("r1")),
        "consents.csv": _lines(CONSENT_HEADER, _consent("r1")),
        "orders.csv": "order_id,external_id,placed_at,amount,currency\n"
        "o1,r1,2026-10-02T12:00:00Z,10.00,EUR\n",
    }
    ingest_batch(rt, _batch(landing, "o1", files), now=AS_OF)
    files["orders.csv"] = files["orders.csv"].replace("10.00", "12.00")
    s = ingest_batch(rt, _batch(landing, "o2", files), now=AS_OF)
    assert s["accepted"] == 3
    assert _count(rt, "SELECT count(*) FROM orders") == 1
    assert _count(rt, "SELECT count(*) FROM customers") == 1


# ---- the quarantine: encrypted, reviewed by Data Management, logged --------------------------


@pytest.fixture
def quarantined(initialised_vault, landing):
    from custos.demo.seed import seed_staff

    rt = initialised_vault
    seed_staff(rt.engine, rt.policy)
    secret_email = "quarantined.person@example.de"
    ingest_batch(
        rt,
        _batch(
            landing,
            "qz",
            {
                "customers.csv": _lines(
                    CUSTOMER_HEADER, _customer("z1", email=secret_email), _customer("z2")
                ),
                "consents.csv": _lines(CONSENT_HEADER, _consent("z2")),
            },
        ),
        now=AS_OF,
    )
    with rt.engine.connect() as conn:
        item = conn.execute(text("SELECT id FROM quarantine WHERE reason = 'NO_CONSENT'")).scalar()
    return rt, item, secret_email


def test_quarantined_rows_are_encrypted_at_rest(quarantined):
    rt, item, secret = quarantined
    with rt.engine.connect() as conn:
        payload, detail = conn.execute(
            text("SELECT payload, detail FROM quarantine WHERE id = :i"), {"i": item}
        ).one()
    assert secret.encode() not in bytes(payload) and secret not in detail
    if rt.engine.dialect.name == "sqlite":
        database = Path(rt.engine.url.database).read_bytes()
        assert secret.encode() not in database


def test_show_needs_a_reviewer_and_is_logged(quarantined, capsys):
    rt, item, secret = quarantined
    with pytest.raises(AccessRefused, match="NOT_A_REVIEWER"):
        read_quarantined(rt, "s-business-1", [item])
    shown = read_quarantined(rt, "s-data_management-1", [item])
    assert secret in shown[item][1].decode()
    with rt.engine.connect() as conn:
        decisions = conn.execute(
            text(
                "SELECT staff_id, decision, reason FROM access_log WHERE action = 'quarantine_show'"
            )
        ).all()
    assert [(d[0], d[1]) for d in decisions] == [
        ("s-business-1", "refused"),
        ("s-data_management-1", "allowed"),
    ]
    assert decisions[1][2] == item
    assert main(["quarantine", "show", "--as", "s-data_management-1", item]) == 0
    assert secret in capsys.readouterr().out


def test_release_sends_the_row_through_the_pipeline_again(quarantined, landing):
    rt, item, _ = quarantined
    from custos.collection.review import release

    # the missing consent arrives later, alone: its customer is unknown, so it is held too
    late = ingest_batch(
        rt,
        _batch(landing, "late", {"consents.csv": _lines(CONSENT_HEADER, _consent("z1"))}),
        now=AS_OF,
    )
    assert late["quarantined"] == {c.UNKNOWN_CUSTOMER: 1}
    with rt.engine.connect() as conn:
        consent_item = conn.execute(
            text("SELECT id FROM quarantine WHERE reason = 'UNKNOWN_CUSTOMER'")
        ).scalar()
    # released together, customer and consent pass the pipeline as one new batch
    summary = release(rt, "s-data_management-1", [item, consent_item], now=AS_OF)
    assert summary["accepted"] == 2 and summary["quarantined"] == {}
    assert _count(rt, "SELECT count(*) FROM customers") == 2
    status, payload = _item(rt, item)
    assert status == "released" and payload is None


def _item(rt, item):
    with rt.engine.connect() as conn:
        return conn.execute(
            text("SELECT status, payload FROM quarantine WHERE id = :i"), {"i": item}
        ).one()


def test_discard_destroys_content_and_the_key_once_unused(quarantined):
    rt, item, _ = quarantined
    from custos.collection.review import discard

    others = _count(rt, "SELECT count(*) FROM quarantine WHERE payload IS NOT NULL") - 1
    discard(rt, "s-data_management-1", [item])
    status, payload = _item(rt, item)
    assert status == "discarded" and payload is None
    assert _count(rt, "SELECT count(*) FROM quarantine_keys") == (1 if others else 0)


def test_retention_purge_destroys_expired_payloads_and_keys(quarantined):
    rt, item, _ = quarantined
    from datetime import timedelta

    from custos.collection.quarantine import purge_expired

    assert purge_expired(rt.engine, AS_OF.date())["payloads_destroyed"] == 0
    days = rt.policy.quarantine.retention_days
    result = purge_expired(rt.engine, AS_OF.date() + timedelta(days=days + 1))
    assert result["payloads_destroyed"] >= 1 and result["keys_destroyed"] == 1
    assert _count(rt, "SELECT count(*) FROM quarantine_keys") == 0
    assert _count(rt, "SELECT count(*) FROM quarantine WHERE payload IS NOT NULL") == 0


def test_cli_ingest_json_contract_and_evidence(initialised_vault, landing, capsys):
    write_landing_batch(landing / "cli", customers=80, seed=9, as_of=AS_OF, min_each=1)
    assert main(["ingest", "--json", "--as-of", AS_OF.isoformat(), str(landing / "cli")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[:5] == ["batch", "received", "accepted", "quarantined", "dropped_fields"]
    assert out["received"] == out["accepted"] + sum(out["quarantined"].values())
    assert main(["evidence", "verify"]) == 0
    evidence = initialised_vault.settings.home / "evidence"
    names = {p.name for p in evidence.rglob("*") if p.is_file()}
    assert {"summary.json", "summary.html", "quality.json", "quarantine.csv"} <= names
    assert "landing-destruction.json" in names
    # no value of the batch in any evidence file: e-mail addresses never appear
    for path in evidence.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".html"):
            assert "@example" not in path.read_text(encoding="utf-8"), path.name


def test_rejects_never_show_the_raw_line_in_their_repr():
    from custos.collection.reader import Reject

    reject = Reject(3, c.MALFORMED_ROW, "line 3: not valid JSON", b'{"email":"x@y.de"')
    assert "x@y.de" not in repr(reject) and "x@y.de" not in str(reject)


def test_worker_processes_give_the_same_result_as_inline(initialised_vault, landing, monkeypatch):
    """Customers files above PARALLEL_BYTES are judged in worker processes; force that for
    a small batch and check the oracle still holds exactly."""
    from custos.collection import ingest

    monkeypatch.setattr(ingest, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(ingest, "CHUNK_ROWS", 50)  # many chunks in flight
    rt = initialised_vault
    report = write_landing_batch(landing / "par", customers=400, seed=11, as_of=AS_OF, min_each=2)
    summary = ingest_batch(rt, landing / "par", now=AS_OF)
    expected = report["expected"]
    assert (summary["received"], summary["accepted"]) == (
        expected["received"],
        expected["accepted"],
    )
    assert summary["quarantined"] == {k: v for k, v in expected["quarantined"].items() if v}
    assert summary["delete_requested"] == expected["delete_requested"]


def test_seen_keys_follow_the_duplicate_tracker_rule(tmp_path):
    from custos.collection.staging import Staging
    from custos.collection.validate import DuplicateTracker

    rows = [
        (c.CUSTOMERS, {"external_id": "a"}),
        (c.CUSTOMERS, {"external_id": " a "}),  # same key once trimmed
        (c.ORDERS, {"order_id": "a"}),  # another kind: not a duplicate
        (c.CUSTOMERS, {"external_id": ""}),  # no key: never a duplicate
        (c.CUSTOMERS, {"external_id": ""}),
        (c.EVENTS, {"external_id": "a"}),  # events have no batch key
        (c.EVENTS, {"external_id": "a"}),
        (c.ORDERS, {"order_id": "a"}),
    ]
    tracker = DuplicateTracker()
    with Staging(parent=tmp_path) as staging:
        seen = [staging.seen.check(kind, row) for kind, row in rows]
    assert seen == [tracker.check(kind, row) for kind, row in rows]
    assert [f is not None for f in seen] == [False, True, False, False, False, False, False, True]
    assert not list(tmp_path.iterdir()), "the staging folder is removed"
