"""Synthetic landing batches (custos.demo.landing): the report is an exact oracle.

Each batch is read back with the real reader, row validation, duplicate tracker and consent
gate, then put through the ingest's batch rules (a row of a quarantined customer is held as
CUSTOMER_QUARANTINED, a row of an id nowhere in the batch is UNKNOWN_CUSTOMER); the counts
must equal the report's, file by file and code by code. Nothing here prints a row.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from custos.collection import DuplicateTracker, read_landing_file, validate_row
from custos.collection import contract as c
from custos.collection.gate import ConsentView, age_on, decide_customer
from custos.demo import landing
from custos.demo.landing import (
    CUSTOMER_QUARANTINED,
    INJECTED,
    WITHDRAWN,
    birth_date_range,
    injected_counts,
    minor_birth_date,
    write_landing_batch,
)
from custos.policy import current_policy

POLICY = current_policy()
AS_OF = datetime(2026, 11, 15, 10, 30, tzinfo=UTC)
LEAP_AS_OF = datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC)
# Problems found by the reader, validate_row or the duplicate tracker (not by the gate).
GATE_SCENARIOS = {c.NO_CONSENT, WITHDRAWN, c.MINOR_WITHOUT_GUARDIAN_CONSENT, c.UNKNOWN_CUSTOMER}
KIND_ORDER = {kind: i for i, kind in enumerate(c.KINDS)}


def _read_back(folder: Path, as_of: datetime) -> dict[str, Any]:
    """What the ingest must conclude about the batch, worked out independently of the
    generator: per file received / accepted / quarantined, plus the gate's findings."""
    today = as_of.date()
    tracker = DuplicateTracker()
    files = sorted(folder.iterdir(), key=lambda p: KIND_ORDER[c.kind_of(p.name)[0]])
    assert [c.kind_of(p.name)[0] for p in files] == list(c.KINDS)
    received: Counter[str] = Counter()
    found: dict[str, Counter[str]] = {}  # file → reader / validation / duplicate codes
    outcome: dict[str, Counter[str]] = defaultdict(Counter)  # file → code ("" = accepted)
    valid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    readable_customers: set[str] = set()
    clean_names: list[str] = []
    for path in files:
        kind = c.kind_of(path.name)[0]
        codes: Counter[str] = Counter()
        for chunk in read_landing_file(path, chunk_rows=500):
            assert chunk.problems == []
            received[path.name] += len(chunk.rows) + len(chunk.rejects)
            codes.update(r.code for r in chunk.rejects)
            for _, raw in chunk.rows:
                if kind == c.CUSTOMERS:
                    readable_customers.add(raw["external_id"].strip())
                row, findings = validate_row(kind, raw, today=today, policy=POLICY)
                if findings:
                    assert len(findings) == 1  # one injected problem, one finding
                    codes[findings[0].code] += 1
                    continue
                duplicate = tracker.check(kind, row)
                if duplicate is not None:
                    codes[duplicate.code] += 1
                    continue
                valid[kind].append(row)
                if kind == c.CUSTOMERS:
                    clean_names.append(row["name"] or "")
        found[path.name] = codes
        outcome[path.name].update(codes)

    consents: dict[str, list[ConsentView]] = defaultdict(list)
    for row in valid[c.CONSENTS]:
        consents[row["external_id"]].append(ConsentView.from_row(row))
    gate: Counter[str] = Counter()
    accepted: dict[str, tuple[str, ...]] = {}  # external id → purposes in force
    minors = 0
    customers_file = files[0].name
    for row in valid[c.CUSTOMERS]:
        decision = decide_customer(
            row, consents.get(row["external_id"], []), policy=POLICY, today=as_of
        )
        gate["delete_requested"] += decision.delete_requested
        if decision.accepted:
            accepted[row["external_id"]] = decision.purposes
            minors += decision.minor
            outcome[customers_file][""] += 1
        else:
            gate[decision.reason] += 1
            outcome[customers_file][decision.reason] += 1
    categories = {
        c.ORDERS: {p for p, v in POLICY.purposes.items() if "transaction" in v.categories},
        c.EVENTS: {p for p, v in POLICY.purposes.items() if "behaviour" in v.categories},
    }
    for path in files[1:]:
        kind = c.kind_of(path.name)[0]
        for row in valid[kind]:
            external_id = row["external_id"]
            if external_id in accepted:
                if kind in categories:
                    covered = bool(set(accepted[external_id]) & categories[kind])
                    assert covered, f"{path.name}: a row outside the consented categories"
                outcome[path.name][""] += 1
            elif external_id in readable_customers:
                outcome[path.name][CUSTOMER_QUARANTINED] += 1
            else:
                outcome[path.name][c.UNKNOWN_CUSTOMER] += 1
    by_file = {
        name: {
            "received": received[name],
            "accepted": outcome[name][""],
            "quarantined": {k: n for k, n in sorted(outcome[name].items()) if k},
        }
        for name in received
    }
    return {
        "by_file": by_file,
        "found": found,
        "gate": gate,
        "minors": minors,
        "clean_names": clean_names,
    }


