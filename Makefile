# The targets README and CI run. `install` and `install-prod` are idempotent: they only do
# what is missing.
VENV := .venv
PY := $(VENV)/bin/python
# What a production node needs. Development adds PostgreSQL (the cluster `make run` and the
# tests start), PgBouncer (which the tests start in front of it: tests/pooler.py), chromium
# (the browser tests), and Node.js and npm (axe-core for the accessibility test,
# openapi-typescript and tsc for the generated-client test, Uppy, FilePond, Dropzone and
# esbuild for the uploader recipes' test, sharp for `make bench`'s baselines, each installed
# by its user into a scratch directory), unless a node or an npm is already on PATH (one
# bundled with another Node.js build, which Debian's packages would conflict with).
# g++ and python3-dev build pdqhash (the PDQ perceptual hash), which PyPI has as source only.
APT_PROD_PACKAGES := nginx libmagic1 python3-venv g++ python3-dev
APT_PACKAGES := $(APT_PROD_PACKAGES) postgresql pgbouncer chromium curl jq \
	$(if $(shell command -v node),,nodejs) $(if $(shell command -v npm),,npm)
STAMP := $(VENV)/.installed
PROD_STAMP := $(VENV)/.installed-prod
# Where `install-prod` builds the wheel, and what it is built from: the package's files
# (code, migrations, nginx templates, the page), so a changed file makes a new wheel.
DIST := dist
PACKAGE_FILES := $(shell find mediasvc -type f ! -path '*/__pycache__/*')

.PHONY: install install-prod apt-packages apt-prod-packages run test lint bench loadtest clean

# Installs the apt packages in $(1) that dpkg does not know yet (as root, or through sudo).
define apt_install
	@for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

install: $(STAMP)

install-prod: $(PROD_STAMP)

apt-packages:
	$(call apt_install,$(APT_PACKAGES))

apt-prod-packages:
	$(call apt_install,$(APT_PROD_PACKAGES))

# Reinstall the venv only when the project's dependencies change. The apt packages come
# first (order-only): python3-venv makes the venv.
$(STAMP): pyproject.toml | apt-packages
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,heic]'
	rm -f $(PROD_STAMP)
	touch $(STAMP)

# The runtime dependencies only, with the HEIC/HEIF decoder (the `heic` extra; the README's
# upload form section says how to leave it out), and the app as a wheel built from this
# checkout, not editable: its migrations, nginx templates and page files are package data, so
# nothing is read from the checkout at run time. pip builds the wheel with the project's
# backend, as `python -m build` does, so the venv needs no build tool. The version does not
# change from build to build: the dependencies come with the first install, the new wheel
# with the forced one. `install` and `install-prod` share the venv: each drops the other's
# stamp, so switching back reinstalls.
$(PROD_STAMP): pyproject.toml $(PACKAGE_FILES) | apt-prod-packages
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	rm -rf $(DIST)
	$(PY) -m pip wheel -q --no-deps --wheel-dir $(DIST) .
	$(PY) -m pip install -q "$$(echo $(DIST)/mediasvc-*.whl)[heic]"
	$(PY) -m pip install -q --force-reinstall --no-deps $(DIST)/mediasvc-*.whl
	rm -f $(STAMP)
	touch $(PROD_STAMP)

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
	rm -rf $(VENV) $(DIST) var .mypy_cache .ruff_cache .pytest_cache
