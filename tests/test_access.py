"""Purpose-bound reads (Art. 12, 13): the single read path, its refusals, the access log
it writes, and the hourly access watch over that log."""

from __future__ import annotations

import ast
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from custos.access import reader
from custos.access.reader import read
from custos.cli import main

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 2, 3, 30)  # after the seeded data (as_of 2026-11-01)


def _one(rt, sql: str, **params) -> str:
    with rt.engine.connect() as conn:
        value = conn.scalar(text(sql), params)
    assert value is not None, f"no seeded row for: {sql}"
    return value


def _consenting(rt, purpose: str) -> str:
    return _one(
        rt,
        """
        SELECT c.id FROM customers c WHERE c.is_minor = FALSE AND EXISTS (
          SELECT 1 FROM consents k WHERE k.customer_id = c.id AND k.subject = 'customer'
          AND k.withdrawn_at IS NULL AND (';' || k.purposes || ';') LIKE :p)
        ORDER BY c.id LIMIT 1""",
        p=f"%;{purpose};%",
    )


def _log_rows(rt) -> list[tuple]:
    with rt.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT staff_id, department_id, purpose, customer_id, categories, "
                    "decision, reason FROM access_log ORDER BY idx"
                )
            )
        )


def test_only_the_reader_decrypts_personal_information():
    """Field values are decrypted with field_aad; only reader.py may do that. Other
    decrypt calls (key unwrapping) must not touch field associated data."""
    package = REPO / "include" / "custos"
    offenders = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
        }
        relative = path.relative_to(package).as_posix()
        if "decrypt" in calls and "field_aad" in calls and relative != "access/reader.py":
            offenders.append(relative)
    assert offenders == []
    reader_source = (package / "access" / "reader.py").read_text()
    assert "field_aad" in reader_source and ".decrypt(" in reader_source


def test_allowed_read_decrypts_and_is_logged(seeded_vault, seeded_plaintext):
    rt, _ = seeded_vault
    customer = _consenting(rt, "customer_service")
    result = read(
        rt, "s-customer_service-1", customer, ["basic", "transaction"], "customer_service", now=NOW
    )
    assert result.refused == {}
    assert result.allowed == ["basic", "transaction"]
    assert result.values["basic"]["name"] and "@" in result.values["basic"]["email"]
    rows = _log_rows(rt)
    assert rows[-1] == (
        "s-customer_service-1",
        "customer_service",
        "customer_service",
        customer,
        "basic;transaction",
        "allowed",
        None,
    )
    assert result.values["basic"]["email"] not in str(rows)


