# The targets README and CI run. `install` is idempotent: it only does what is missing.
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := nginx libmagic1 postgresql chromium
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench loadtest clean

install: $(STAMP)
	@for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Reinstall the venv only when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: install
	$(PY) -m mediasvc dev

test: install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check mediasvc tests bench
	$(VENV)/bin/ruff format --check mediasvc tests bench
	$(VENV)/bin/mypy

# The benchmark: table on stdout, JSON summary as the last line, results in bench/results/.
bench: install
	$(PY) -m bench

# One minute of mixed traffic at the pool's capacity with one injected fault (issue 7).
loadtest: install
	$(PY) -m bench.loadtest --seconds 60

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
