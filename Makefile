# churn-mlops: `make run` runs the main job, `make test` runs every check. Both set up .venv first.
.DEFAULT_GOAL := help
SHELL := /bin/bash
BIN := .venv/bin

# Let Python cache the bytecode of what it imports (in .venv, src and tests, all git-ignored).
# Where PYTHONDONTWRITEBYTECODE is set (the build machines here; many container setups)
# every interpreter compiles MLflow, KServe, scikit-learn... from source on each import:
# 12.7 s of CPU instead of 6.5 s to import the serving stack; tests/e2e/test_main_job.py
# took 313 s of CPU instead of 136. Compiled on first import, so only what runs is compiled.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help setup run test lint format typecheck pytest prometheus bench bench-training bench-runner bench-serving bench-server-start bench-predlog bench-rollout bench-scoring bench-monitoring bench-drift-sensitivity bench-images bench-scale compile images clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Create or update .venv from uv.lock (installs uv when missing)
	@bash scripts/bootstrap.sh

run: setup ## Run the main job end to end on embedded defaults (data -> features -> training -> serving -> monitoring)
	$(BIN)/churn run

# The checks run beside the tests (-j3): mypy alone takes a core for about a minute, which
# otherwise sat idle while the tests waited. A failed check still fails `make test`, once the
# tests have finished too. -o setup: the sub-make does not run bootstrap.sh a second time.
test: setup ## Lint, type-check and run the whole test suite
	@$(MAKE) --no-print-directory -o setup -j3 lint typecheck pytest

lint: setup ## ruff lint and format check, and the import contracts (pyproject's [tool.importlinter])
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: setup ## mypy (strict) on src/churn
	$(BIN)/mypy src/churn

# Two pytest-xdist workers, a whole file each at a time, in tests/conftest.py's RUN_ORDER
# (docs/testing.md): about half the wall time of one process on two cores. PYTEST_WORKERS=0
# runs everything in this process.
PYTEST_WORKERS ?= 2
pytest: setup prometheus ## Run the tests only (PYTEST_WORKERS=2 xdist workers; 0 for one process)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

prometheus: ## Install promtool, prometheus and prometheus-pushgateway (Debian) when missing
	@bash scripts/install_prometheus.sh

bench: setup ## Print the generator, validation and feature benchmark tables
	$(BIN)/python scripts/bench_features.py

bench-training: setup ## Print the training-pipeline benchmark (100K and 1M rows; takes a while)
	$(BIN)/python scripts/bench_training.py

bench-runner: setup ## Print the local pipeline runner's time per run and per task, warm task interpreters vs KFP's cold start
	$(BIN)/python scripts/bench_local_runner.py

bench-serving: setup ## Print the serving benchmark: in-process, predictor, transformer path, MLServer (own venv)
	$(BIN)/python scripts/bench_serving.py

bench-server-start: setup ## Print what starting the local model servers costs, fresh interpreters vs forks of the fork server
	$(BIN)/python scripts/bench_server_start.py

bench-predlog: setup ## Print single-row req/s through the transformer with the prediction log off and on
	$(BIN)/python scripts/bench_serving.py --log-only

bench-rollout: setup ## Print time to full rollout / rollback per canary case, then the shadow's cost on callers' p50/p99
	$(BIN)/python scripts/bench_rollout.py
	$(BIN)/python scripts/bench_shadow.py

bench-monitoring: setup ## Print the drift-check benchmark vs Evidently (100K x 1M rows)
	$(BIN)/python scripts/bench_monitoring.py

bench-drift-sensitivity: setup ## Print the detection curve: smallest shift flagged in 19/20 seeds, ours vs Evidently
	$(BIN)/python scripts/bench_drift_sensitivity.py

compile: setup ## Compile the Kubeflow pipelines to pipelines/compiled/*.yaml
	$(BIN)/churn pipeline compile

images: ## Build the component, serving and MLflow images (docker with a daemon, else podman; PUSH=1 pushes them)
	@bash scripts/build_images.sh

bench-scoring: setup ## Print the batch-scoring benchmark (1M rows, with and without reasons) and the online cost of reasons
	$(BIN)/python scripts/bench_scoring.py

bench-scale: setup ## Print per-stage time and peak memory, pandas vs Dask at 1M rows and at 10M (takes an hour or more)
	$(BIN)/python scripts/bench_scale.py

bench-images: setup ## Print image sizes, build times and the serving image's cold start beside the component image
	$(BIN)/python scripts/bench_images.py

clean: ## Remove generated data and caches (keeps .venv)
	rm -rf data .pytest_cache .mypy_cache .ruff_cache .hypothesis
