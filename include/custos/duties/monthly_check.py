"""The monthly departmental check (Art. 18): collection (Art. 11), storage (Art. 12) and
use (Art. 13), per department, with findings recorded in the vault and evidence written.

Steps, each one Airflow task (or one CLI call running them all):
1. ``run_group`` for collection, storage and use → ``<task>/results.json``
2. ``record_findings`` → findings upserted in the vault, ``findings.json``,
   ``findings.csv`` and ``summary.html``
3. sealing the evidence run (manifest.json + signature) — see ``custos.evidence``.
Artifacts hold pseudonymous ids and counts only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from custos.controls.evaluate import evaluate_controls
from custos.duties.periods import month_bounds
from custos.reports.csvsafe import to_csv
from custos.reports.html import bilingual, cell, escape, page, table
from custos.vault.db import session_scope
from custos.vault.models import Finding

DAG_ID = "monthly_department_check"
# Which articles each check task covers; the controls come from the catalogue.
GROUPS = {"collection": "Art. 11", "storage": "Art. 12", "use": "Art. 13", "access": "Art. 12"}
GROUP_TASKS = {group: f"check_{group}" for group in GROUPS}


def group_controls(policy, group: str) -> list:
    return [c for c in policy.controls.values() if c.group == group and c.frequency == "monthly"]


def run_group(engine: Engine, policy, period: str, group: str) -> dict:
    """Run every monthly control of one group; return the JSON-ready results."""
    start, end = month_bounds(period)
    controls = evaluate_controls(engine, policy, group_controls(policy, group), period, start, end)
    return {"period": period, "group": group, "article": GROUPS[group], "controls": controls}


def record_findings(
    engine: Engine,
    policy,
    period: str,
    group_results: list[dict],
    run_id: str,
    now: datetime | None = None,
) -> dict:
    """Upsert one finding per failing (control, department); resolve those now passing.
    Idempotent: re-running a period updates its rows instead of adding more."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    failing: dict[tuple[str, str], int] = {}
    controls: dict[str, dict] = {}
    for results in group_results:
        for control_id, result in results["controls"].items():
            controls[control_id] = result
            for dept, count in result["counts"].items():
                failing[(control_id, dept)] = count
    opened = resolved = 0
    with session_scope(engine) as session:
        open_rows = session.scalars(
            select(Finding).where(Finding.control_id.in_(controls), Finding.status == "open")
        ).all()
        earlier_due = {
            (f.control_id, f.department_id): f.due_on for f in open_rows if f.period < period
        }
        for finding in open_rows:
            key = (finding.control_id, finding.department_id)
            if key not in failing and finding.period <= period:
                finding.status, finding.resolved_at = "resolved", now
                resolved += 1
        existing = {
            (f.control_id, f.department_id): f
            for f in session.scalars(select(Finding).where(Finding.period == period))
        }
        for (control_id, dept), count in sorted(failing.items()):
            result = controls[control_id]
            row = existing.get((control_id, dept))
            if row is None:
                row = Finding(
                    period=period, control_id=control_id, department_id=dept, detected_at=now
                )
                session.add(row)
                opened += 1
            row.article, row.severity = result["article"], result["severity"]
            row.owner_department = result["owner"]
            row.affected_count, row.status, row.resolved_at = count, "open", None
            row.due_on = earlier_due.get((control_id, dept)) or policy.due_date(
                result["severity"], now.date()
            )
            row.dag_run_id = run_id
    return {"findings_open": len(failing), "findings_new": opened, "findings_resolved": resolved}


def findings_document(
    policy, period: str, run_id: str, group_results: list[dict], duty: str = DAG_ID
) -> dict:
    """findings.json: per control, pass/fail per department, counts, affected subjects."""
    controls = {}
    for results in group_results:
        for control_id, result in results["controls"].items():
            controls[control_id] = {
                key: result[key]
                for key in ("article", "owner", "severity", "title_en", "title_zh", "counts")
            } | {
                "status": "fail" if result["counts"] else "pass",
                "affected": sum(result["counts"].values()),
                "departments": {
                    d: ("fail" if result["counts"].get(d) else "pass") for d in policy.departments
                },
            }
    return {
        "duty": duty,
        "period": period,
        "run_id": run_id,
        "articles": sorted({c["article"] for c in controls.values()}),
        "controls": dict(sorted(controls.items())),
        "totals": {
            "controls": len(controls),
            "failing_controls": sum(1 for c in controls.values() if c["status"] == "fail"),
            "affected": sum(c["affected"] for c in controls.values()),
        },
    }


def findings_csv(group_results: list[dict]) -> str:
    rows = (
        (
            results["period"],
            control_id,
            result["article"],
            v["department"],
            v["subject"],
            v["detail"],
        )
        for results in group_results
        for control_id, result in sorted(results["controls"].items())
        for v in result["violations"]
    )
    return to_csv(("period", "control_id", "article", "department", "subject_id", "detail"), rows)


