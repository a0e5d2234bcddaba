# The two set-up commands: `make run` (start Inventiv) and `make test` (run the test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test install migrate bench-all clean

$(VENV)/.installed: requirements.txt requirements-dev.txt worker_agent/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt -r worker_agent/requirements.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_catalog
	$(PY) manage.py ensure_admin

run: migrate
	./scripts/run.sh

test: install
	./scripts/ensure_chromium.sh
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) var
