# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

install: $(STAMP)

# No torch pin (ARCHITECTURE.md §7): unpinned torch + torchvision from the index work together on CPU.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) -m pytest -m "not slow and not gpu" -q -p no:cacheprovider

demo: $(STAMP)
	$(VENV)/bin/mrgen-nnunet demo

lint: $(STAMP)
	$(VENV)/bin/ruff check mrgen_nnunet tests benchmarks

clean:
	rm -rf $(VENV) mrgen_demo
