# omha: `make demo` shows a three-node failover, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*))
STAMP := $(VENV)/.installed

.PHONY: demo test venv system-packages lint pytest bench chaos clean

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) requirements-dev.txt
	# a Debian python3 needs python3-venv for `-m venv` (ensurepip); install it (as root) when that is why it failed
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV) || \
		{ sh scripts/install-system-packages python3-venv && $(PYTHON) -m venv --clear $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -e . $(foreach p,$(PLUGINS),-e '$(p)[test]')
	touch $(STAMP)

venv: $(STAMP)

system-packages:
	sh scripts/install-system-packages

demo: venv
	$(BIN)/omha demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy omha_core $(foreach p,$(PLUGINS),$(p)/omha_$(notdir $(p)))

pytest: venv system-packages
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test: system-packages venv lint pytest

bench: venv
	$(BIN)/python bench/run_all.py $(BENCH)

# the fault campaign (tests/chaos): `make chaos DURATION=600 SEED=42 STORE=etcd`; no SEED = a random one, printed
DURATION ?= 300
STORE ?= sharedfs
chaos: venv system-packages
	$(BIN)/python -m tests.chaos --duration $(DURATION) --store $(STORE) $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info plugins/*/build
