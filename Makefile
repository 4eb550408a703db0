# The two commands of the README: `make demo` and `make test`.
# Both work on a fresh Debian machine as root or with sudo.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

.PHONY: test demo lint unit venv deps chrony tools clean fixtures system-test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,gpiod]'
	touch $@

venv: $(STAMP)

# chrony from Debian's packages (the end-to-end tests and the demo need chronyd).
chrony:
	@command -v chronyd >/dev/null 2>&1 || [ -x /usr/sbin/chronyd ] || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chrony; }
	@# The package starts the system chronyd; our tests run their own private one.

# The other programs tests call, so that they run instead of skipping on a fresh
# machine: systemd-analyze (Debian package systemd) verifies the unit, man
# (man-db) renders the manual page, openssl makes the NTS test certificate.
TOOLS := systemd-analyze:systemd man:man-db openssl:openssl
tools:
	@missing=; for t in $(TOOLS); do \
	  command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	[ -z "$$missing" ] || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }

deps: venv chrony tools

lint: venv
	$(VENV)/bin/ruff check dcf77shm tests bench fixtures systemtest
	$(VENV)/bin/mypy --strict dcf77shm systemtest tests bench

unit: venv
	$(VENV)/bin/pytest -q

test: deps lint unit

demo: deps
	$(PY) -m dcf77shm.testing.demo

fixtures: venv
	$(PY) fixtures/make_fixtures.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# The Debian package (debian/): built from a copy of the tree in build/deb,
# so dpkg-buildpackage's ../*.deb lands in build/deb, then checked by lintian.
DEB_BUILD_DEPS := build-essential debhelper dh-python pybuild-plugin-pyproject python3-all \
                  python3-setuptools python3-click python3-sysv-ipc lintian fakeroot
.PHONY: deb deb-deps
deb-deps:
	@dpkg-checkbuilddeps debian/control >/dev/null 2>&1 && command -v lintian >/dev/null || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    $(DEB_BUILD_DEPS); }

deb: deb-deps
	rm -rf build/deb && mkdir -p build/deb/src
	tar -cf - --exclude=./.git --exclude=./build --exclude=./.venv --exclude='*.egg-info' \
	  --exclude=__pycache__ --exclude=.mypy_cache --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.hypothesis \
	  . | tar -C build/deb/src -xf -
	@# Debian's python3, not a pyenv/venv one earlier in PATH: dh-python builds for it.
	cd build/deb/src && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -b -us -uc
	lintian --fail-on error,warning --info build/deb/*.changes
	@ls build/deb/*.deb

# The installed package in booted Debian bookworm, trixie and forky containers
# (systemtest/; README "System test"): needs root, systemd-nspawn and mmdebstrap
# (installed when missing) and Debian's mirrors.  Root filesystems are cached in
# /var/cache/dcf77shm-systemtest.  SYSTEMTEST_FLAGS=--suites=trixie, --skip-ok, ...
SYSTEMTEST_FLAGS ?=
system-test: deb
	$(SUDO) $(PYTHON) -m systemtest --deb "$$(ls build/deb/dcf77shm_*_all.deb)" $(SYSTEMTEST_FLAGS)
