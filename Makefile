# bnopt: `make help` lists the targets. Everything runs inside .venv, which `make install` creates.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PyTorch build to install (a CUDA build that also runs on the CPU). Override for another build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
SCALE ?= auto
FIGS ?=
LAUNCHER ?= basic
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-fast test-integration test-e2e lint bench reproduce figures plan notebooks train-example clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install bnopt with its dev tools (idempotent)

# Every tier with two pytest-xdist workers of one torch thread each (see test-fast): the suite took 30 min in one
# process on 2 cores (2026-12-07), over the 15-minute budget; --dist loadfile keeps a file's module fixtures in
# one worker, so none is built twice (the smoke records two files share are built once, under a file lock).
# Measured on 2 idle cores: 16 min 39 s, then 14 min 33 s after the cuts of 2026-12-07 (docs/PERFORMANCE.md).
test: $(STAMP) ## run the whole test suite (real-CIFAR test runs when BNOPT_DATA or ../shared has the data)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile

# One torch thread per worker and two workers (pytest-xdist): the unit tier's tensors are tiny, and a second
# thread waiting for a busy core costs more than it saves. Measured on 2 idle cores (2026-12-07): about 110 s in one
# process, 58 s with -n 2 (64 s wall with the workers' start).
test-fast: $(STAMP) ## the unit tier (unmarked tests): in-process, no plan, no training, no figures (about a minute)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 -m "not integration and not e2e"

test-integration: $(STAMP) ## the integration tier: plans, sweeps, smoke runs trained in-process, figures drawn
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile -m integration

test-e2e: $(STAMP) ## the e2e tier: processes (the CLI, notebook kernels), the real CIFAR-10, the committed report
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile -m e2e

lint: $(STAMP) ## ruff check and ruff format --check on sources, tests and experiments/
	$(BIN)/ruff check src tests experiments
	$(BIN)/ruff format --check src tests experiments

bench: $(STAMP) ## measure train-loop and probe speed on this machine -> results/bench.json
	$(BIN)/python -m bnopt.bench --out results/bench.json

reproduce: $(STAMP) ## train what the figures need (SCALE=auto|paper|long|small|smoke FIGS="fig1 fig4" LAUNCHER=basic|joblib|submitit_local|submitit_slurm SEEDS=N), draw them, write results/<scale>/REPORT.md
	$(BIN)/python -m bnopt.reproduce --scale $(SCALE) --launcher $(LAUNCHER) $(if $(FIGS),--figs $(FIGS)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FORCE),--force)

figures: $(STAMP) ## redraw results/<scale>/ figures and REPORT.md from existing records, never trains (FORCE=1: even from fewer runs)
	$(BIN)/python -m bnopt.reproduce --no-train --scale $(SCALE) --launcher $(LAUNCHER) $(if $(FIGS),--figs $(FIGS)) $(if $(FORCE),--force)

plan: $(STAMP) ## print what `make reproduce` would train and its time estimate
	$(BIN)/python -m bnopt.reproduce --dry-run --scale $(SCALE) --launcher $(LAUNCHER) $(if $(FIGS),--figs $(FIGS)) $(if $(SEEDS),--seeds $(SEEDS))

notebooks: $(STAMP) ## open the notebooks in JupyterLab (reads results/ through bnopt.results)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

train-example: $(STAMP) ## one small VGG16+BN run with the paper's probes
	$(BIN)/bnopt-train model=vgg16_bn scale=small probes=paper

clean: ## remove caches (keeps .venv, data and results)
	rm -rf .pytest_cache .ruff_cache src/*.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
