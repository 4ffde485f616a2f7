# The README's two commands: `make run` and `make test`. Each does all set-up itself.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint setup system-deps browser-deps bench-deps clean

run: $(STAMP)
	$(BIN)/fhirhub serve

test: $(STAMP) browser-deps
	$(BIN)/fhirhub setup
	$(BIN)/ruff check fhirhub tests bench seed_data wsgi.py
	$(BIN)/ruff format --check fhirhub tests bench seed_data wsgi.py
	$(BIN)/mypy
	$(BIN)/pytest

setup: $(STAMP)
	$(BIN)/fhirhub setup

# PostgreSQL server binaries back the embedded FerretDB (Debian's postgresql package).
system-deps:
	@if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		echo "installing Debian's postgresql package"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

# Headless Chromium for the SMART sign-in page tests (tests/test_smart_browser.py).
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		echo "installing Debian's chromium and chromium-driver"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null \
			|| echo "warning: chromium could not be installed; the browser test will be skipped"; \
	fi

# wrk, the C load generator bench/rest_core.py drives the HTTP side with (Debian's wrk).
bench-deps:
	@if ! command -v wrk >/dev/null 2>&1; then \
		echo "installing Debian's wrk"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; \
	fi

$(STAMP): pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.3
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .cache .tools var
