# Set-up and everyday commands. `make test` and `make run` create the virtual environment on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ARGS ?= --all
# Extras installed with the project; CI adds ray (make test EXTRAS=dev,ray) for the Ray backend tests.
EXTRAS ?= dev

.PHONY: setup test run tui clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

# The tests (CI runs exactly this through .ci/run).
test: setup
	$(PY) -m pytest -q

# The main job: the experiment registry on the built-in S&P 500 data (resumable; narrow it with
# ARGS, e.g. make run ARGS="--priority P1").
run: setup
	$(VENV)/bin/fembed run $(ARGS)

tui: setup
	$(VENV)/bin/fembed tui

clean-venv:
	rm -rf $(VENV)
