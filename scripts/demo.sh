#!/usr/bin/env bash
# `make demo`: a landing batch with known problems and an hour of staff reads with known
# anomalies, then every DAG once (`airflow dags test`; the collection DAG first, so the
# monthly check sees what it ingested), then verify the evidence and the access log.
set -euo pipefail
mkdir -p "$AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/demo-db-migrate.log" 2>&1
logical_date=$(date -u +%Y-%m-%dT%H:05:00)
previous_hour=$(date -u -d '1 hour ago' +%Y-%m-%dT%H)
custos demo access --hour "$previous_hour" > "$CUSTOS_HOME/demo-access.json"
echo "demo reads in $previous_hour UTC; anomalies the watch must find: $CUSTOS_HOME/demo-access.json"
custos demo seed --landing --customers "${DEMO_LANDING_CUSTOMERS:-2000}" --seed "$(date -u +%s)" \
  > "$CUSTOS_HOME/demo-landing.json"
echo "demo landing batch (expected counts per reason code): $CUSTOS_HOME/demo-landing.json"
status=0
dag_ids="collect_customer_data"
for dag_file in dags/*.py; do
  dag_id=$(basename "$dag_file" .py)
  [ "$dag_id" = collect_customer_data ] || dag_ids="$dag_ids $dag_id"
done
for dag_id in $dag_ids; do
  log="$AIRFLOW_HOME/demo-$dag_id.log"
  if airflow dags test "$dag_id" "$logical_date" > "$log" 2>&1 && grep -q "state=success" "$log"; then
    echo "ran $dag_id: success (log: $log)"
  else
    echo "ran $dag_id: FAILED (log: $log)"; status=1
  fi
done
echo "evidence: ${CUSTOS_EVIDENCE_URL:-file://$CUSTOS_HOME/evidence}"
custos evidence list
custos evidence verify || status=1
custos access-log verify || status=1
custos quarantine list --limit 5 || status=1
exit $status
