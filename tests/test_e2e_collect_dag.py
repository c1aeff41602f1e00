"""End to end: landing batches through ``collect_customer_data`` with ``dag.test()``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.airflow


@pytest.fixture
def landing_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CUSTOS_HOME", str(tmp_path / "custos"))
    for name in ("CUSTOS_VAULT_URL", "CUSTOS_EVIDENCE_URL", "CUSTOS_KEYRING", "CUSTOS_LANDING_URL"):
        monkeypatch.delenv(name, raising=False)
    from custos.policy import current_policy
    from custos.runtime import open_runtime
    from custos.settings import get_settings
    from custos.setup_vault import initialise

    initialise(get_settings(), current_policy())
    rt = open_runtime()
    rt.settings.landing_root.mkdir(parents=True)
    return rt


AS_OF = datetime.now(UTC).replace(microsecond=0)


def _land(rt, name: str, **kwargs) -> dict:
    from custos.collection.batch import READY_MARKER
    from custos.demo.landing import write_landing_batch

    folder = rt.settings.landing_root / name
    report = write_landing_batch(folder, as_of=AS_OF, **kwargs)
    (folder / READY_MARKER).touch()
    return report


def _asset_events(dag_run) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetModel.name == "custos_vault_customers")
            .filter(AssetEvent.source_run_id == dag_run.run_id)
            .all()
        )
        return [dict(r.extra or {}) for r in rows]


def test_collection_dag_ingests_ready_batches_emits_assets_and_seals_evidence(
    airflow_db, landing_home
):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState
    from sqlalchemy import text

    from custos.evidence import list_runs, verify_store

    rt = landing_home
    first = _land(rt, "shop-001", customers=150, seed=1, min_each=1)
    second = _land(rt, "shop-002", customers=150, seed=2, min_each=1, first_index=10_000)
    not_ready = rt.settings.landing_root / "shop-003"
    not_ready.mkdir()
    (not_ready / "customers.csv").write_text("external_id\n")

    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag("collect_customer_data")
    dag_run = dag.test(logical_date=datetime.now(UTC))
    assert dag_run.state == DagRunState.SUCCESS

    with rt.engine.connect() as conn:
        committed = dict(conn.execute(text("SELECT batch_id, summary FROM ingest_batches")).all())
    assert sorted(committed) == ["shop-001", "shop-002"]
    for name, report in (("shop-001", first), ("shop-002", second)):
        summary = json.loads(committed[name])
        expected = report["expected"]
        assert (summary["received"], summary["accepted"]) == (
            expected["received"],
            expected["accepted"],
        )
        assert summary["quarantined"] == {k: v for k, v in expected["quarantined"].items() if v}
        assert not (rt.settings.landing_root / name).exists()
    assert (not_ready / "customers.csv").exists(), "a folder without _READY is not touched"

    events = _asset_events(dag_run)
    assert sorted(e["batch"] for e in events) == ["shop-001", "shop-002"]

    period = f"{datetime.now(UTC):%Y-%m}"
    (run,) = [r for r in list_runs(rt.evidence, period) if r.run_id == dag_run.run_id]
    assert run.sealed and verify_store(rt.evidence, period).ok
    html = rt.evidence.read_bytes(f"{run.prefix}/ingest_shop-001/summary.html").decode()
    assert "NO_CONSENT" in html and "数据收集批次" in html

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = [
            row.value for row in session.query(XComModel).filter(XComModel.run_id == dag_run.run_id)
        ]
    assert values and all("@" not in json.dumps(v) for v in values)

    # The same content lands again: skipped, no asset event, nothing new in the vault.
    _land(rt, "shop-001-again", customers=150, seed=1, min_each=1)
    again = dag.test(logical_date=datetime.now(UTC))
    assert again.state == DagRunState.SUCCESS
    assert _asset_events(again) == []
    with rt.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ingest_batches")).scalar() == 2
