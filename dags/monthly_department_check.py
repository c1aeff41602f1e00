"""
### Monthly departmental check · 月度检查 — Art. 18 (checks Art. 11, 12, 13)

Data Management checks every department once a month (Art. 18) for:

- **collection · 收集 (Art. 11)**: consent present and express, source recorded,
  minors have their guardian's consent;
- **storage · 存储 (Art. 12)**: no plaintext personal information anywhere in the vault,
  every customer under a retention rule;
- **use · 使用 (Art. 13)**: every use recorded in the period is within a purpose the
  customer consented to;
- **access rights · 访问权限 (Art. 12)**: no staff grant beyond the department's access
  matrix, no disabled account holding grants, no reads of categories beyond need.

**When**: 02:00 UTC on the 1st of each month; the period is the previous month.
Trigger it by hand with a `period` (YYYY-MM) to re-check a month.

**What it leaves**: open findings in the vault (one per failing control and department,
with owner and due date; resolved automatically when a later run passes) and, in the
evidence store under `<period>/monthly_department_check/<run>/`:
`check_*/results.json` (violations by pseudonymous id), `record_findings/findings.json`,
`findings.csv`, `summary.html` (pass/fail per control and department, English/中文) and a
signed `manifest.json`. Verify with `custos evidence verify --period <period>`.

No personal information reaches logs or XCom: tasks pass the period and counts only.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task

OWNER = "data_management"


@dag(
    dag_id=Path(__file__).stem,
    dag_display_name="Monthly departmental check · 月度检查 (Art. 18)",
    description="Art. 18 monthly check of collection (Art. 11), storage (Art. 12), use (Art. 13)",
    schedule="0 2 1 * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["art-18", "art-11", "art-12", "art-13", "monthly", OWNER],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "period": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            title="Period (YYYY-MM)",
            description="Month to check; leave empty for the month before the run.",
        )
    },
)
def monthly_department_check():
    @task(task_display_name="Resolve the period · 确定检查期间")
    def resolve_period(**context) -> dict:
        from custos.duties.periods import previous_month

        when = context.get("logical_date") or context["dag_run"].run_after
        period = context["params"].get("period") or previous_month(when)
        return {"period": period, "run_id": context["run_id"]}

    def make_check(group: str, label: str):
        @task(task_id=f"check_{group}", task_display_name=label)
        def check(run: dict) -> dict[str, int]:
            from custos.duties.monthly_check import check_group_step
            from custos.runtime import open_runtime

            return check_group_step(open_runtime(), run["period"], run["run_id"], group)

        return check

    @task(task_display_name="Record findings and report · 记录发现问题")
    def record_findings(run: dict) -> dict:
        from custos.duties.monthly_check import record_findings_step
        from custos.runtime import open_runtime

        return record_findings_step(open_runtime(), run["period"], run["run_id"])

    @task(task_display_name="Seal the evidence · 封存证据")
    def seal_evidence(run: dict) -> dict:
        from custos.duties.monthly_check import DAG_ID
        from custos.runtime import open_runtime

        manifest = open_runtime().seal(run["period"], DAG_ID, run["run_id"])
        return {"files": len(manifest["files"]), "period": run["period"]}

    run = resolve_period()
    checks = [
        make_check("collection", "Check collection · 收集合规 (Art. 11)")(run),
        make_check("storage", "Check storage · 存储安全 (Art. 12)")(run),
        make_check("use", "Check use · 使用合规 (Art. 13)")(run),
        make_check("access", "Review access rights · 访问权限审查 (Art. 12)")(run),
    ]
    recorded = record_findings(run)
    checks >> recorded >> seal_evidence(run)


monthly_department_check()
