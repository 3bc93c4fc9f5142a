# omha: `make demo` shows a three-node failover, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*))
STAMP := $(VENV)/.installed
# `make install PLUGINS="resource_vip fence_powerstrip"`: where, and which plugins (names under plugins/, or all)
PREFIX ?= /opt/omha
INSTALL_PLUGINS ?= $(if $(filter command line,$(origin PLUGINS)),$(PLUGINS),)

.PHONY: demo test venv system-packages lint pytest core-tests plugin-tests bench chaos sim clean install cli-docs

$(STAMP): pyproject.toml testing/pyproject.toml $(wildcard plugins/*/pyproject.toml) requirements-dev.txt constraints-dev.txt
	# a Debian python3 needs python3-venv for `-m venv` (ensurepip); install it (as root) when that is why it failed
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV) || \
		{ sh scripts/install-system-packages python3-venv && $(PYTHON) -m venv --clear $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-dev.txt -r requirements-dev.txt -e '.[test]' -e testing $(foreach p,$(PLUGINS),-e '$(p)[test]')
	touch $(STAMP)

# shell completions (bash, zsh) and the man page, generated from the argparse definitions (scripts/gen-cli-docs)
SHARE ?= $(VENV)/share
CLI_DOCS := $(SHARE)/man/man1/omha.1
$(CLI_DOCS): $(STAMP) $(wildcard omha_core/cli*.py) omha_core/_version.py docs/omha.1.include scripts/gen-cli-docs
	sh scripts/gen-cli-docs $(BIN) $(SHARE)

cli-docs: $(CLI_DOCS)

venv: $(STAMP) $(CLI_DOCS)

system-packages:
	sh scripts/install-system-packages

demo: venv
	$(BIN)/omha demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy omha_core $(foreach p,$(PLUGINS),$(p)/omha_$(notdir $(p)))

pytest: venv system-packages
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# the core's tests in the dev venv (every plugin installed); each plugin's own tests run alone (plugin-tests)
core-tests: venv system-packages
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests

# CI: each plugin's tests run once, in a venv holding only the core, omha-testing and that plugin
test: system-packages venv lint core-tests plugin-tests

# each plugin's tests in a fresh venv holding only the core, omha-testing and that plugin (scripts/plugin-test):
# `make plugin-tests PLUGIN_NAMES="resource_vip fence_powerstrip"`; every plugin runs, the target fails if one did
PLUGIN_NAMES ?= $(notdir $(PLUGINS))
plugin-tests: system-packages
	@failed=""; for p in $(PLUGIN_NAMES); do sh scripts/plugin-test $$p $(PYTEST_ARGS) || failed="$$failed $$p"; done; \
		if [ -n "$$failed" ]; then echo "plugin-tests failed:$$failed"; exit 1; fi

# a production install: a venv under PREFIX (default /opt/omha) with the core and PLUGINS, the systemd unit,
# completions, man page and docs (scripts/install says what goes where)
install:
	PREFIX="$(PREFIX)" PLUGINS="$(INSTALL_PLUGINS)" sh scripts/install

bench: venv
	$(BIN)/python bench/run_all.py $(BENCH)

# the fault campaign (tests/chaos): `make chaos DURATION=600 SEED=42 STORE=etcd`; no SEED = a random one, printed
DURATION ?= 300
STORE ?= sharedfs
chaos: venv system-packages
	$(BIN)/python -m tests.chaos --duration $(DURATION) --store $(STORE) $(if $(SEED),--seed $(SEED)) $(CHAOS_ARGS)

# the deterministic simulation (tests/sim): `make sim RUNS=1000 SEED=0`; `SIM_ARGS="--bug ignore-quorum"`
RUNS ?= 100
sim: venv
	$(BIN)/python -m tests.sim --runs $(RUNS) $(if $(SEED),--seed $(SEED)) $(SIM_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info plugins/*/build testing/*.egg-info testing/build
