"""The collection duty (Art. 11, 12): ingest ready landing batches and leave evidence.

Used by ``dags/collect_customer_data.py`` (one mapped task per batch) and by
``custos ingest`` (one batch). Each batch's evidence goes to its own task folder
``ingest_<batch>/`` of the run: the summary (JSON and bilingual HTML), the
Great Expectations results, the quarantine register of the batch (CSV, no values), the
dropped-field counts and the record of the landing copy's destruction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from custos.reports.csvsafe import to_csv

DAG_ID = "collect_customer_data"
CONTROLS = [
    "ART11-CONSENT-PRESENT",
    "ART11-CONSENT-EXPRESS",
    "ART11-MINOR-GUARDIAN-CONSENT",
    "ART11-SOURCE-RECORDED",
    "ART12-NO-PLAINTEXT-PI",
]
ARTICLES = ["Art. 11", "Art. 12"]


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def ready_batch_names(rt) -> list[str]:
    """Names of the batch folders ready under the landing root (marker ``_READY``)."""
    from custos.collection.batch import BATCH_ID, ready_batches

    return [p.name for p in ready_batches(rt.settings.landing_root) if BATCH_ID.match(p.name)]


def ingest_with_evidence(
    rt, batch_path, *, run_id: str, period: str | None = None, dag_id: str = DAG_ID, now=None
) -> dict:
    """Ingest one batch and write its evidence into the run; return the summary."""
    from custos.collection.ingest import ingest_batch

    summary = ingest_batch(rt, batch_path, now=now)
    period = period or period_of(now or datetime.now(UTC))
    write_batch_evidence(rt, rt.evidence_run(period, dag_id, run_id), summary)
    summary["evidence"] = {"period": period, "dag_id": dag_id, "run_id": run_id}
    return summary


def _quarantine_rows(rt, batch_id: str) -> list[list]:
    from custos.vault.models import QuarantineItem

    q = QuarantineItem.__table__
    query = (
        select(q.c.id, q.c.file, q.c.line, q.c.kind, q.c.reason, q.c.detail, q.c.expires_on)
        .where(q.c.batch_id == batch_id)
        .order_by(q.c.file, q.c.line)
    )
    with rt.engine.connect() as conn:
        return [list(r) for r in conn.execute(query)]


def write_batch_evidence(rt, evidence, summary: dict) -> None:
    task = f"ingest_{summary['batch']}"

    def write(name: str, content: str) -> None:
        evidence.write_artifact(task, name, content, controls=CONTROLS, articles=ARTICLES)

    write("summary.json", json.dumps(summary, indent=1, sort_keys=True, default=str))
    write(
        "quality.json",
        json.dumps(
            {f["file"]: f.get("quality") for f in summary.get("files", [])}, indent=1, default=str
        ),
    )
    write(
        "quarantine.csv",
        to_csv(
            ["item", "file", "line", "kind", "reason", "detail", "expires_on"],
            _quarantine_rows(rt, summary["batch"]),
        ),
    )
    write(
        "dropped_fields.csv",
        to_csv(["field", "rows"], sorted(summary["dropped_fields"].items())),
    )
    if "landing_copy" in summary:
        write("landing-destruction.json", json.dumps(summary["landing_copy"], indent=1))
    write("summary.html", summary_html(summary))


def summary_html(s: dict) -> str:
    from html import escape

    from custos.collection.contract import REASONS
    from custos.reports.html import bilingual, cell, page, table

    counts = table(
        ["Count · 计数", "Rows · 行数"],
        [
            [cell("received · 收到"), cell(str(s["received"]))],
            [cell("accepted · 接收"), cell(str(s["accepted"]))],
            [cell("quarantined · 隔离"), cell(str(sum(s["quarantined"].values())))],
            [cell("deletion requested · 请求删除"), cell(str(s.get("delete_requested", 0)))],
        ],
    )
    codes = table(
        ["Reason code · 原因代码", "Rows", "Meaning · 含义"],
        [[cell(k), cell(str(v)), cell(REASONS.get(k, ""))] for k, v in s["quarantined"].items()],
    )
    dropped = table(
        ["Field not stored · 未存储字段", "Rows"],
        [[cell(k), cell(str(v))] for k, v in s["dropped_fields"].items()],
    )
    files = []
    for f in s.get("files", []):
        quality = f.get("quality") or {}
        verdict = (
            ("pass", "pass")
            if quality.get("passed")
            else (("held" if f.get("held_by_quality_gate") else "fail"), "fail")
            if quality
            else ("n/a", "na")
        )
        files.append(
            [
                cell(f["file"]),
                cell(f.get("kind") or "?"),
                cell(str(f["received"])),
                cell(str(f["accepted"])),
                cell(verdict[0], verdict[1]),
                cell("; ".join(p["code"] for p in f.get("problems", [])) or "—"),
                cell(f.get("sha256", "")[:16] + "…"),
            ]
        )
    files_table = table(
        ["File", "Kind", "Received", "Accepted", "Quality gate", "File problems", "SHA-256"],
        files,
    )
    landing = s.get("landing_copy") or {}
    destroyed = sum(1 for f in landing.get("files", []) if f.get("destroyed_at"))
    body = (
        f'<p class="meta">batch {escape(s["batch"])} · content SHA-256 '
        f"{escape(s['content_sha256'])} · Art. 11, 12</p>"
        f"<h2>{bilingual('Counts', '计数')}</h2>{counts}"
        f"<h2>{bilingual('Quarantined, by reason', '按原因隔离')}</h2>{codes}"
        f"<h2>{bilingual('Minimisation', '最小必要')}</h2>{dropped}"
        f"<h2>{bilingual('Files', '文件')}</h2>{files_table}"
        f"<h2>{bilingual('Landing copy', '落地副本')}</h2>"
        f"<p>{destroyed} file(s) destroyed after the commit · 提交后已销毁</p>"
    )
    return page(
        "Collection batch", "数据收集批次", body, footer="Custos · no personal data on this page"
    )


def ingest_step(rt, batch: str, run_id: str, period: str) -> dict:
    """The DAG's mapped task: one ready batch. Returns counts only (goes to XCom)."""
    from custos.collection.batch import BATCH_ID
    from custos.errors import InputError

    if not BATCH_ID.match(batch):
        raise InputError(f"batch name must match {BATCH_ID.pattern}")
    summary = ingest_with_evidence(
        rt, rt.settings.landing_root / batch, run_id=run_id, period=period
    )
    return brief(summary)


def brief(summary: dict) -> dict:
    """What a task may return or log: the counts of the --json summary, nothing else."""
    keys = ("batch", "received", "accepted", "quarantined", "dropped_fields", "delete_requested")
    return {k: summary.get(k) for k in keys} | {
        "already_ingested": bool(summary.get("already_ingested")),
        "content_sha256": summary["content_sha256"],
        "files_held_by_quality_gate": [
            f["file"] for f in summary.get("files", []) if f.get("held_by_quality_gate")
        ],
    }


def purge_step(rt, run_id: str, period: str, today) -> dict:
    """Retention of the quarantine: expired payloads and unused keys destroyed; recorded."""
    from custos.collection.quarantine import purge_expired

    result = purge_expired(rt.engine, today) | {"as_of": today.isoformat()}
    rt.evidence_run(period, DAG_ID, run_id).write_artifact(
        "purge_quarantine",
        "quarantine-purge.json",
        json.dumps(result, indent=1),
        controls=["ART12-RETENTION-ASSIGNED"],
        articles=["Art. 12", "Art. 16"],
    )
    return result
