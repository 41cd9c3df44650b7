# Two commands for a fresh machine (see README):
#   make demo   install what the app runs with (requirements.txt), migrate a
#               fresh SQLite demo database, start the server, run the
#               reference worker on demo/corpus, keep the server up
#   make test   install that and the test packages (requirements-test.txt),
#               run every test on SQLite, a throwaway PostgreSQL,
#               a throwaway Redis and headless Chromium (installed with
#               apt-get when root); the tests install the npm packages
#               they need (axe-core, the Node example worker's) into
#               temporary folders with npm ci

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 5000

.PHONY: install install-test demo test clean

# Each stamp lists every file it installs from, so changing a pin reinstalls.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# exec: the recipe's shell becomes the demo script, so a SIGTERM that make
# forwards to its child (timeout, a supervisor) reaches the script's trap.
demo: install
	exec env PY=$(PY) PORT=$(PORT) scripts/demo

test: install-test
	scripts/ensure-test-tools
	scripts/with-postgres $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) instance/demo.sqlite3 examples/node-worker/node_modules