@pytest.mark.parametrize(
    ("staff", "purpose", "categories", "customer_kind", "code"),
    [
        ("s-nobody-9", "customer_service", ["basic"], "customer_service", reader.STAFF_UNKNOWN),
        (
            "s-technology-3",
            "personalisation",
            ["behaviour"],
            "customer_service",
            reader.STAFF_DISABLED,
        ),
        ("s-business-1", "resale", ["basic"], "customer_service", reader.UNKNOWN_PURPOSE),
        ("s-business-1", "order_fulfilment", ["basic"], "missing", reader.CUSTOMER_UNKNOWN),
        (
            "s-customer_service-1",
            "customer_service",
            ["identity"],
            "customer_service",
            reader.NOT_IN_ACCESS_MATRIX,
        ),
        ("s-business-1", "marketing", ["basic"], "no_marketing", reader.NO_CONSENT_FOR_PURPOSE),
        (
            "s-business-1",
            "order_fulfilment",
            ["basic"],
            "minor_without_guardian",
            reader.NO_GUARDIAN_CONSENT,
        ),
        (
            "s-customer_service-1",
            "customer_service",
            ["basic"],
            "withdrawn_everything",
            reader.NO_CONSENT_FOR_PURPOSE,
        ),
    ],
)
def test_refusals_name_the_rule_and_are_logged(
    seeded_vault, staff, purpose, categories, customer_kind, code
):
    rt, _ = seeded_vault
    customers = {
        "customer_service": lambda: _consenting(rt, "customer_service"),
        "missing": lambda: "c" + "0" * 30,
        "no_marketing": lambda: _one(
            rt,
            """SELECT c.id FROM customers c WHERE NOT EXISTS (
            SELECT 1 FROM consents k WHERE k.customer_id = c.id AND k.purposes LIKE '%marketing%')
            AND EXISTS (SELECT 1 FROM consents k WHERE k.customer_id = c.id)
            ORDER BY c.id LIMIT 1""",
        ),
        "minor_without_guardian": lambda: _one(
            rt,
            """SELECT c.id FROM customers c
            WHERE c.is_minor = TRUE AND NOT EXISTS (SELECT 1 FROM consents k
            WHERE k.customer_id = c.id AND k.subject = 'guardian') ORDER BY c.id LIMIT 1""",
        ),
    }
    if customer_kind == "withdrawn_everything":
        customer = _consenting(rt, "customer_service")
        with rt.engine.begin() as conn:
            conn.execute(
                text("UPDATE consents SET withdrawn_at = :t WHERE customer_id = :c"),
                {"t": datetime(2026, 11, 1, 12), "c": customer},
            )
    else:
        customer = customers[customer_kind]()
    before = len(_log_rows(rt))
    result = read(rt, staff, customer, categories, purpose, now=NOW)
    assert result.values == {}
    assert {c: found for c, (found, _) in result.refused.items()} == dict.fromkeys(categories, code)
    rows = _log_rows(rt)
    assert len(rows) == before + 1
    logged = rows[-1]
    assert logged[5] == "refused" and logged[6] == code
    if code == reader.STAFF_UNKNOWN:
        assert logged[0].startswith("unregistered:")  # typed ids never reach the log


def test_minimum_necessary_refuses_a_category_the_purpose_does_not_need(
    seeded_vault, tmp_path, monkeypatch
):
    """Even if someone widens the matrix, a purpose only reads the categories it needs."""
    policy_dir = tmp_path / "policy"
    shutil.copytree(REPO / "include" / "policy", policy_dir)
    access = policy_dir / "access.yaml"
    access.write_text(
        access.read_text().replace(
            "customer_service: [basic, transaction]\n    order_fulfilment",
            "customer_service: [basic, transaction, behaviour]\n    order_fulfilment",
            1,
        )
    )
    monkeypatch.setenv("CUSTOS_POLICY_DIR", str(policy_dir))
    from custos.runtime import open_runtime

    rt = open_runtime()
    assert "behaviour" in rt.policy.allowed_categories("customer_service", "customer_service")
    customer = _consenting(rt, "customer_service")
    result = read(
        rt, "s-customer_service-1", customer, ["basic", "behaviour"], "customer_service", now=NOW
    )
    assert result.allowed == ["basic"]
    assert result.refused["behaviour"][0] == reader.NOT_NEEDED_FOR_PURPOSE


