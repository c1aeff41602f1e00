"""The hourly access watch (Art. 12, 13, 17): detectors over one hour of the access log,
findings per staff department, evidence, and a signed access-log checkpoint anchored in
the evidence store.

Steps (each one Airflow task, or all in one CLI call):
1. ``detect_step`` → findings (period = the hour, e.g. ``2026-11-29T03``; high severity
   flagged ``escalate`` for the incident process) and ``detect_anomalies/anomalies.json``,
   ``anomalies.csv``, ``summary.html``;
2. sealing the evidence run, which (as for every DAG) first signs a checkpoint of the
   access log and copies it into the run's evidence.
Evidence lives under the month of the hour (``2026-11/access_watch/<run>/``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from custos.controls.evaluate import evaluate_controls
from custos.duties.monthly_check import (
    dumps,
    findings_csv,
    findings_document,
    record_findings,
    summary_html,
)
from custos.errors import CustosError
from custos.vault.db import session_scope
from custos.vault.models import Finding

DAG_ID = "access_watch"
_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}$")


def hour_bounds(hour: str) -> tuple[datetime, datetime]:
    if not _HOUR.match(hour):
        raise CustosError(f"hour {hour!r} is not YYYY-MM-DDTHH (UTC), e.g. 2026-11-29T03")
    start = datetime.strptime(hour, "%Y-%m-%dT%H")
    return start, start + timedelta(hours=1)


def previous_hour(moment: datetime) -> str:
    return f"{(moment - timedelta(hours=1)):%Y-%m-%dT%H}"


def evidence_period(hour: str) -> str:
    return hour[:7]


def watch_controls(policy) -> list:
    return [c for c in policy.controls.values() if c.group == "watch"]


def detect_step(rt, hour: str, run_id: str) -> dict:
    start, end = hour_bounds(hour)
    controls = evaluate_controls(rt.engine, rt.policy, watch_controls(rt.policy), hour, start, end)
    results = [{"period": hour, "group": "watch", "controls": controls}]
    summary = record_findings(rt.engine, rt.policy, hour, results, run_id)
    escalated = _flag_for_incidents(rt, hour, controls)
    document = findings_document(rt.policy, hour, run_id, results, duty=DAG_ID)
    evidence = rt.evidence_run(evidence_period(hour), DAG_ID, run_id)
    ids, articles = sorted(document["controls"]), document["articles"] + ["Art. 17"]
    for name, content in (
        ("anomalies.json", dumps(document)),
        ("anomalies.csv", findings_csv(results)),
        (
            "summary.html",
            summary_html(
                rt.policy,
                document,
                datetime.now(UTC).replace(tzinfo=None),
                page_title=("Access watch", "访问监控"),
                duty_label=f"hour {hour} UTC",
            ),
        ),
    ):
        evidence.write_artifact("detect_anomalies", name, content, controls=ids, articles=articles)
    return {"hour": hour, "escalated": escalated} | summary | document["totals"]


def _flag_for_incidents(rt, hour: str, controls: dict) -> int:
    """High-severity findings are marked for the incident process (Art. 17)."""
    high = [cid for cid, c in controls.items() if c["severity"] == "high" and c["counts"]]
    if not high:
        return 0
    with session_scope(rt.engine) as session:
        result = session.execute(
            update(Finding)
            .where(Finding.period == hour, Finding.control_id.in_(high))
            .values(escalate=True)
        )
        return result.rowcount


def run_access_watch(rt, hour: str, run_id: str) -> dict:
    from custos.access.audit import open_access_log

    result = detect_step(rt, hour, run_id)
    manifest = rt.seal(evidence_period(hour), DAG_ID, run_id)  # anchors the access log
    return result | {
        "evidence_files": len(manifest["files"]),
        "log_size": open_access_log(rt).size(),
    }
