# Two commands matter: `make demo` and `make test`. Everything else is a helper.
# A fresh machine needs only Python 3.11+ and make: the venv, uv and every locked
# dependency are bootstrapped here from uv.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced

.PHONY: demo test lint typecheck ui dispatch bench bench-dispatch soak clean venv browser

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): $(UV) uv.lock pyproject.toml
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(BIN)/python --quiet
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo

# The browser test drives Debian's Chromium (Playwright cannot download a browser here)
# with CJK fonts, so Chinese renders. Installed when missing and we may (root + apt).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make test: installing Debian's chromium and fonts-noto-cjk for the browser test (once)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium fonts-noto-cjk >/dev/null; \
	  else echo "browser test needs: sudo apt-get install chromium fonts-noto-cjk" >&2; fi; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/mypy hub canonical_model connectors pipelines
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy hub canonical_model connectors pipelines

ui: $(STAMP)
	$(BIN)/hub ui

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

bench-dispatch: $(STAMP)
	$(BIN)/python benchmarks/dispatch.py

# The reliability tests at full size (minutes): 1,000 orders under 20/10/5 % faults and 10
# SIGKILLs; the fault matrix with 1,000 effects per writer under all faults at once (100 per
# single fault); the sync and the dispatcher SIGKILLed ten times each.
soak: $(STAMP)
	SOAK_ORDERS=1000 $(BIN)/pytest -q -s -p no:cacheprovider tests/reliability/test_orders_under_faults.py
	SOAK_EFFECTS=1000 $(BIN)/pytest -q -s -p no:cacheprovider tests/reliability/test_fault_matrix.py
	SOAK_KILLS=10 $(BIN)/pytest -q -s -p no:cacheprovider tests/reliability/test_repeated_sigkills.py

clean:
	rm -rf $(VENV)
