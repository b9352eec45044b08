# Voxflow: two commands a newcomer needs are `make demo` and `make test`.
# Both install what they need first (uv, then the locked environment).

SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
# uv's folder on PATH for every recipe: pip installs uv to ~/.local/bin, which a fresh shell may
# not have on PATH, and some tests run `uv` themselves (tests/deploy) — without this a newcomer's
# `make test` fails them (CI) or skips them (elsewhere) although uv was installed moments before.
export PATH := $(patsubst %/,%,$(dir $(UV))):$(PATH)
export UV_PYTHON_DOWNLOADS ?= automatic

.PHONY: install tools bench-tools demo test chaos test-embedded lint format run bench bench-quick bench-load bench-search bench-openai bench-ramp bench-diarization bench-console bench-memory migrate clean

$(UV):
	python3 -m pip install --user --quiet uv || pip install --quiet uv

.venv/.installed: $(UV) uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen
	touch $@

install: .venv/.installed  ## Create .venv with every service and the dev tools

# The infra tests run promtool and prometheus (Debian's `prometheus` package), the web console's
# browser tests Debian's `chromium` (Playwright drives it; it never downloads a browser).
# Installed here when missing and apt-get is available (as root, or through passwordless sudo);
# otherwise the tests say what is missing (a failure under CI=true, a skip elsewhere).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
CHROMIUM := /usr/bin/chromium
tools:  ## Install what the tests need beyond Python: promtool, prometheus and chromium; check kubectl
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null || \
	    echo "warning: could not install Debian's prometheus package; the infra tests need it"; \
	  else \
	    echo "warning: promtool/prometheus not found; install Prometheus for the infra tests"; \
	  fi; \
	fi
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null || \
	    echo "warning: could not install Debian's chromium package; the console tests need it"; \
	  else \
	    echo "warning: $(CHROMIUM) not found; install Chromium there for the console tests"; \
	  fi; \
	fi
	@# tests/deploy renders k8s/ with kubectl's built-in kustomize (v5: kubectl 1.27 or newer);
	@# Debian's kubernetes-client is too old, so it is not installed from there.
	@command -v kubectl >/dev/null || \
	  echo "warning: kubectl (1.27+) not found; the Kubernetes tests in tests/deploy need it"

# The benchmarks speak their corpus with espeak-ng and sox, and the load benchmark drives the
# APIs with wrk (all from Debian), installed here when missing.
BENCH_TOOLS := wrk espeak-ng flite sox soxi
bench-tools:
	@missing=""; for tool in $(BENCH_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends wrk espeak-ng flite sox libsox-fmt-all >/dev/null; \
	  fi; \
	  for tool in $(BENCH_TOOLS); do \
	    command -v $$tool >/dev/null || { echo "error: the benchmarks need $$tool (apt-get install wrk espeak-ng flite sox)"; exit 1; }; \
	  done; \
	fi

demo: install  ## Start the embedded stack, upload samples/voice_note.ogg, print transcript and notes
	$(UV) run voxflow demo samples/voice_note.ogg

test: install tools  ## Run the test suite (external servers if VOXFLOW_TEST_* are set, else embedded)
	$(UV) run pytest

chaos: install  ## The fault-injection tests at full size: 200 jobs across worker restarts (~6 min)
	VOXFLOW_CHAOS_JOBS=200 $(UV) run pytest tests/chaos

lint: install  ## ruff check, ruff format --check, mypy --strict
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

format: install
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

run: install  ## The whole platform in the foreground on the embedded servers (Ctrl-C stops)
	$(UV) run voxflow run

migrate: install  ## Apply migrations to VOXFLOW_DATABASE_URL (or the running stack)
	$(UV) run voxflow migrate

# The benchmarks run from the repository root as modules (`python -m scripts.benchmarks.NAME`),
# so they import each other and the tests' helpers as packages; each writes its figures under
# .voxflow/bench (made when missing).
# The commit before issue 15's API work: the load benchmark measures it in the same run.
LOAD_BASELINE ?= 90728ab

bench: install bench-tools  ## Benchmarks: per-job overhead, decoding modes, window trimming, micro-batch mates, batch sizes, API load, throughput/WER/memory vs raw faster-whisper (~1 h 15 min)
	$(UV) run python -m scripts.benchmarks.overhead
	$(UV) run python -m scripts.benchmarks.modes
	$(UV) run python -m scripts.benchmarks.windows
	$(UV) run python -m scripts.benchmarks.mates
	$(UV) run python -m scripts.benchmarks.batches --hour
	$(UV) run python -m scripts.benchmarks.ramp
	$(UV) run python -m scripts.benchmarks.diarization
	$(UV) run python -m scripts.benchmarks.router
	$(MAKE) bench-memory
	$(MAKE) bench-console
	$(MAKE) bench-load
	$(MAKE) bench-search
	$(UV) run python -m scripts.benchmarks.openai_route
	$(UV) run python -m scripts.benchmarks.throughput

bench-ramp: install bench-tools  ## Live words: a long recording's first words with a small first batch, and its cost (~4 min)
	$(UV) run python -m scripts.benchmarks.ramp

bench-diarization: install bench-tools  ## Diarization: DER, speaker counts, speed next to transcription, one hour of audio (~6 min)
	$(UV) run python -m scripts.benchmarks.diarization

bench-openai: install bench-tools  ## OpenAI's route against the job API: 40 voice notes at concurrency 4 and 16 (~5 min)
	$(UV) run python -m scripts.benchmarks.openai_route

bench-console: install tools  ## The web console's first load in headless Chromium: bytes and time to interactive (~1 min)
	$(UV) run python -m scripts.benchmarks.console

bench-load: install bench-tools  ## API load: reads, lists, transcripts, uploads at 16/64/256 connections vs LOAD_BASELINE, then a 100,000-request soak (~12 min)
	$(UV) run python -m scripts.benchmarks.load --baseline $(LOAD_BASELINE) --soak 100000 --output .voxflow/bench/load.json

bench-search: install bench-tools  ## Transcript search: 10,000 transcripts, each kind of query alone and the mix at 1/4/16 connections (~2 min)
	$(UV) run python -m scripts.benchmarks.search --output .voxflow/bench/search.json

bench-memory: install  ## voxflow run's memory, idle: RSS of each process group (~1 min)
	$(UV) run python -m scripts.benchmarks.stack_memory --output .voxflow/bench/stack_memory.json

bench-quick: install bench-tools  ## Throughput benchmark on a small corpus (a few minutes)
	$(UV) run python -m scripts.benchmarks.throughput --quick

clean:
	rm -rf .venv .voxflow .pytest_cache .mypy_cache .ruff_cache
