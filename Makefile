# hookrunner — the two commands a newcomer needs:
#   make demo   a real PAM transaction through pam_exec.so under pam_wrapper over hooks.d/
#   make test   everything: lint, types, unit, integration and end-to-end tests
VENV := .venv
PY := $(VENV)/bin/python

PREFIX ?= /usr/local
DESTDIR ?=
PYTHON3 ?= /usr/bin/python3
PYLIB := $(PREFIX)/lib/python3/dist-packages
PAMCONFIGS ?= /usr/share/pam-configs
DIST ?= dist
PHASES := onauth onaccount onpasswd onsessionopen onsessionclose
# Bytecode of the rig, tests and tools goes below .venv, not next to the sources (pam/,
# tests/): a checkout stays as git has it. (The dispatcher runs with -I, which ignores this.)
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache

.PHONY: all deps demo test lint unit e2e bench deb pam install uninstall install-pam clean

all: test

deps:
	@scripts/deps

demo: deps
	@$(PY) pam/demo.py

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: deps lint
	$(PY) -m pytest -q

unit: deps
	$(PY) -m pytest -q -m "not e2e"

e2e: deps
	$(PY) -m pytest -q -m e2e

bench: deps
	$(PY) bench/run.py

# By hand, without a package: the package, the command, the empty layer directories, and the
# pam-auth-update profile (not enabled: Default: no) with the dispatcher's path for this PREFIX.
# The profile and the printed PAM lines are the shipped ones (pam/pam-configs/hookrunner,
# pam/hookrunner.pam), which name Debian's path, rewritten by FOR_PREFIX: they cannot drift.
# `make uninstall` (same PREFIX and DESTDIR) takes all of it away again.
SHIPPED_PYLIB := /usr/lib/python3/dist-packages
FOR_PREFIX := sed -e 's|/usr/bin/python3 -I |$(PYTHON3) -I |g' \
	-e 's|$(SHIPPED_PYLIB)/hookrunner/|$(PYLIB)/hookrunner/|g'
PROFILE := $(DESTDIR)$(PAMCONFIGS)/hookrunner

install:
	@if [ -z "$(DESTDIR)" ] && dpkg-query -S $(PAMCONFIGS)/hookrunner >/dev/null 2>&1; then \
		echo "install: $(PAMCONFIGS)/hookrunner belongs to the Debian package hookrunner; use it, or remove it first" >&2; \
		exit 1; fi
	install -d -o root -g root -m 0755 $(DESTDIR)$(PYLIB)/hookrunner $(DESTDIR)$(PREFIX)/sbin \
		$(DESTDIR)$(PAMCONFIGS)
	install -o root -g root -m 0644 hookrunner/*.py hookrunner/py.typed $(DESTDIR)$(PYLIB)/hookrunner/
	$(PYTHON3) -m compileall -q -d $(PYLIB)/hookrunner $(DESTDIR)$(PYLIB)/hookrunner
	printf '#!/bin/sh\nexec %s -I -S %s/hookrunner/__main__.py "$$@"\n' '$(PYTHON3)' '$(PYLIB)' \
		> $(DESTDIR)$(PREFIX)/sbin/hookrunner
	chmod 0755 $(DESTDIR)$(PREFIX)/sbin/hookrunner
	$(FOR_PREFIX) pam/pam-configs/hookrunner > $(PROFILE)
	chmod 0644 $(PROFILE)
	for p in $(PHASES); do \
		install -d -o root -g root -m 0755 $(DESTDIR)/etc/security/$$p.d $(DESTDIR)$(PREFIX)/lib/hookrunner/$$p.d; \
	done
	@echo "installed. The profile $(PAMCONFIGS)/hookrunner is off; turn it on with"
	@echo "    pam-auth-update --enable hookrunner"
	@echo "or put these lines into a service file in /etc/pam.d (see pam/hookrunner.pam for where):"
	@grep -E '^(auth|account|password|session) ' pam/hookrunner.pam | $(FOR_PREFIX) | sed 's/^/    /'

# The profile goes only if it is still the one install wrote (never the Debian package's), and
# after pam-auth-update took its lines out of /etc/pam.d/common-* (as the package's prerm does).
# The layer directories go when empty; hooks an administrator put there stay.
uninstall:
	@if $(FOR_PREFIX) pam/pam-configs/hookrunner | cmp -s - $(PROFILE); then \
		if [ -z "$(DESTDIR)" ] && command -v pam-auth-update >/dev/null 2>&1; then \
			pam-auth-update --package --remove hookrunner; fi; \
		rm -f $(PROFILE); \
	elif [ -e $(PROFILE) ]; then echo "uninstall: $(PROFILE) is not the one make install wrote: kept" >&2; fi
	rm -rf $(DESTDIR)$(PYLIB)/hookrunner $(DESTDIR)/var/cache/hookrunner
	rm -f $(DESTDIR)$(PREFIX)/sbin/hookrunner
	for p in $(PHASES); do \
		rmdir --ignore-fail-on-non-empty $(DESTDIR)/etc/security/$$p.d $(DESTDIR)$(PREFIX)/lib/hookrunner/$$p.d 2>/dev/null || true; \
	done
	rmdir --ignore-fail-on-non-empty $(DESTDIR)$(PREFIX)/lib/hookrunner 2>/dev/null || true

# Debian packages hookrunner + libpam-hookrunner into $(DIST) (default dist/), after scripts/deps
# installed the build tools (as root). dpkg-buildpackage writes to the parent directory, so the
# tree (without .git, .venv, caches, build products) is copied to a temporary directory first.
# Lint them with: lintian dist/hookrunner_*.changes
DEB_EXCLUDES := --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build \
	--exclude='*.egg-info' --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache \
	--exclude=.pytest_cache --exclude=.hypothesis --exclude='./pam/*.so' --exclude=./bench/results

# Debian's own tools and python3, not a pyenv or venv that happens to be first on PATH.
DEB_PATH := /usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin

deb:
	@scripts/deps --debs
	@command -v dpkg-buildpackage >/dev/null || { echo "deb: dpkg-buildpackage missing; run scripts/deps as root" >&2; exit 1; }
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/hookrunner"; \
	tar -C . $(DEB_EXCLUDES) -cf - . | tar -C "$$tmp/hookrunner" -xf -; \
	(cd "$$tmp/hookrunner" && env -u PYTHONPATH -u PYTHONHOME PATH=$(DEB_PATH) dpkg-buildpackage -us -uc -b) > "$$tmp/build.log" 2>&1 \
		|| { tail -n 40 "$$tmp/build.log" >&2; echo "deb: dpkg-buildpackage failed" >&2; exit 1; }; \
	mkdir -p $(DIST); \
	rm -f $(DIST)/hookrunner_* $(DIST)/libpam-hookrunner_* $(DIST)/libpam-hookrunner-dbgsym_*; \
	cp "$$tmp"/*.deb "$$tmp"/*.changes "$$tmp"/*.buildinfo $(DIST)/; \
	ls -1 $(DIST)/hookrunner_* $(DIST)/libpam-hookrunner_*

pam:
	$(MAKE) -C pam

install-pam: pam
	$(MAKE) -C pam install

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	-$(MAKE) -C pam clean