def _batch(tmp_path: Path, name: str = "batch-1", **kwargs: Any) -> tuple[Path, dict]:
    kwargs = {"customers": 300, "seed": 7, "as_of": AS_OF, "min_each": 2} | kwargs
    folder = tmp_path / name
    return folder, write_landing_batch(folder, **kwargs)


@pytest.mark.parametrize(
    ("formats", "customers", "min_each", "as_of"),
    [
        ("mixed", 300, 2, AS_OF),
        ("csv", 300, 2, LEAP_AS_OF),
        ("jsonl", 300, 1, AS_OF),
        ("mixed", 3000, 0, AS_OF),  # counts from the rates alone
    ],
)
def test_report_is_the_exact_oracle(tmp_path, formats, customers, min_each, as_of):
    folder, report = _batch(
        tmp_path, customers=customers, min_each=min_each, formats=formats, as_of=as_of
    )
    seen = _read_back(folder, as_of)
    expected = report["expected"]

    # the files, their formats and line counts
    suffix = {"mixed": None, "csv": ".csv", "jsonl": ".jsonl"}[formats]
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(report["files"])
    if suffix:
        assert all(n.endswith(suffix) for n in names)
    else:
        assert names == ["consents.csv", "customers.csv", "events.jsonl", "orders.csv"]
    for name, info in report["files"].items():
        assert seen["by_file"][name]["received"] == info["data_lines"]

    # reader / validation / duplicate codes equal the injected ones, file by file
    for name, info in report["files"].items():
        injected = {k: n for k, n in info["injected"].items() if k not in GATE_SCENARIOS}
        assert dict(seen["found"][name]) == injected, name

    # the gate's codes and deletions
    counts = report["injected"]
    assert counts == injected_counts(customers, min_each)
    gate = seen["gate"]
    assert (
        gate[c.NO_CONSENT] == counts[c.NO_CONSENT] + counts[WITHDRAWN] + counts[c.UNKNOWN_PURPOSE]
    )
    assert gate[c.MINOR_WITHOUT_GUARDIAN_CONSENT] == counts[c.MINOR_WITHOUT_GUARDIAN_CONSENT]
    assert gate["delete_requested"] == expected["delete_requested"] == counts[WITHDRAWN]
    assert seen["minors"] == report["minors_accepted"] > 0

    # the whole oracle, and its arithmetic
    assert seen["by_file"] == expected["by_file"]
    assert expected["received"] == sum(f["received"] for f in expected["by_file"].values())
    assert expected["received"] == expected["accepted"] + sum(expected["quarantined"].values())
    total: Counter[str] = Counter()
    for f in expected["by_file"].values():
        total.update(f["quarantined"])
    assert expected["quarantined"] == dict(sorted(total.items()))
    assert expected["quarantined"].get(c.UNKNOWN_CUSTOMER, 0) == counts[c.UNKNOWN_CUSTOMER]
    if customers >= 3000:  # ~0.5 % of clean customers have formula-like names, all valid
        assert sum(n[:1] in ("=", "+", "@") for n in seen["clean_names"]) >= 3


