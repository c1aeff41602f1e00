"""The monthly departmental check (Art. 18) against the seeder's oracle: each violating
customer carries exactly one injected violation, so every control must report exactly the
injected counts per department, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from custos.crypto.keyring import open_key_provider
from custos.demo.seed import seed_vault
from custos.duties.monthly_check import DAG_ID, GROUPS, group_controls, run_group, run_monthly_check
from custos.evidence import sanitise_run_id, verify_store
from custos.vault.db import bind_keyring, make_engine, migrate, sync_departments
from custos.vault.models import Finding

PERIOD = "2026-10"
PLAINTEXT_CONTROL = "ART12-NO-PLAINTEXT-PI"
SOURCE_CONTROL = "ART11-SOURCE-RECORDED"


def _expected(report: dict) -> dict[str, dict[str, int]]:
    expected: dict[str, dict[str, int]] = defaultdict(dict)
    for violation, by_department in report["injected"].items():
        control = report["controls"][violation]
        for department, count in by_department.items():
            expected[control][department] = expected[control].get(department, 0) + count
    return dict(expected)


def _run_all_groups(rt) -> dict[str, dict]:
    results = {}
    for group in GROUPS:
        results.update(run_group(rt.engine, rt.policy, PERIOD, group)["controls"])
    return results


def _counts(results: dict[str, dict]) -> dict[str, dict[str, int]]:
    return {control: result["counts"] for control, result in results.items()}


def _findings(engine) -> dict[tuple[str, str], Finding]:
    with Session(engine) as session:
        return {
            (f.control_id, f.department_id): f
            for f in session.scalars(select(Finding).where(Finding.period == PERIOD))
        }


def _pinned(rt) -> dict[str, bytes]:
    key_id, public = open_key_provider(rt.settings).evidence_public_key()
    return {key_id: public}


def _run_dir(rt, run_id: str) -> Path:
    root = Path(rt.settings.evidence_url.removeprefix("file://"))
    run_dir = root / PERIOD / DAG_ID / sanitise_run_id(run_id)
    assert run_dir.is_dir(), run_dir
    return run_dir


def test_checks_report_exactly_the_injected_counts(seeded_vault):
    rt, report = seeded_vault
    expected = _expected(report)
    assert sum(sum(c.values()) for c in expected.values()) == report["injected_total"] > 0
    counts = _counts(_run_all_groups(rt))
    catalogue = {c.id for group in GROUPS for c in group_controls(rt.policy, group)}
    assert set(counts) == catalogue
    assert set(expected) <= catalogue
    for control in sorted(catalogue):
        assert counts[control] == expected.get(control, {}), control


def test_group_results_hold_pseudonymous_subjects(seeded_vault):
    rt, _ = seeded_vault
    results = run_group(rt.engine, rt.policy, PERIOD, "collection")
    with rt.engine.connect() as conn:
        ids = set(conn.scalars(text("SELECT id FROM customers")))
    for control in results["controls"].values():
        assert len(control["violations"]) == sum(control["counts"].values())
        for violation in control["violations"]:
            assert violation["subject"] in ids
            assert violation["department"] in rt.policy.departments


def test_a_month_before_the_data_has_nothing_to_report(seeded_vault):
    rt, _ = seeded_vault
    for group in GROUPS:
        results = run_group(rt.engine, rt.policy, "2024-01", group)
        for control_id, result in results["controls"].items():
            if control_id != PLAINTEXT_CONTROL:  # storage is judged as it is now
                assert result["counts"] == {}, control_id


def test_multiprocess_seeding_gives_the_same_data_as_inline(custos_home):
    """workers=1 (fork, one chunk per task) must inject exactly what workers=0 does."""
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    initialise(get_settings(), current_policy())
    rt = open_runtime()
    as_of = datetime(2026, 11, 1)
    forked = seed_vault(
        rt.engine, rt.settings, rt.policy, customers=2500, seed=11, as_of=as_of, workers=1
    )
    inline_engine = make_engine(f"sqlite:///{custos_home / 'inline.db'}")
    migrate(inline_engine)
    bind_keyring(inline_engine, rt.keys.keyring_id)
    sync_departments(inline_engine, rt.policy)
    inline = seed_vault(
        inline_engine, rt.settings, rt.policy, customers=2500, seed=11, as_of=as_of, workers=0
    )
    assert forked["injected"] == inline["injected"]
    assert forked["injected_total"] == inline["injected_total"] > 0
    for table in (
        "customers",
        "data_keys",
        "basic_info",
        "orders",
        "events",
        "consents",
        "data_uses",
    ):
        sql = text(f"SELECT count(*) FROM {table}")
        with rt.engine.connect() as a, inline_engine.connect() as b:
            assert a.scalar(sql) == b.scalar(sql), table
    counts = _counts(_run_all_groups(rt))
    assert counts == {control: _expected(forked).get(control, {}) for control in counts}
    inline_engine.dispose()
    rt.engine.dispose()


def test_monthly_check_records_findings_once(seeded_vault):
    rt, report = seeded_vault
    expected = _expected(report)
    first = run_monthly_check(rt, PERIOD, "test__1")
    failing = {(c, d): n for c, by_dept in expected.items() for d, n in by_dept.items()}
    assert first["findings_open"] == first["findings_new"] == len(failing)
    assert first["affected_by_control"] == {
        c: sum(expected.get(c, {}).values()) for c in first["affected_by_control"]
    }
    findings = _findings(rt.engine)
    assert {k: f.affected_count for k, f in findings.items()} == failing
    for (control_id, _), finding in findings.items():
        control = rt.policy.controls[control_id]
        assert finding.status == "open" and finding.resolved_at is None
        assert finding.owner_department == control.owner
        assert finding.severity == control.severity
        assert finding.dag_run_id == "test__1"
        assert finding.due_on == rt.policy.due_date(control.severity, finding.detected_at.date())

    second = run_monthly_check(rt, PERIOD, "test__2")
    assert second["findings_new"] == 0 and second["findings_resolved"] == 0
    again = _findings(rt.engine)
    assert {k: f.id for k, f in again.items()} == {k: f.id for k, f in findings.items()}
    assert {k: (f.affected_count, f.status, f.dag_run_id) for k, f in again.items()} == {
        k: (n, "open", "test__2") for k, n in failing.items()
    }
    with rt.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Finding)) == len(failing)


def test_fixed_control_is_resolved_on_rerun(seeded_vault):
    rt, report = seeded_vault
    run_monthly_check(rt, PERIOD, "test__1")
    source_departments = set(report["injected"]["MISSING_CONSENT_SOURCE"])
    assert source_departments, "the seed injects missing consent sources"
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE consents SET source = 'shopify/checkout' WHERE source IS NULL"))
    rerun = run_monthly_check(rt, PERIOD, "test__2")
    assert rerun["affected_by_control"][SOURCE_CONTROL] == 0
    assert rerun["findings_resolved"] == len(source_departments)
    findings = _findings(rt.engine)
    for (control_id, _), finding in findings.items():
        if control_id == SOURCE_CONTROL:
            assert finding.status == "resolved" and finding.resolved_at is not None
        else:
            assert finding.status == "open"
    assert {d for c, d in findings if c == SOURCE_CONTROL} == source_departments


def test_retention_rule_alone_does_not_fix_unassigned_data_keys(seeded_vault):
    """The rule column is fixed but the data keys still sit in the 'unassigned' buckets:
    still a finding until they are re-wrapped."""
    rt, report = seeded_vault
    with rt.engine.begin() as conn:
        conn.execute(
            text("UPDATE customers SET retention_rule = 'standard' WHERE retention_rule IS NULL")
        )
    counts = _counts(_run_all_groups(rt))
    assert counts["ART12-RETENTION-ASSIGNED"] == report["injected"]["RETENTION_NOT_ASSIGNED"]


def test_evidence_verifies_and_an_edited_byte_is_caught(seeded_vault):
    rt, _ = seeded_vault
    result = run_monthly_check(rt, PERIOD, "test__1")
    assert result["evidence_files"] >= 7
    ok = verify_store(rt.evidence, PERIOD, public_keys=_pinned(rt))
    assert ok.ok, ok.problems
    assert ok.runs_checked == 1 and ok.files_checked == result["evidence_files"]

    csv_path = _run_dir(rt, "test__1") / "record_findings" / "findings.csv"
    data = bytearray(csv_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    csv_path.write_bytes(bytes(data))
    bad = verify_store(rt.evidence, PERIOD, public_keys=_pinned(rt))
    assert not bad.ok
    assert [(p.kind, p.path.rsplit("/", 2)[-2:]) for p in bad.problems] == [
        ("altered", ["record_findings", "findings.csv"])
    ]


def test_a_deleted_run_is_named_by_verify(seeded_vault, capsys):
    """A manifest cannot reveal that its whole run folder was removed; the vault's
    registry of sealed runs does."""
    import shutil

    from custos.cli import main

    rt, _ = seeded_vault
    run_monthly_check(rt, PERIOD, "test__keep")
    run_monthly_check(rt, PERIOD, "test__gone")
    assert main(["evidence", "verify", "--period", PERIOD]) == 0
    shutil.rmtree(_run_dir(rt, "test__gone"))
    assert verify_store(rt.evidence, PERIOD, public_keys=_pinned(rt)).ok  # store alone: blind
    capsys.readouterr()
    assert main(["evidence", "verify", "--period", PERIOD]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "test__gone/manifest.json" in out
    assert "test__keep" not in out


def test_unclassified_column_is_reported(seeded_vault):
    rt, report = seeded_vault
    with rt.engine.begin() as conn:
        conn.execute(text("ALTER TABLE customers ADD COLUMN notes VARCHAR(100)"))
    result = run_group(rt.engine, rt.policy, PERIOD, "storage")["controls"][PLAINTEXT_CONTROL]
    subjects = [v["subject"] for v in result["violations"]]
    assert "schema:customers.notes" in subjects
    injected = sum(report["injected"]["PLAINTEXT_PI_IN_METADATA"].values())
    assert result["counts"] == {"technology": injected + 1}


def _put_in_consent_source(rt, value: str) -> str:
    with rt.engine.begin() as conn:
        consent_id, customer_id = conn.execute(
            text("SELECT id, customer_id FROM consents WHERE source IS NOT NULL ORDER BY id")
        ).first()
        conn.execute(
            text("UPDATE consents SET source = :v WHERE id = :id"), {"v": value, "id": consent_id}
        )
    return customer_id


@pytest.mark.parametrize("value", ["x+4915123456789", "shopee/note/a.b@example.com"])
def test_pi_in_a_metadata_column_is_found(seeded_vault, value):
    rt, report = seeded_vault
    customer_id = _put_in_consent_source(rt, value)
    result = run_group(rt.engine, rt.policy, PERIOD, "storage")["controls"][PLAINTEXT_CONTROL]
    injected = sum(report["injected"]["PLAINTEXT_PI_IN_METADATA"].values())
    found = [v for v in result["violations"] if v["detail"].startswith("consents:")]
    assert [v["subject"] for v in found] == [customer_id]
    assert result["counts"] == {"technology": injected + 1}


def test_the_database_refuses_plaintext_in_ciphertext_columns(seeded_vault):
    """The format constraints stop plaintext on every write, whoever writes it."""
    from sqlalchemy.exc import IntegrityError

    rt, _ = seeded_vault
    with rt.engine.connect() as conn:
        customer = conn.scalar(text("SELECT customer_id FROM basic_info ORDER BY customer_id"))
    for statement, value in (
        ("UPDATE basic_info SET name = :v WHERE customer_id = :c", b"Alice Example"),
        ("UPDATE basic_info SET email = :v WHERE customer_id = :c", b"\x01" + b"x" * 10),
        ("UPDATE orders SET details = :v WHERE customer_id = :c", b'{"amount": 12.5}'),
    ):
        with pytest.raises(IntegrityError), rt.engine.begin() as conn:
            conn.execute(text(statement), {"v": value, "c": customer})


def test_a_dropped_format_constraint_is_reported(seeded_vault):
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    rt, report = seeded_vault
    with rt.engine.begin() as conn:
        operations = Operations(MigrationContext.configure(conn))
        with operations.batch_alter_table("identity_info") as batch_op:
            batch_op.drop_constraint("ck_identity_info_national_id_format", type_="check")
    result = run_group(rt.engine, rt.policy, PERIOD, "storage")["controls"][PLAINTEXT_CONTROL]
    assert "schema:identity_info.national_id" in [v["subject"] for v in result["violations"]]
    injected = sum(report["injected"]["PLAINTEXT_PI_IN_METADATA"].values())
    assert result["counts"] == {"technology": injected + 1}