def test_cli_read_prints_to_the_terminal_and_refusal_exits_1(seeded_vault, capsys):
    rt, _ = seeded_vault
    customer = _consenting(rt, "customer_service")
    assert (
        main(
            [
                "access",
                "read",
                "--as",
                "s-customer_service-1",
                "--purpose",
                "customer_service",
                "--category",
                "basic",
                customer,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "[basic]" in out and "email:" in out
    assert (
        main(
            [
                "access",
                "read",
                "--as",
                "s-customer_service-1",
                "--purpose",
                "customer_service",
                "--category",
                "identity",
                customer,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "NOT_IN_ACCESS_MATRIX" in err and "@" not in err


def test_access_watch_finds_exactly_the_simulated_anomalies(seeded_vault, capsys):
    from custos.demo.access_activity import simulate_hour
    from custos.duties.access_watch import run_access_watch
    from custos.evidence import verify_store
    from custos.vault.models import Finding

    rt, _ = seeded_vault
    hour = "2026-11-02T03"
    report = simulate_hour(rt, hour, bulk_customers=205)
    result = run_access_watch(rt, hour, "test__watch")
    with rt.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT control_id, department_id, affected_count, escalate FROM findings "
                "WHERE period = :p"
            ),
            {"p": hour},
        ).all()
    found: dict = {}
    for control, dept, count, _ in rows:
        found.setdefault(control, {})[dept] = count
    assert found == report["expected_findings"]
    high = {c.id for c in rt.policy.controls.values() if c.severity == "high"}
    assert {r[0] for r in rows if r[3]} == {r[0] for r in rows} & high
    assert result["escalated"] == sum(1 for r in rows if r[0] in high)
    assert Finding.__tablename__ == "findings"
    assert verify_store(rt.evidence, "2026-11").ok
    capsys.readouterr()
    assert main(["access-log", "verify"]) == 0
    assert "OK" in capsys.readouterr().out


def test_permission_changes_are_logged_and_reviewed(seeded_vault, capsys):
    """Administrative actions go to the access log; a grant beyond the matrix shows up in
    the monthly rights review; a non-administrator is refused and logged."""
    from custos.duties.monthly_check import run_group

    rt, _ = seeded_vault
    before = len(_log_rows(rt))
    assert (
        main(
            [
                "staff",
                "grant",
                "--by",
                "s-technology-1",
                "--purpose",
                "marketing",
                "--category",
                "identity",
                "s-business-2",
            ]
        )
        == 0
    )
    assert main(["staff", "disable", "--by", "s-technology-1", "s-finance-2"]) == 0
    assert (
        main(
            [
                "staff",
                "grant",
                "--by",
                "s-business-1",
                "--purpose",
                "marketing",
                "--category",
                "basic",
                "s-business-1",
            ]
        )
        == 1
    )
    rows = _log_rows(rt)[before:]
    assert [(r[0], r[5]) for r in rows] == [
        ("s-technology-1", "allowed"),
        ("s-technology-1", "allowed"),
        ("s-business-1", "refused"),
    ]
    review = run_group(rt.engine, rt.policy, "2026-11", "access")["controls"]
    beyond = review["ART12-ACCESS-RIGHTS-WITHIN-MATRIX"]["violations"]
    assert {v["subject"] for v in beyond} >= {"s-business-2"}
    # disabling revoked s-finance-2's grants: it is not a "disabled staff with rights" case
    disabled = review["ART12-ACCESS-DISABLED-NO-RIGHTS"]["violations"]
    assert "s-finance-2" not in {v["subject"] for v in disabled}


def test_key_rotation_is_logged_per_bucket(seeded_vault, capsys):
    rt, _ = seeded_vault
    before = len(_log_rows(rt))
    assert main(["keys", "rotate", "--grace-seconds", "0", "--json"]) == 0
    with rt.engine.connect() as conn:
        actions = [
            (r[0], r[1])
            for r in conn.execute(
                text("SELECT action, staff_id FROM access_log WHERE idx >= :b ORDER BY idx"),
                {"b": before},
            )
        ]
    assert actions and all(staff == "system:custos" for _, staff in actions)
    assert {a for a, _ in actions} == {"rotate_key", "destroy_key"}
    assert main(["access-log", "verify"]) == 0


def test_monthly_check_reports_a_tampered_access_log(seeded_vault):
    from custos.duties.monthly_check import run_group

    rt, _ = seeded_vault
    customer = _consenting(rt, "customer_service")
    for _ in range(3):
        read(rt, "s-customer_service-1", customer, ["basic"], "customer_service", now=NOW)
    from custos.access.audit import open_access_log

    open_access_log(rt).checkpoint()
    clean = run_group(rt.engine, rt.policy, "2026-11", "access")["controls"]
    assert clean["ART12-ACCESS-LOGGED"]["counts"] == {}
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE access_log SET purpose = 'marketing' WHERE idx = 1"))
    tampered = run_group(rt.engine, rt.policy, "2026-11", "access")["controls"]
    assert tampered["ART12-ACCESS-LOGGED"]["counts"].get("technology", 0) >= 1
