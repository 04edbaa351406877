# Two commands on a fresh machine:
#   make run   — create .venv, install the pinned set, run SUMMER (summer-small) on the embedded synthetic dataset
#   make test  — create .venv, install the pinned set, run the test suite
PYTHON ?= python3
VENV ?= .venv
# The optional extras installed with the project; .ci/run adds `audio` (opensmile, research-only licence)
# for the media tests: `make test EXTRAS=test,text,audio`.
EXTRAS ?= test,text
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: setup run test benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU wheel on disk is only chosen for an exact version.
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt torch
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/merc-bench run summer-small

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

benchmark: $(STAMP)
	$(VENV)/bin/python benchmarks/sdt_epoch.py

clean:
	rm -rf $(VENV) runs mlruns .pytest_cache
