"""The policy-as-data files: the shipped ones load, and a broken one is refused with the
file name, the key path and the reason (DESIGN: "Bad input and faults")."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from custos.errors import PolicyError
from custos.policy import CATEGORIES, current_policy, load_policy

SHIPPED = Path(__file__).resolve().parents[1] / "include" / "policy"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(SHIPPED, target)
    return target


def _edit(directory: Path, name: str, change: Callable[[dict], object]) -> None:
    path = directory / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _refused(directory: Path, *parts: str) -> str:
    with pytest.raises(PolicyError) as excinfo:
        load_policy(directory)
    message = str(excinfo.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def test_shipped_policy_loads() -> None:
    policy = load_policy(SHIPPED)
    assert {"data_management", "business", "technology", "legal"} <= set(policy.departments)
    assert policy.minor_age_for("DE") == 16
    assert policy.minor_age_for("FR") == 16
    assert policy.minor_age_for("US") == 14
    assert policy.minor_age_for("JP") == 14
    assert policy.retention_months("standard", "transaction") == 36
    assert set(policy.retention_rules["standard"].categories) == set(CATEGORIES)
    assert {"popup", "agreement", "checkbox"} == set(policy.express_channels)
    assert len(policy.controls) >= 7
    for control in policy.controls.values():
        assert control.owner in policy.departments
    from datetime import date

    assert policy.due_date("high", date(2026, 11, 1)) == date(2026, 11, 8)


def test_current_policy_follows_the_environment_and_rereads_changes(policy_dir, monkeypatch):
    monkeypatch.setenv("CUSTOS_POLICY_DIR", str(policy_dir))
    assert current_policy().directory == policy_dir
    assert current_policy().retention_months("standard", "behaviour") == 6

    def shorter(d):
        d["rules"][0]["categories"]["behaviour"]["months"] = 3

    _edit(policy_dir, "retention.yaml", shorter)
    assert current_policy().retention_months("standard", "behaviour") == 3


def test_negative_retention_months(policy_dir: Path) -> None:
    def negative(d):
        d["rules"][0]["categories"]["basic"]["months"] = -1

    _edit(policy_dir, "retention.yaml", negative)
    _refused(policy_dir, "retention.yaml", "rules[0].categories.basic.months", "greater than 0")


def test_unknown_category(policy_dir: Path) -> None:
    def unknown(d):
        d["rules"][0]["categories"]["biometric"] = {"months": 12, "source": "x"}

    _edit(policy_dir, "retention.yaml", unknown)
    _refused(policy_dir, "retention.yaml", "rules[0].categories.biometric", "'basic'")


def test_missing_category(policy_dir: Path) -> None:
    def missing(d):
        del d["rules"][0]["categories"]["behaviour"]

    _edit(policy_dir, "retention.yaml", missing)
    _refused(policy_dir, "retention.yaml", "rules[0].categories", "missing ['behaviour']")


def test_control_owner_must_be_a_department(policy_dir: Path) -> None:
    def owner(d):
        d["controls"][2]["owner"] = "marketing_team"

    _edit(policy_dir, "controls.yaml", owner)
    _refused(
        policy_dir, "controls.yaml", "controls[2].owner", "'marketing_team'", "is not a department"
    )


def test_unknown_check_name(policy_dir: Path) -> None:
    def check(d):
        d["controls"][1]["check"] = "consent_everywhere"

    _edit(policy_dir, "controls.yaml", check)
    _refused(
        policy_dir,
        "controls.yaml",
        "controls[1].check",
        "'consent_everywhere'",
        "not a known check",
    )


def test_duplicate_control_id(policy_dir: Path) -> None:
    def duplicate(d):
        d["controls"][3]["id"] = d["controls"][0]["id"]

    _edit(policy_dir, "controls.yaml", duplicate)
    _refused(policy_dir, "controls.yaml", "controls[3].id", "duplicate id 'ART11-CONSENT-PRESENT'")


@pytest.mark.parametrize("code", ["XX", "DEU", "12"])
def test_bad_country_code_in_minor_age_override(policy_dir: Path, code: str) -> None:
    def bad(d):
        d["minor_age"]["overrides"][0]["countries"].append(code)

    _edit(policy_dir, "collection.yaml", bad)
    _refused(
        policy_dir,
        "collection.yaml",
        "minor_age.overrides[0].countries",
        repr(code),
        "ISO 3166-1 alpha-2",
    )
