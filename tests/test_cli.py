"""The `custos` command line, called in-process: exit codes mean something (0 ok, 1 a check
or verification failed, 2 usage or input error) and output names what went wrong."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from custos.cli import main
from custos.duties.monthly_check import DAG_ID
from custos.vault.db import head_revision


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_init_twice_keeps_the_keyring(custos_home: Path, capsys):
    assert main(["init", "--json"]) == 0
    first = _json(capsys)
    keyring = custos_home / "keyring.json"
    assert first["keyring_created"] is True and first["keyring"] == str(keyring)
    assert first["vault"] == "sqlite" and first["schema_revision"] == head_revision()
    content = keyring.read_bytes()
    assert main(["init", "--json"]) == 0
    second = _json(capsys)
    assert second["keyring_created"] is False
    assert second["keyring_id"] == first["keyring_id"]
    assert keyring.read_bytes() == content
    assert main(["init"]) == 0
    assert "existing" in capsys.readouterr().out


def test_bad_period_is_a_usage_error(custos_home: Path, capsys):
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["check", "monthly", "--period", "2026-13"]) == 2
    err = capsys.readouterr().err
    assert "2026-13" in err and "YYYY-MM" in err
    assert not (custos_home / "evidence" / "2026-13").exists()


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["frobnicate"])
    assert excinfo.value.code == 2


def test_evidence_verify_on_an_empty_store(custos_home: Path, capsys):
    assert main(["evidence", "verify", "--json"]) == 0
    report = _json(capsys)
    assert report["ok"] is True and report["runs_checked"] == 0 and report["problems"] == []
    assert main(["evidence", "verify"]) == 0
    assert "OK" in capsys.readouterr().out


def _monthly_check(capsys, *extra: str) -> tuple[int, dict]:
    code = main(["check", "monthly", "--period", "2026-10", "--json", *extra])
    return code, _json(capsys)


def test_evidence_verify_after_tampering(custos_home: Path, capsys):
    assert main(["init"]) == 0
    capsys.readouterr()
    code, result = _monthly_check(capsys)
    assert code == 0 and result["evidence_files"] > 0
    assert main(["evidence", "verify", "--period", "2026-10"]) == 0
    assert "OK" in capsys.readouterr().out

    (csv_path,) = (custos_home / "evidence" / "2026-10" / DAG_ID).glob(
        "*/record_findings/findings.csv"
    )
    csv_path.write_text(
        csv_path.read_text(encoding="utf-8") + "2026-10,X,Art. 11,legal,c1,x\n", encoding="utf-8"
    )
    assert main(["evidence", "verify"]) == 1
    out = capsys.readouterr().out
    relative = csv_path.relative_to(custos_home / "evidence").as_posix()
    assert relative in out and "ALTERED" in out and "1 PROBLEMS" in out
    assert main(["evidence", "verify", "--json"]) == 1
    report = _json(capsys)
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("altered", relative)]


def test_demo_seed_reports_injected_counts(custos_home: Path, capsys):
    assert main(["init"]) == 0
    capsys.readouterr()
    argv = [
        "demo",
        "seed",
        "--customers",
        "200",
        "--seed",
        "3",
        "--workers",
        "0",
        "--as-of",
        "2026-11-01",
    ]
    assert main(argv) == 0
    report = _json(capsys)
    assert report["customers"] == 200 and report["seed"] == 3
    assert report["as_of"].startswith("2026-11-01")
    assert set(report["injected"]) == set(report["controls"])
    total = sum(n for by_dept in report["injected"].values() for n in by_dept.values())
    assert total == report["injected_total"]

    # --if-empty does nothing on a seeded vault.
    assert main([*argv, "--if-empty", "--json"]) == 0
    assert _json(capsys) == {"skipped": True, "customers": 200}

    # The monthly check finds what was injected; --strict turns failures into exit 1.
    code, result = _monthly_check(capsys, "--strict")
    assert sum(result["affected_by_control"].values()) == report["injected_total"]
    assert code == (1 if report["injected_total"] else 0)


def test_demo_seed_needs_an_initialised_vault(custos_home: Path, capsys):
    assert main(["demo", "seed", "--customers", "10", "--workers", "0"]) == 2
    assert "custos init" in capsys.readouterr().err


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 11, 1, 6, 0, 0, tzinfo=tz)
