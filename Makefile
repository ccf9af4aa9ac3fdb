# Two entry points (see README): `make report` (main job) and `make test`.
# Both create a local virtual environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: report test quick lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	touch $(STAMP)

## the main job: the whole catalogue at report size, its figures, the regenerated report
report: $(STAMP)
	$(BIN)/simulate report --out reports

## the test suite (CPU; GPU tests skip visibly without a device)
test: $(STAMP)
	$(BIN)/python -m pytest

quick: $(STAMP)
	$(BIN)/simulate report --quick --out runs/quick-report

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/simulate bench

clean:
	rm -rf $(VENV) runs build *.egg-info
