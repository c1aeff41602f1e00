"""
### Access watch · 访问监控 — Art. 12, 13, 17 (hourly)

Looks at the last hour of the tamper-evident access log (every read decision, allowed or
refused, made through Custos' single read path) and flags, per staff member:

- **bulk reads** — more customers in an hour than the threshold in `access.yaml`;
- **reads outside working hours** of the staff member's country;
- **bursts of refused reads** (probing what one may read);
- **read attempts by disabled accounts**;
- **reads for a purpose the department never uses** (not in its access matrix).

Each finding goes to the findings table with its control id (`ART12-ACCESS-*`,
`ART13-ACCESS-UNUSED-PURPOSE`); high-severity ones are marked `escalate` for the incident
process (Art. 17). Evidence under `<month>/access_watch/<run>/`: `anomalies.json`,
`anomalies.csv`, `summary.html`, and — as at the end of every Custos DAG run — the access
log's signed checkpoint (`access_log/access-log-checkpoint.txt`, C2SP tlog-checkpoint),
which anchors the log: `custos access-log verify` detects any history rewritten after it.

Trigger by hand with an `hour` (`YYYY-MM-DDTHH`, UTC) to re-examine an hour.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Param, dag, task

OWNER = "technology"


@dag(
    dag_id=Path(__file__).stem,
    dag_display_name="Access watch · 访问监控 (Art. 12, 13, 17)",
    description="Hourly anomaly detection over the access log; anchors the log's checkpoint",
    schedule="5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["art-12", "art-13", "art-17", "hourly", OWNER],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "hour": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}$",
            title="Hour (YYYY-MM-DDTHH, UTC)",
            description="Hour to examine; leave empty for the hour before the run.",
        )
    },
)
def access_watch():
    @task(task_display_name="Resolve the hour · 确定时段")
    def resolve_hour(**context) -> dict:
        from custos.duties.access_watch import previous_hour

        when = context.get("logical_date") or context["dag_run"].run_after
        hour = context["params"].get("hour") or previous_hour(when.replace(tzinfo=None))
        return {"hour": hour, "run_id": context["run_id"]}

    @task(task_display_name="Detect anomalies · 检测异常访问")
    def detect_anomalies(run: dict) -> dict:
        from custos.duties.access_watch import detect_step
        from custos.runtime import open_runtime

        return detect_step(open_runtime(), run["hour"], run["run_id"])

    @task(task_display_name="Anchor the log, seal the evidence · 锚定日志并封存证据")
    def seal_evidence(run: dict) -> dict:
        from custos.duties.access_watch import DAG_ID, evidence_period
        from custos.runtime import open_runtime

        manifest = open_runtime().seal(evidence_period(run["hour"]), DAG_ID, run["run_id"])
        return {"files": len(manifest["files"])}

    run = resolve_hour()
    detect_anomalies(run) >> seal_evidence(run)


access_watch()
