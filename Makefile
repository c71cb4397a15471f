# The two commands a new user runs (see README):
#   make demo   - create .venv, install, run the pipeline on the embedded bus
#   make test   - create .venv, install, start a local Kafka broker, run pytest, stop it
PYTHON ?= python3.11
VENV   ?= .venv
DURATION ?= 20
# Pinned versions the suite passed with (constraints.txt); `TICKTIDE_CONSTRAINTS= make ...` takes the newest.
TICKTIDE_CONSTRAINTS ?= constraints.txt
PIN := $(if $(TICKTIDE_CONSTRAINTS),-c $(TICKTIDE_CONSTRAINTS))

.PHONY: demo test install kafka-start kafka-stop bench clean

# PYTHONWARNINGS: setuptools warns about editable installs at length (harmless here)
$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	PYTHONWARNINGS=ignore::UserWarning $(VENV)/bin/pip install -q $(PIN) -e .
	@# compile (and cache) the Numba feature kernels now, so the first demo starts warm
	$(VENV)/bin/ticktide features --input tests/data/stock_prices_20.csv > /dev/null
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ticktide demo --duration $(DURATION)

test:
	scripts/run-tests

kafka-start:
	scripts/kafka-local start

kafka-stop:
	scripts/kafka-local stop

bench: install
	PYTHONWARNINGS=ignore::UserWarning $(VENV)/bin/pip install -q $(PIN) -e '.[bench]'
	for b in bench/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
