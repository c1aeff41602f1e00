# Custos — two commands: `make run` (the product) and `make test` (everything passes).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export CUSTOS_HOME ?= $(CURDIR)/.custos
export AIRFLOW_HOME ?= $(CUSTOS_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS ?= admin:admin,auditor:viewer
export PATH := $(BIN):$(PATH)
DEMO_CUSTOMERS ?= 5000
BENCH_CUSTOMERS ?= 100000

.PHONY: help install init run demo test lint bench clean

help:
	@echo "make run    start Airflow with the Custos DAGs and a demo vault (http://localhost:8080)"
	@echo "make test   run the whole test suite (ruff included)"
	@echo "make demo   run every DAG once and verify the evidence it wrote"
	@echo "make bench  benchmark seeding, encryption cost, the monthly check, the access log, ingest"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

init: install
	$(BIN)/custos init
	@$(BIN)/custos demo seed --customers $(DEMO_CUSTOMERS) --if-empty \
		--report $(CUSTOS_HOME)/demo-seed.json > /dev/null
	@echo "demo vault ready; its injected violations: $(CUSTOS_HOME)/demo-seed.json"
	@[ -d "$(CUSTOS_HOME)/landing/demo-welcome" ] || $(BIN)/custos demo seed --landing \
		--customers 1000 --batch demo-welcome --report $(CUSTOS_HOME)/demo-welcome.json > /dev/null
	@echo "a landing batch waits for collect_customer_data: $(CUSTOS_HOME)/landing/demo-welcome"

run: init
	@bash scripts/run-airflow.sh

demo: init
	@bash scripts/demo.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check dags include/custos plugins bench

test: install lint
	$(BIN)/pytest -q

BENCH_LOG_ENTRIES ?= 1000000

BENCH_INGEST_CUSTOMERS ?= 1000000

bench: install
	$(BIN)/python bench/run.py --customers $(BENCH_CUSTOMERS)
	$(BIN)/python bench/access_log.py --entries $(BENCH_LOG_ENTRIES)
	$(BIN)/python bench/ingest.py --customers $(BENCH_INGEST_CUSTOMERS)

clean:
	rm -rf $(CUSTOS_HOME) .pytest_cache .ruff_cache
