# Paraaf: `make run` starts everything with a demo city; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export PARAAF_DATA_DIR ?= $(CURDIR)/var

.PHONY: cluster cluster-stop install infra setup run demo test test-thorough fuzz unit lint asyncapi openapi screenshots shape bench bench-year clean

$(BIN)/paraaf: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/paraaf deploy/asyncapi/node_modules
	deploy/system-packages.sh

# AsyncAPI's own parser, which tests/unit/test_asyncapi.py runs on docs/asyncapi.yaml.
deploy/asyncapi/node_modules: deploy/asyncapi/package-lock.json
	deploy/system-packages.sh
	npm ci --prefix deploy/asyncapi --ignore-scripts --no-audit --no-fund --silent
	touch $@

infra:
	deploy/ensure-infra.sh

setup: install infra
	$(BIN)/paraaf setup

demo: setup
	$(BIN)/paraaf directory import deploy/demo/city.xlsx
	$(BIN)/paraaf flows load deploy/demo/flows
	PARAAF=$(BIN)/paraaf deploy/demo/sources.sh

run: demo
	PARAAF_LOG_FORMAT=$${PARAAF_LOG_FORMAT:-console} PARAAF_MAIL_RETRY_SECONDS=$${PARAAF_MAIL_RETRY_SECONDS:-5} $(BIN)/paraaf run all --log-file $(PARAAF_DATA_DIR)/paraaf.log

# The suite in two passes: first every test that may run beside others, spread over TEST_WORKERS pytest-xdist
# processes (a package or module that shares a running city stays on one: tests/support/distribution.py), then
# the tests marked `serial` one at a time (the RabbitMQ restart of tests/faults). Fails when either fails; a serial
# pass that selects nothing (exit 5) is fine. The faults and security reports of both passes print at the end, and
# each pass lists its 25 slowest tests (setup and call apart), so a CI log shows where the suite's time goes.
# TEST_WORKERS=2: one per core on CI's 2-core machine (what -n auto picks there); each worker runs a city of its own
# (README, Tests).
TEST_WORKERS ?= 2
TEST_REPORTS := tests/artifacts/reports.json
test: install infra
	@rm -f $(TEST_REPORTS); \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial" --durations=25 --reports-file=$(TEST_REPORTS) --hold-reports; parallel=$$?; \
	$(BIN)/pytest -m serial --durations=25 --reports-file=$(TEST_REPORTS); serial=$$?; \
	[ $$serial -eq 5 ] && serial=0; \
	[ $$parallel -eq 0 ] && [ $$serial -eq 0 ]

# A three-node RabbitMQ cluster and a PostgreSQL primary with its standby on this machine (root); prints the
# PARAAF_* settings that point Paraaf at it. `make cluster-stop` removes it (docs/operations.md, "Running on a cluster").
cluster:
	deploy/cluster/start.sh

cluster-stop:
	deploy/cluster/stop.sh

# The property tests with 5000 examples each instead of CI's 150 (several minutes).
test-thorough: $(BIN)/paraaf
	PARAAF_HYPOTHESIS_PROFILE=thorough $(BIN)/pytest tests/unit

# Intake's fuzz tests with 10,000 examples each instead of CI's 500 (about two minutes; nightly).
fuzz: $(BIN)/paraaf
	PARAAF_FUZZ_EXAMPLES=10000 $(BIN)/pytest tests/unit/test_intake_fuzz.py

unit: $(BIN)/paraaf
	$(BIN)/pytest tests/unit

lint: $(BIN)/paraaf
	$(BIN)/ruff check shared services tests bench deploy docs/examples

asyncapi: $(BIN)/paraaf
	$(BIN)/python -m services.asyncapi > docs/asyncapi.yaml

# docs/openapi/<service>.json: each service's HTTP API, as FastAPI describes it.
openapi: $(BIN)/paraaf
	$(BIN)/python -m services.openapi

# README's two pictures (docs/img/): the browser tests take them, tests/readme_images.py cuts them to size.
SIGNING_PAGE_TEST := tests/e2e/test_signing.py::test_a_signer_on_a_phone_sees_the_document_signs_and_gets_a_confirmation
FIGURES_TEST := tests/e2e/test_figures.py::test_after_a_year_played_through_the_services_the_dashboards_totals_equal_the_api_and_a_sql_count
screenshots: install infra
	rm -rf tests/artifacts/test_a_signer_on_a_phone_sees_* tests/artifacts/test_after_a_year_played_*
	$(BIN)/pytest -q $(SIGNING_PAGE_TEST) $(FIGURES_TEST)
	$(BIN)/python -m tests.readme_images

shape: $(BIN)/paraaf
	$(BIN)/python -m tests.shape

# Every bench, one after the other; the pipeline's (bench/pipeline.py) ends it with its figures and ratios
# (docs/performance.md). bench-year: the pipeline's peak held 10 minutes, to extrapolate a city's year from.
bench: install infra
	$(BIN)/python -m bench

bench-year: install infra
	$(BIN)/python -m bench.pipeline --minutes 10 --profile

clean:
	rm -rf $(VENV) var tests/artifacts
