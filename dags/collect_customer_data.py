"""
### Collect customer data · 客户信息收集 — Art. 11, 12

Ingests platform exports that land under `CUSTOS_LANDING_URL` (a folder per batch, with a
`_READY` marker written last) into the encrypted vault, through the collection pipeline:

- **validate** every row (required fields, ISO countries, e-mail, phone for its country,
  ISO 8601 dates not in the future, ≤ 1,000 characters, UTF-8) and judge each file with a
  **Great Expectations** data-quality gate over per-line statuses (no values);
- **consent gate**: express consent covering a purpose of the vocabulary; a minor's
  guardian consent too; a withdrawal with nothing left requests deletion;
- **minimise**: fields no consented purpose needs are not stored;
- **lineage**: platform, batch, file, line and notice version on every stored item;
- **quarantine** every row not stored, encrypted, with a stable reason code
  (`custos quarantine list|show|release|discard`, Data Management);
- **destroy the landing copy** after the commit and record it.

**When**: whenever the `custos_landing` asset is updated (a platform posts an asset event
through the Airflow API after an upload) and hourly at :15 as a safety net.
**Emits**: `custos_vault_customers`, once per batch committed (not for a batch whose
content was already ingested): downstream DAGs can schedule on new customer data.
**Evidence** under `<month>/collect_customer_data/<run>/ingest_<batch>/`: `summary.json`,
`summary.html`, `quality.json` (Great Expectations), `quarantine.csv` (codes, no values),
`dropped_fields.csv`, `landing-destruction.json`; plus the quarantine purge and the access
log's signed checkpoint; sealed with a signed manifest.

No personal information reaches logs or XCom: tasks return counts and codes only.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

OWNER = "data_management"
LANDING = Asset(name="custos_landing")
VAULT_CUSTOMERS = Asset(name="custos_vault_customers")


@dag(
    dag_id=Path(__file__).stem,
    dag_display_name="Collect customer data · 客户信息收集 (Art. 11, 12)",
    description="Ingest landing batches: validate, consent gate, minimise, quarantine, encrypt",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("15 * * * *", timezone="UTC"), assets=[LANDING]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["art-11", "art-12", "hourly", "collection", OWNER],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=2)},
)
def collect_customer_data():
    @task(task_display_name="Find ready batches · 查找待处理批次")
    def find_batches(**context) -> dict:
        from custos.duties.collection import period_of, ready_batch_names
        from custos.runtime import open_runtime

        when = context.get("logical_date") or context["dag_run"].run_after
        return {
            "period": period_of(when),
            "run_id": context["run_id"],
            "batches": ready_batch_names(open_runtime()),
        }

    @task
    def batch_names(run: dict) -> list[str]:
        return run["batches"]

    @task(
        task_display_name="Ingest a batch · 导入批次",
        outlets=[VAULT_CUSTOMERS],
        map_index_template="{{ task.op_kwargs['batch'] }}",
        # One batch at a time: each is one vault transaction, and SQLite has one writer.
        max_active_tis_per_dagrun=1,
    )
    def ingest(batch: str, run: dict, **context) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from custos.duties.collection import ingest_step
        from custos.runtime import open_runtime

        result = ingest_step(open_runtime(), batch, run["run_id"], run["period"])
        if result["already_ingested"]:
            # Same content as a committed batch: nothing new, so no asset event.
            raise AirflowSkipException(f"batch {batch}: content already ingested")
        context["outlet_events"][VAULT_CUSTOMERS].extra = {
            "batch": batch,
            "accepted": result["accepted"],
            "content_sha256": result["content_sha256"],
        }
        return result

    @task(task_display_name="Purge expired quarantine · 清理过期隔离数据")
    def purge_quarantine(run: dict) -> dict:
        from datetime import UTC, datetime

        from custos.duties.collection import purge_step
        from custos.runtime import open_runtime

        return purge_step(open_runtime(), run["run_id"], run["period"], datetime.now(UTC).date())

    @task(task_display_name="Seal the evidence · 封存证据", trigger_rule="none_failed")
    def seal_evidence(run: dict) -> dict:
        from custos.duties.collection import DAG_ID
        from custos.runtime import open_runtime

        manifest = open_runtime().seal(run["period"], DAG_ID, run["run_id"])
        return {"files": len(manifest["files"]), "period": run["period"]}

    run = find_batches()
    ingested = ingest.partial(run=run).expand(batch=batch_names(run))
    [ingested, purge_quarantine(run)] >> seal_evidence(run)


collect_customer_data()
