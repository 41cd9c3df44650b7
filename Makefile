# Two commands for a fresh machine (see README):
#   make demo   install what the app runs with (requirements.txt), migrate a
#               fresh SQLite demo database, start the server, run the
#               reference worker on demo/corpus, keep the server up
#   make test   install that and the test packages (requirements-test.txt),
#               run every test on SQLite, a throwaway PostgreSQL,
#               a throwaway Redis and headless Chromium (installed with
#               apt-get when root), with examples/node-worker's pinned npm
#               packages (npm ci) for the ajv/zod and Node worker tests

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 5000
NODE_WORKER := examples/node-worker

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

# npm ci writes node_modules/.package-lock.json: the stamp of a complete install.
$(NODE_WORKER)/node_modules/.package-lock.json: $(NODE_WORKER)/package.json $(NODE_WORKER)/package-lock.json
	cd $(NODE_WORKER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	PY=$(PY) PORT=$(PORT) scripts/demo

test: install-test
	scripts/ensure-test-tools
	$(MAKE) $(NODE_WORKER)/node_modules/.package-lock.json
	scripts/with-postgres $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) instance/demo.sqlite3 $(NODE_WORKER)/node_modules
