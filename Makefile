# hookrunner — the two commands a newcomer needs:
#   make demo   a real PAM transaction through pam_exec.so under pam_wrapper over hooks.d/
#   make test   everything: lint, types, unit, integration and end-to-end tests
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: all deps demo test lint unit e2e bench deb pam install-pam clean

all: test

deps:
	@scripts/deps

demo: deps
	@$(PY) pam/demo.py

lint: deps
	$(VENV)/bin/ruff check hookrunner tests bench pam
	$(VENV)/bin/mypy

test: deps lint
	$(PY) -m pytest -q

unit: deps
	$(PY) -m pytest -q -m "not e2e"

e2e: deps
	$(PY) -m pytest -q -m e2e

bench: deps
	$(PY) bench/run.py

pam:
	$(MAKE) -C pam

install-pam: pam
	$(MAKE) -C pam install

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	-$(MAKE) -C pam clean
