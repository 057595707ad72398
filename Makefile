# synartifact: `make demo` runs the main job offline on tiny models; `make test` runs the tests.
# Both create .venv/ and install into it first when needed.
PYTHON ?= python3
# Two tested stacks (constraints/*.txt): `latest` (today's releases, the default) in .venv and
# `oldest` (setup.cfg's floors) in .venv-oldest; `make test-oldest` runs the suite on the latter.
STACK ?= latest
VENV ?= $(if $(filter latest,$(STACK)),.venv,.venv-$(STACK))
CONSTRAINTS := constraints/$(STACK).txt
BIN := $(VENV)/bin
# GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>"
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= spaces,dev,css
STAMP := $(VENV)/.installed

.PHONY: install demo test test-oldest slow_test browser-deps style quality clean

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the Spaces' browser tests (never `playwright install`: it downloads a browser).
browser-deps:
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium with apt-get"; \
	  SUDO=$$(command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

demo: $(STAMP)
	$(BIN)/synartifact demo $(DEMO_ARGS)

test: $(STAMP) browser-deps
	SYNARTIFACT_STACK=$(STACK) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the same suite on the oldest supported stack (setup.cfg's floors); .ci/run runs both
test-oldest:
	$(MAKE) test STACK=oldest

slow_test: $(STAMP)
	# the GPU paths (tests/test_gpu.py: CUDA, bf16, SFT and DDPO steps); they skip themselves without a CUDA device
	RUN_SLOW=1 $(BIN)/python -m pytest -q -m slow -rs $(PYTEST_ARGS)

style: $(STAMP)
	$(BIN)/ruff format src tests spaces benchmarks
	$(BIN)/ruff check --fix src tests spaces benchmarks

quality: $(STAMP)
	$(BIN)/ruff check src tests spaces benchmarks

clean:
	rm -rf .venv-oldest outputs .pytest_cache .ruff_cache build dist src/*.egg-info
