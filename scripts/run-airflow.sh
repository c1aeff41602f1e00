#!/usr/bin/env bash
# `make run`: Airflow standalone (SQLite metadata DB, LocalExecutor) on http://localhost:8080
# with this repo's dags/ and plugins/. The Makefile exports the settings.
set -euo pipefail
mkdir -p "$AIRFLOW_HOME"
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
(
  # Print the logins once the API server has generated them.
  for _ in $(seq 1 120); do
    if [[ -s "$passwords" ]]; then
      echo
      echo "================================================================"
      echo " Custos is starting on http://localhost:8080"
      echo " Log in as (user: password):"
      python3 -c 'import json,sys; [print(f"   {u}: {p}") for u,p in json.load(open(sys.argv[1])).items()]' "$passwords"
      echo " admin = data team (trigger DAGs); auditor = viewer role (read-only)"
      echo " Vault: $CUSTOS_HOME  Evidence: ${CUSTOS_EVIDENCE_URL:-file://$CUSTOS_HOME/evidence}"
      echo "================================================================"
      exit 0
    fi
    sleep 1
  done
) &
exec airflow standalone
