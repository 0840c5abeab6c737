# Two commands a new user needs: `make demo` and `make test`. Both create .venv when it is
# missing and (re)install the project whenever pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The demo and tests are CPU work on small tensors: extra threads only add overhead.
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: demo demo-video ablation ablation-views test slow fast install install-dev bench lint clean wheelhouse

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make demo: build the demo set, evaluate the tiny policy, train it with GRPO, evaluate again.
demo: $(VENV)/.installed
	$(BIN)/python scripts/demo.py +experiment=demo

## make demo-video: the same on clips (mosaic + local frames of each clip): build the demo
## clip set, evaluate, train with GRPO, evaluate again; outputs/demo_video/ (docs/video_demo.md).
demo-video: $(VENV)/.installed
	$(BIN)/python scripts/demo.py +experiment=demo_video

## make ablation-views: the video demo per view set (4) and seed (42 1 2), one at a time
## (hours on 2 cores); a table per distortion kind in outputs/ablation_views/. Resumes.
## Narrow it with VIEWS_ARGS, e.g. VIEWS_ARGS="--views mosaic+local local --seeds 42".
ablation-views: $(VENV)/.installed
	$(BIN)/python scripts/ablate_views.py $(VIEWS_ARGS)

## make ablation: the demo per reward (5) and seed (42 1 2), one at a time (1-2 h on 2 cores);
## a table and a plot in outputs/ablation/. Resumes: finished runs are skipped.
## Narrow it with ABLATION_ARGS, e.g. ABLATION_ARGS="--rewards q_insight preresq_pref --seeds 42".
ablation: $(VENV)/.installed
	$(BIN)/python scripts/ablate.py $(ABLATION_ARGS)

## make test: every test, the slow end-to-end ones included.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider

## make fast: unit tests only (skips tests marked slow).
fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m "not slow"

## make wheelhouse: wheels for a GPU node without internet (README, "Offline install"): the
## project's dependencies for the node's Python and platform, less what the node has.
## WHEELHOUSE_ARGS="--python-version 3.12 --have-file node-freeze.txt" (the node's pip freeze).
WHEELHOUSE_ARGS ?= --have torch transformers accelerate peft
wheelhouse: | $(BIN)/python
	$(BIN)/python scripts/wheelhouse.py --out wheelhouse $(WHEELHOUSE_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check preresq scripts tests

bench: $(VENV)/.installed
	$(BIN)/python scripts/bench_data.py
	$(BIN)/python scripts/bench_rewards.py
	$(BIN)/python scripts/bench_eval.py
	$(BIN)/python scripts/bench_video.py
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf outputs .cache .pytest_cache
