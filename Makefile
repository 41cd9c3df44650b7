# Two commands for a fresh machine (see README):
#   make demo   install, migrate a fresh SQLite demo database, start the server,
#               run the reference worker on demo/corpus, keep the server up
#   make test   install and run every test on SQLite, a throwaway PostgreSQL,
#               a throwaway Redis and headless Chromium (installed with
#               apt-get when root)

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 5000

.PHONY: install demo test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

demo: install
	PY=$(PY) PORT=$(PORT) scripts/demo

test: install
	scripts/ensure-test-tools
	scripts/with-postgres $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) instance/demo.sqlite3