def test_ratios_and_volumes(tmp_path):
    _, report = _batch(tmp_path, customers=3000, min_each=0)
    assert report["injected"] == {k: round(rate * 3000) for k, rate in INJECTED.items()}
    lines = {n: f["data_lines"] for n, f in report["files"].items()}
    assert lines["customers.csv"] == 3000 + report["injected"][c.DUPLICATE_IN_BATCH]
    assert 0.8 < lines["orders.csv"] / 3000 < 1.2  # ~1 order a customer
    assert 1.2 < lines["events.jsonl"] / 3000 < 1.6  # ~1.4 events a customer
    assert 0.015 < report["minors_accepted"] / 3000 < 0.045  # ~3 % minors


def test_small_batch_without_min_each_may_skip_codes(tmp_path):
    folder, report = _batch(tmp_path, customers=50, min_each=0)
    assert sum(report["injected"].values()) == 0  # every rate x 50 rounds to 0
    assert report["expected"]["quarantined"] == {}
    assert _read_back(folder, AS_OF)["by_file"] == report["expected"]["by_file"]


def test_clean_batch(tmp_path):
    folder, report = _batch(tmp_path, inject=False, formats="jsonl")
    expected = report["expected"]
    assert set(report["injected"].values()) == {0}
    assert expected["accepted"] == expected["received"] and expected["quarantined"] == {}
    assert _read_back(folder, AS_OF)["by_file"] == expected["by_file"]


def test_deterministic(tmp_path, monkeypatch):
    def contents(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}

    a, report_a = _batch(tmp_path, "a", workers=0)
    b, report_b = _batch(tmp_path, "b", workers=0)
    assert contents(a) == contents(b)
    assert {k: v for k, v in report_a.items() if k != "batch"} == {
        k: v for k, v in report_b.items() if k != "batch"
    }
    other, _ = _batch(tmp_path, "other", seed=8)
    assert contents(other) != contents(a)
    shifted, _ = _batch(tmp_path, "shifted", first_index=300)  # ids continue at 300
    assert b"-7-000000300," not in contents(a)["customers.csv"]
    assert b"-7-000000300," in contents(shifted)["customers.csv"]

    # chunks made in worker processes are the same bytes as chunks made in-process
    monkeypatch.setattr(landing, "CHUNK_SIZE", 70)
    serial, _ = _batch(tmp_path, "serial", workers=0)
    forked, _ = _batch(tmp_path, "forked", workers=2)
    assert contents(serial) == contents(forked)


def test_report_holds_no_personal_data(tmp_path):
    folder, report = _batch(tmp_path)
    text = json.dumps(report)
    assert "@" not in text
    customers = (folder / "customers.csv").read_bytes().decode("utf-8", "replace")
    some_ids = [line.split(",", 1)[0] for line in customers.splitlines()[1:20]]
    assert not any(i in text for i in some_ids)
    assert set(report["expected"]["quarantined"]) <= set(c.REASONS) | {CUSTOMER_QUARANTINED}


def test_refuses_bad_arguments(tmp_path):
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_landing_batch(folder, customers=10, seed=1, as_of=AS_OF)
    with pytest.raises(ValueError, match="formats"):
        write_landing_batch(tmp_path / "f", customers=10, seed=1, as_of=AS_OF, formats="xml")
    with pytest.raises(ValueError):  # too few customers for the forced problems
        write_landing_batch(tmp_path / "tiny", customers=20, seed=1, as_of=AS_OF, min_each=2)
    assert not (tmp_path / "tiny").exists()
    empty = tmp_path / "empty"
    empty.mkdir()  # an existing empty folder is fine
    write_landing_batch(empty, customers=10, seed=1, as_of=AS_OF)


@pytest.mark.parametrize("on", [date(2026, 11, 15), date(2028, 2, 29), date(2027, 3, 1)])
def test_birth_dates(on):
    rng = random.Random(1)
    for minor_age in (14, 16):
        for _ in range(300):
            born = minor_birth_date(rng, on, minor_age)
            assert max(6, minor_age - 5) <= age_on(born, on) < minor_age
    first, last = birth_date_range(on, 18, 80)
    assert age_on(last, on) == 18 and age_on(last + timedelta(days=1), on) == 17
    assert age_on(first, on) == 80 and age_on(first - timedelta(days=1), on) == 81
