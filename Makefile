# cvcatalog — run `make help` for the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CV := $(BIN)/cvcatalog
ifeq ($(origin PORT), undefined)
PORT := $(shell $(PYTHON) -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endif
DEMO_HOME ?= data/demo
PYTEST_ARGS ?=
TEST_WORKERS ?= 3

# Every recipe writes bytecode as Python does by default, whatever the caller's environment
# says (CI sets PYTHONDONTWRITEBYTECODE): each module is compiled once, by the first process
# that imports it. The install compiles nothing: uv's --compile-bytecode compiled all ~8,000
# modules of the venv, 9 s and 17 CPU-s of a clean checkout's `make test`, a quarter of them
# the packages' own tests and most of the rest modules no command or test imports.
export PYTHONDONTWRITEBYTECODE :=

.DEFAULT_GOAL := help
.PHONY: help install bytecode test test-all lint demo bench bench-targets chaos clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# uv installs the packages (PyPI, the same versions pip takes): 16 s in a new venv with no
# cache where pip took 37 s, on a clean checkout's `make test`. No --compile-bytecode: the
# recipes write bytecode as modules are imported (PYTHONDONTWRITEBYTECODE above), as Python
# does for a user's own commands. --native-tls: the system's certificates, as pip's PIP_CERT.
# The venv starts without pip and the host's pip puts uv in it (`pip --python`, pip 22.3+),
# then uv installs pip with the rest, for users and tests/test_wheel.py: 2.3 s where venv's
# own pip, upgraded, took 5.3. Without either, the venv's pip does it all.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet uv || $(MAKE) --no-print-directory venv-pip
	$(BIN)/uv pip install --quiet --native-tls --python $(BIN)/python \
	    pip -e '.[dev]' || { $(MAKE) --no-print-directory venv-pip && $(BIN)/python -m pip install --quiet -e '.[dev]'; }
	@touch $@

# pip in the venv from Python's own copy (ensurepip), upgraded, and uv if it installs: when
# the host's pip cannot put uv in the venv, or uv fails
.PHONY: venv-pip
venv-pip:
	$(BIN)/python -m ensurepip --upgrade --default-pip >/dev/null
	$(BIN)/python -m pip install --quiet --upgrade pip uv || $(BIN)/python -m pip install --quiet --upgrade pip

install: $(VENV)/.installed ## Create .venv and install cvcatalog with its dev tools

# The bytecode of cvcatalog, written as installing its wheel writes it (an editable install
# has none), before the processes of a recipe start: not compiled by each of them at once.
bytecode: install
	@$(BIN)/python -m compileall -q cvcatalog >/dev/null

# --dist loadfile: a module's tests run on one worker, so its module-scoped fixtures (seeded
# replicas, ingested catalogs) are built once, not once per worker. TEST_WORKERS 3 on 2 cores:
# the tests wait on subprocesses and the moto server part of the time (pytest in a fresh clone,
# 962 tests: -n 2 4:14, -n 3 3:57, -n 4 4:09). mypy runs while the tests start (its
# ~10 s of one core overlap their collection); its report is printed after them, and either
# failing fails the target. The collection beside mypy: pytest writes the test modules'
# assertion-rewritten bytecode (tests/__pycache__, checked by the sources' hashes) once, and
# every worker reads it: a worker's collection 5.4 -> 1.8 CPU-s (it rewrote ~4,300 asserts).
# It writes the bytecode of the packages the tests import too (9.6 s in all, beside mypy's
# 9.4), not each worker at once.
test: bytecode ## Install, then run lint and the test suite (slow tests excluded)
	$(BIN)/ruff check cvcatalog tests bench docs
	set -u; log=$$(mktemp); $(BIN)/mypy >"$$log" 2>&1 & mypy=$$!; \
	$(BIN)/pytest --collect-only -q -m "not slow" -p no:cacheprovider \
	    >/dev/null 2>&1; \
	$(BIN)/pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); tests=$$?; \
	wait $$mypy; types=$$?; echo "mypy:"; cat "$$log"; rm -f "$$log"; \
	exit $$(( tests != 0 ? tests : types ))

test-unit: bytecode ## Only the fast unit tests: none that speaks to a local S3 endpoint (no moto process)
	$(BIN)/pytest -m "not slow and not integration" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-integration: bytecode ## Only the tests against a local S3 endpoint (a moto server process), slow ones excluded
	$(BIN)/pytest -m "integration and not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-all: bytecode ## The whole suite, slow tests included
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install ## ruff and mypy
	$(BIN)/ruff check cvcatalog tests bench docs
	$(BIN)/ruff format --check cvcatalog tests bench || true
	$(BIN)/mypy

