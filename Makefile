# hookrunner — the two commands a newcomer needs:
#   make demo   a real PAM transaction through pam_exec.so under pam_wrapper over hooks.d/
#   make test   everything: lint, types, unit, integration and end-to-end tests
VENV := .venv
PY := $(VENV)/bin/python

PREFIX ?= /usr/local
DESTDIR ?=
PYLIB := $(PREFIX)/lib/python3/dist-packages
PHASES := onauth onaccount onpasswd onsessionopen onsessionclose

.PHONY: all deps demo test lint unit e2e bench deb pam install install-pam clean

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

# By hand, without a package: the package, the command, the empty layer directories.
install:
	install -d -o root -g root -m 0755 $(DESTDIR)$(PYLIB)/hookrunner $(DESTDIR)$(PREFIX)/sbin
	install -o root -g root -m 0644 hookrunner/*.py hookrunner/py.typed $(DESTDIR)$(PYLIB)/hookrunner/
	printf '#!/bin/sh\nexec /usr/bin/python3 -I -S %s/hookrunner/__main__.py "$$@"\n' '$(PYLIB)' \
		> $(DESTDIR)$(PREFIX)/sbin/hookrunner
	chmod 0755 $(DESTDIR)$(PREFIX)/sbin/hookrunner
	for p in $(PHASES); do \
		install -d -o root -g root -m 0755 $(DESTDIR)/etc/security/$$p.d $(DESTDIR)$(PREFIX)/lib/hookrunner/$$p.d; \
	done
	@echo "installed; PAM lines: /usr/bin/python3 -I -S $(PYLIB)/hookrunner/__main__.py run PHASE"

# Debian packages hookrunner + libpam-hookrunner into dist/. dpkg-buildpackage writes to the
# parent directory, so the tree (without .git, .venv, caches, build products) is copied to a
# temporary directory first. Lint them with: lintian dist/hookrunner_*.changes
DEB_EXCLUDES := --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build \
	--exclude='*.egg-info' --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache \
	--exclude=.pytest_cache --exclude=.hypothesis --exclude='./pam/*.so' --exclude=./bench/results

# Debian's own tools and python3, not a pyenv or venv that happens to be first on PATH.
DEB_PATH := /usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin

deb:
	@command -v dpkg-buildpackage >/dev/null || { echo "deb: dpkg-buildpackage missing; run scripts/deps as root" >&2; exit 1; }
	@set -eu; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/hookrunner"; \
	tar -C . $(DEB_EXCLUDES) -cf - . | tar -C "$$tmp/hookrunner" -xf -; \
	(cd "$$tmp/hookrunner" && env -u PYTHONPATH -u PYTHONHOME PATH=$(DEB_PATH) dpkg-buildpackage -us -uc -b) > "$$tmp/build.log" 2>&1 \
		|| { tail -n 40 "$$tmp/build.log" >&2; echo "deb: dpkg-buildpackage failed" >&2; exit 1; }; \
	mkdir -p dist; \
	rm -f dist/hookrunner_* dist/libpam-hookrunner_* dist/libpam-hookrunner-dbgsym_*; \
	cp "$$tmp"/*.deb "$$tmp"/*.changes "$$tmp"/*.buildinfo dist/; \
	ls -1 dist/hookrunner_* dist/libpam-hookrunner_*

pam:
	$(MAKE) -C pam

install-pam: pam
	$(MAKE) -C pam install

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	-$(MAKE) -C pam clean
