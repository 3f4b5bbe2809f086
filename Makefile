# The two commands README gives: `make run` (the main job) and `make test`. Both set up
# everything first: a virtual environment with the pinned stack (requirements.lock).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first, so nothing else can pull a (multi-GB) CUDA build; the CPU wheel is what we pin.
TORCH := torch==2.13.0
# The task schema (a name in signatures/ or a .toml path): `make run SCHEMA=conll04 DATA=...`.
SCHEMA ?= chisre
SCHEMA_NAME := $(basename $(notdir $(SCHEMA)))
# Corpus: $SLCOLM_DATA, else the workplace's shared copy, else data/<schema> (fetched on demand).
DATA ?= $(or $(SLCOLM_DATA),$(wildcard ../shared/data/$(SCHEMA_NAME)),data/$(SCHEMA_NAME))
# Converted encoders and other derived files live here (git-ignored), never in the repository.
export SLCOLM_CACHE ?= $(CURDIR)/.cache/slcolm
# ChisRE keeps the historical paths; another schema gets its own.
SUFFIX := $(if $(filter chisre,$(SCHEMA_NAME)),,-$(SCHEMA_NAME))
SLM := runs/slm$(SUFFIX)
# The compiled program: the LLM stage tuned on dev for the local LLM (override LM=..., PRESET=api).
PROGRAM := programs/default$(SUFFIX)
LM ?= local
PRESET ?= local

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/slcolm slm encoder
	touch $(STAMP)

setup: $(STAMP)

# A finished training writes its summary last; an interrupted one is started again. A new SLM
# means new hints, so the program is compiled again; the test evaluation reuses its stored run.
$(SLM)/training_summary.json: | $(STAMP)
	@test -n "$$(ls -A $(DATA) 2>/dev/null)" || $(BIN)/slcolm data fetch $(SCHEMA) --data $(DATA)
	$(BIN)/slcolm slm train --schema $(SCHEMA) --data $(DATA) --out $(SLM)

$(PROGRAM)/manifest.json: $(SLM)/training_summary.json
	$(BIN)/slcolm compile --schema $(SCHEMA) --lm $(LM) --preset $(PRESET) --slm $(SLM) --out $(PROGRAM) --data $(DATA)

run: setup
	@test -n "$$(ls -A $(DATA) 2>/dev/null)" || $(BIN)/slcolm data fetch $(SCHEMA) --data $(DATA)
	$(BIN)/slcolm data stats --schema $(SCHEMA) --data $(DATA)
	@if [ -f $(DATA)/replay/test401_gold.jsonl ]; then \
		$(BIN)/slcolm replay --data $(DATA); \
	else echo "no replay pack in $(DATA)/replay: skipping the replay"; fi
	$(MAKE) --no-print-directory $(PROGRAM)/manifest.json
	$(BIN)/slcolm evaluate --program $(PROGRAM) --split test --data $(DATA)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
