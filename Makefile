# synartifact: `make demo` runs the main job offline on tiny models; `make test` runs the tests.
# Both create .venv/ and install into it first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# GPU users: make install TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>"
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= spaces,dev,css
STAMP := $(VENV)/.installed

.PHONY: install demo test slow_test browser-deps style quality clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
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
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

slow_test: $(STAMP)
	# the GPU paths (tests/test_gpu.py: CUDA, bf16, SFT and DDPO steps); they skip themselves without a CUDA device
	RUN_SLOW=1 $(BIN)/python -m pytest -q -m slow -rs $(PYTEST_ARGS)

style: $(STAMP)
	$(BIN)/ruff format src tests spaces benchmarks
	$(BIN)/ruff check --fix src tests spaces benchmarks

quality: $(STAMP)
	$(BIN)/ruff check src tests spaces benchmarks

clean:
	rm -rf outputs .pytest_cache .ruff_cache build dist src/*.egg-info
