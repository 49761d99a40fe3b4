# wsgiauth: the README's two commands (`make demo`, `make test`) and their helpers.
# Everything a fresh Debian 12 machine lacks is installed here: apt packages (after apt-get update), a venv
# at .venv built from Debian's /usr/bin/python3 (so Apache's www-data can read it), the package in editable mode.

SHELL := /bin/bash
PY_SYS ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

APT_PACKAGES := apache2 apache2-dev apache2-utils python3-dev python3-venv libcrypt-dev libffi-dev \
	libgdbm-dev libdb-dev libpq-dev gcc make openssl curl tmux wrk \
	slapd ldap-utils postgresql mariadb-server redis-server libaprutil1-dbd-pgsql libaprutil1-ldap \
	whois

.PHONY: all deps venv install traverse lint test demo bench stress asan clean

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
	$(PIP) install -q --upgrade pip setuptools wheel

venv: $(PY)

install: .stamp-install
.stamp-install: $(PY) pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.py)
	$(PIP) install -q -e '.[test]'
	@touch $@

lint: install
	$(VENV)/bin/ruff check src tests backends benchmarks
	$(VENV)/bin/mypy

test: install traverse lint
	$(PY) -m pytest $(PYTEST_ARGS)

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
	rm -rf build dist src/*.egg-info src/wsgiauth/_native*.so src/wsgiauth/_native.c .stamp-install

# ---- Debian 13 leg (backends/trixie.py, tests/test_debian13.py) --------------------------------------------------
# A cached debootstrap'ed Debian 13 root ($WSGIAUTH_TRIXIE_CACHE, default /var/cache/wsgiauth/trixie) with Python
# 3.13 and Debian's apache2 + libapache2-mod-wsgi-py3, no compiler. The host needs `debootstrap` (add it to
# APT_PACKAGES when merging). WSGIAUTH_WHEEL=dist/wsgiauth-...whl tests that wheel; without it a cp313 wheel of the
# checkout is built in a throw-away builder layer (backends/trixie_builder.py).
debian13: install traverse
	@command -v debootstrap >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends debootstrap || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap; }; }
	$(PY) -m pytest tests/test_debian13.py $(PYTEST_ARGS)
.PHONY: debian13