def summary_html(
    policy,
    document: dict,
    generated_at: datetime,
    page_title: tuple[str, str] = ("Monthly departmental check", "月度检查"),
    duty_label: str = "Art. 18 monthly check",
) -> str:
    departments = list(policy.departments.values())
    header = (
        [bilingual("Control", "控制措施"), "Art."]
        + [bilingual(d.id.replace("_", " "), d.name_zh) for d in departments]
        + [bilingual("Result", "结果")]
    )
    rows = []
    for control_id, control in document["controls"].items():
        title = (
            f"<strong>{escape(control_id)}</strong><br>{escape(control['title_en'])}"
            f'<br><span class="zh">{escape(control["title_zh"])}</span>'
        )
        row = [cell(title, "control", raw=True), cell(control["article"])]
        for dept in departments:
            count = control["counts"].get(dept.id, 0)
            row.append(cell(f"✗ {count}", "fail") if count else cell("✓", "pass"))
        ok = control["status"] == "pass"
        row.append(
            cell(
                f'<span class="badge {"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}</span>',
                raw=True,
            )
        )
        rows.append(row)
    per_department = [
        sum(c["counts"].get(d.id, 0) for c in document["controls"].values()) for d in departments
    ]
    rows.append(
        [cell("Affected records per department · 各部门受影响记录", "control"), cell("")]
        + [cell(str(n), "fail" if n else "pass") for n in per_department]
        + [cell(str(sum(per_department)))]
    )
    totals = document["totals"]
    body = (
        f'<p class="meta">{bilingual("Period", "期间")}: {escape(document["period"])} · '
        f"{bilingual('Run', '运行')}: {escape(document['run_id'])} · "
        f"{escape(', '.join(document['articles']))} · {escape(duty_label)}</p>"
        f"<p>{totals['failing_controls']} of {totals['controls']} controls failing, "
        f"{totals['affected']} affected records. "
        f'<span class="zh">{totals["controls"]} 项控制中 {totals["failing_controls"]} 项未通过，'
        f"涉及 {totals['affected']} 条记录。</span></p>"
        f"<h2>{bilingual('Pass / fail per control and department', '各部门控制措施检查结果')}</h2>"
        + table(header, rows)
        + '<p class="meta">'
        + bilingual(
            "Affected pseudonymous ids are in findings.csv; machine-readable results "
            "in findings.json.",
            "受影响的假名化标识见 findings.csv。",
        )
        + "</p>"
    )
    return page(
        page_title[0],
        page_title[1],
        body,
        footer=f"Generated {generated_at.isoformat(timespec='seconds')}Z by Custos",
    )


def dumps(document: dict) -> str:
    return json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def group_counts(results: dict) -> dict[str, int]:
    """The XCom-sized summary of a group: affected count per control."""
    return {cid: sum(r["counts"].values()) for cid, r in results["controls"].items()}


# -- the steps as tasks: each reads and writes the evidence store, returns counts only ----
def check_group_step(rt, period: str, run_id: str, group: str) -> dict[str, int]:
    results = run_group(rt.engine, rt.policy, period, group)
    rt.evidence_run(period, DAG_ID, run_id).write_artifact(
        GROUP_TASKS[group],
        "results.json",
        dumps(results),
        controls=sorted(results["controls"]),
        articles=[GROUPS[group]],
    )
    return group_counts(results)


def record_findings_step(rt, period: str, run_id: str) -> dict:
    evidence = rt.evidence_run(period, DAG_ID, run_id)
    group_results = [
        json.loads(evidence.read_artifact(GROUP_TASKS[group], "results.json")) for group in GROUPS
    ]
    summary = record_findings(rt.engine, rt.policy, period, group_results, run_id)
    document = findings_document(rt.policy, period, run_id, group_results)
    controls, articles = sorted(document["controls"]), document["articles"] + ["Art. 18"]
    for name, content in (
        ("findings.json", dumps(document)),
        ("findings.csv", findings_csv(group_results)),
        ("summary.html", summary_html(rt.policy, document, datetime.now(UTC).replace(tzinfo=None))),
    ):
        evidence.write_artifact(
            "record_findings", name, content, controls=controls, articles=articles
        )
    return summary | document["totals"]


def run_monthly_check(rt, period: str, run_id: str) -> dict:
    """All steps in one process (CLI and tests); the DAG runs the same steps as tasks."""
    counts = {}
    for group in GROUPS:
        counts.update(check_group_step(rt, period, run_id, group))
    summary = record_findings_step(rt, period, run_id)
    manifest = rt.seal(period, DAG_ID, run_id)
    return {
        "period": period,
        "run_id": run_id,
        "affected_by_control": counts,
        "evidence_files": len(manifest["files"]),
    } | summary
