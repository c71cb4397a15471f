# The two commands a new user runs (see README):
#   make demo   - create .venv, install, run the pipeline on the embedded bus
#   make test   - create .venv, install, start a local Kafka broker, run pytest, stop it
PYTHON ?= python3.11
VENV   ?= .venv
DURATION ?= 20
# Pinned versions the suite passed with (constraints.txt); `TICKTIDE_CONSTRAINTS= make ...` takes the newest.
TICKTIDE_CONSTRAINTS ?= constraints.txt
PIN := $(if $(TICKTIDE_CONSTRAINTS),-c $(TICKTIDE_CONSTRAINTS))

.PHONY: demo test install kafka-start kafka-stop bench bench-pipeline bench-broker clean

# benchmarks that need a running broker (make kafka-start): bench-pipeline, bench-broker
BROKER_BENCHES := bench/bench_pipeline.py bench/bench_restore.py bench/bench_producer_memory.py

# PYTHONWARNINGS: setuptools warns about editable installs at length (harmless here)
$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	PYTHONWARNINGS=ignore::UserWarning $(VENV)/bin/pip install -q $(PIN) -e .
	$(VENV)/bin/python -m streaming.kernels.warm  # fill Numba's cache: consumers start in < 1 s
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
	for b in $(filter-out $(BROKER_BENCHES),$(wildcard bench/bench_*.py)); do $(VENV)/bin/python $$b || exit 1; done

# end to end on a running broker (make kafka-start): BUS=kafka://host:port, TICKS=500000
bench-pipeline: install
	PYTHONWARNINGS=ignore::UserWarning $(VENV)/bin/pip install -q $(PIN) -e '.[bench]'
	$(VENV)/bin/python bench/bench_pipeline.py $(if $(BUS),--bus $(BUS)) $(if $(TICKS),--ticks $(TICKS))

# restore time per partition and key count, producer memory over 2 million ticks (BUS=kafka://host:port)
bench-broker: install
	$(VENV)/bin/python bench/bench_restore.py $(if $(BUS),--bus $(BUS))
	$(VENV)/bin/python bench/bench_producer_memory.py $(if $(BUS),--bus $(BUS))

clean:
	rm -rf $(VENV) build *.egg-info