demo: bytecode ## End to end on a local S3 endpoint: replica, ingest a week, query, quality, NGSIM, export
	@set -euo pipefail; \
	export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$(PORT) AWS_ACCESS_KEY_ID=sandbox \
	       AWS_SECRET_ACCESS_KEY=sandbox AWS_DEFAULT_REGION=us-east-1 CVCATALOG_HOME=$(DEMO_HOME); \
	trap '$(CV) sandbox stop >/dev/null 2>&1 || true' EXIT; \
	start=$$(date +%s); \
	echo "== 1. local S3 endpoint (moto server, 127.0.0.1:$(PORT))"; \
	$(CV) sandbox serve --detach --port $(PORT); \
	echo "== 2. seed a replica of wydot/BSM, 2021-03-31..2021-04-08 (2021-04-04 empty, 2 malformed lines a day)"; \
	$(CV) sandbox seed --start 2021-03-31 --end 2021-04-08 --records-per-hour 300 --files-per-hour 3 \
	      --malformed-per-day 2 --empty-day 2021-04-04; \
	rm -rf $(DEMO_HOME); \
	echo "== 3. ingest one week, Denver local days (8 UTC partitions)"; \
	$(CV) ingest --source wydot --type BSM --start 2021-04-01 --end 2021-04-07 \
	      --timezone America/Denver --workers 8 --rate-limit 0 --no-progress; \
	echo "== 4. run it again: everything is cached, no S3 request"; \
	$(CV) ingest --source wydot --type BSM --start 2021-04-01 --end 2021-04-07 \
	      --timezone America/Denver --no-progress; \
	echo "== 5. query the view"; \
	$(CV) query "select date, count(*) as bsms, count(distinct vehicle_id) as vehicles, \
	      round(avg(speed_mps) * 2.23694, 1) as avg_mph, round(min(longitude), 3) as west, \
	      round(max(longitude), 3) as east from wydot_bsm group by date order by date"; \
	echo "== 6. the same catalog from a plain DuckDB session (no cvcatalog code): the DuckLake, attached read-only"; \
	$(BIN)/duckdb -c "LOAD '$$($(BIN)/python -c 'from cvcatalog.io.duckdb_ext import extension_path; print(extension_path("ducklake"))')'; \
	      ATTACH 'ducklake:$(DEMO_HOME)/catalog.ducklake' AS cv (READ_ONLY); \
	      select count(*) as bsms, min(metadata_generatedAt) as first, max(metadata_generatedAt) as last from cv.wydot_bsm_socrata; \
	      select snapshot_id, commit_message from cv.snapshots() order by snapshot_id desc limit 3"; \
	echo "== 7. an experiment as a lazy Dask frame (configs/experiments/demo_week.yml)"; \
	$(BIN)/python -c "from cvcatalog.read.experiments import CatalogGatherer; \
	      df = CatalogGatherer('configs/experiments/demo_week.yml').gather_data().get_gathered_data(); \
	      print(df.npartitions, 'partitions;', len(df), 'rows;', list(df.columns[:6]))"; \
	$(CV) cache status; \
	echo "== 8. data quality of the week: rules counted over the view, PNG and HTML report"; \
	$(CV) report quality --source wydot --type BSM --timezone America/Denver \
	      --png $(DEMO_HOME)/quality.png --html $(DEMO_HOME)/quality.html; \
	echo "== 9. NGSIM-shaped trajectories (generated) from S3 into the same catalog"; \
	$(CV) sandbox ngsim --out $(DEMO_HOME)/ngsim.csv --rows 200000 --bad-rows 3 --seed 1 \
	      --to s3://ngsim-demo/trajectories.csv; \
	$(CV) ingest --source ngsim --path s3://ngsim-demo/trajectories.csv --no-progress; \
	$(CV) ingest --source ngsim --path s3://ngsim-demo/trajectories.csv --no-progress; \
	$(CV) query "select source, count(*) as points, count(distinct vehicle_id) as vehicles, \
	      round(avg(speed_mps), 1) as avg_mps from trajectories group by 1 order by 1"; \
	echo "== 10. what each run did"; \
	$(CV) runs --limit 5; \
	echo "== 11. versions: the lake's snapshots, and the BSM table as of the first one (docs/versions.md)"; \
	$(CV) snapshots --limit 4; \
	first=$$($(CV) snapshots --source wydot --type BSM --format csv | tail -n 1 | cut -d, -f1); \
	$(CV) query --snapshot $$first "select date, count(*) as bsms from wydot_bsm group by 1 order by 1"; \
	echo "== 12. trips, and the week split by vehicle id with no id in two splits (docs/ml.md)"; \
	$(CV) trips; \
	$(CV) split --source wydot --type BSM --start 2021-04-01 --end 2021-04-07 --timezone America/Denver; \
	echo "== 13. export the BSMs within 2 km of the I-80 / US-287 interchange in Laramie to GeoParquet, and read it back"; \
	$(CV) export --source wydot --type BSM --start 2021-04-01 --end 2021-04-07 --timezone America/Denver \
	      --within 41.31,-105.59,2000 --output $(DEMO_HOME)-export/laramie.geoparquet --no-progress; \
	$(BIN)/python -c "import json, pyarrow.parquet as pq; m = pq.read_metadata('$(DEMO_HOME)-export/laramie.geoparquet'); \
	      geo = json.loads(m.metadata[b'geo']); g = geo['columns']['geometry']; \
	      print(m.num_rows, 'points read back; GeoParquet', geo['version'], g['encoding'], g['geometry_types'], g['crs']['id'], 'bbox', g.get('bbox'))"; \
	echo "== demo finished in $$(( $$(date +%s) - start ))s"

bench: install ## Benchmarks (see bench/README.md)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.ml_frames
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.spatial
	$(BIN)/python -m bench.wide_rows

bench-targets: install ## Issue 13's targets -> bench/results/targets.{md,json} (TARGETS_ARGS=--quick: minutes)
	$(BIN)/python -m bench.targets $(TARGETS_ARGS)

chaos: bytecode ## kill -9 trials, concurrent writers + reader (docs/reliability.md)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

clean: ## Remove the virtualenv, caches and demo data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data/demo data/demo-export .sandbox
