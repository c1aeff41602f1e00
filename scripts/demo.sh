#!/usr/bin/env bash
# `make demo`: run every DAG once (`airflow dags test`), then verify the evidence.
set -euo pipefail
mkdir -p "$AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/demo-db-migrate.log" 2>&1
today=$(date -u +%Y-%m-%d)
status=0
for dag_file in dags/*.py; do
  dag_id=$(basename "$dag_file" .py)
  log="$AIRFLOW_HOME/demo-$dag_id.log"
  if airflow dags test "$dag_id" "$today" > "$log" 2>&1 && grep -q "state=success" "$log"; then
    echo "ran $dag_id: success (log: $log)"
  else
    echo "ran $dag_id: FAILED (log: $log)"; status=1
  fi
done
echo "evidence: ${CUSTOS_EVIDENCE_URL:-file://$CUSTOS_HOME/evidence}"
custos evidence list
custos evidence verify
exit $status
