# Paymux: `make run` starts everything locally, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check bench install clean simulate chaos lock

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e clients/python
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/paymux dev

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src adapters tests bench clients/python/src
	$(BIN)/ruff format --check src adapters tests bench clients/python/src

typecheck: $(STAMP)
	$(BIN)/mypy src/paymux adapters/alipay adapters/wechat
	cd clients/python && ../../$(BIN)/mypy --strict src/paymux_client

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Deterministic simulation of the core (tests/simulation): SEEDS seeds x OPS operations
# from a random first seed (FIRST_SEED=n to choose it); SEED=n replays one seed exactly.
SEEDS ?= 50
OPS   ?= 2000
JOBS  ?= 2
simulate: $(STAMP)
	$(BIN)/python -m tests.simulation.run --seeds $(SEEDS) --ops $(OPS) --jobs $(JOBS) \
	  $(if $(SEED),--seed $(SEED)) $(if $(FIRST_SEED),--first-seed $(FIRST_SEED))

# Chaos suite (tests/chaos): replicas, Redis, sandboxes and a database under injected faults,
# then every invariant checked. CHAOS_PROFILE=short|long, CHAOS_DB=postgres|sqlite,
# CHAOS_SEED=n replays a run's choices (the seed is printed at start).
CHAOS_PROFILE ?= short
CHAOS_DB      ?= postgres
chaos: $(STAMP)
	CHAOS_PROFILE=$(CHAOS_PROFILE) CHAOS_DB=$(CHAOS_DB) CHAOS_SEED=$(CHAOS_SEED) \
	  $(BIN)/python -m tests.chaos.run

# The exact, hashed dependency set the Dockerfile installs (Linux x86_64, CPython 3.11).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
