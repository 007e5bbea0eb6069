# Fleetdeck: `make demo` runs the product, `make test` runs the tests. Both set everything up on a fresh
# machine with only Python 3.11+: a virtual env, an embedded PostgreSQL and a filesystem broker.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_USER ?= demo
DEMO_PASSWORD ?= fleetdeck-demo
DEMO_NODES ?= 300
PYTEST_ARGS ?=
# The demo's simulated agents and the poller share this bearer token (never use it outside the demo).
FLEETDECK_AGENT_TOKEN ?= demo-agent-token
export HOST PORT FLEETDECK_AGENT_TOKEN
# The demo's AWS and GCP are local emulators (manage.py demo_clouds); these point the real adapters at them.
DEMO_CLOUDS = AWS_ENDPOINT_URL=http://127.0.0.1:9600 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
	AWS_DEFAULT_REGION=us-east-1 MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true \
	GCP_COMPUTE_ENDPOINT=http://127.0.0.1:9700
# The demo's mail goes through real SMTP to `manage.py mailsink`, which keeps it under .fleetdeck/mail/.
DEMO_MAIL = EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend EMAIL_HOST=127.0.0.1 EMAIL_PORT=1025

.PHONY: install demo dev-env test lint stop clean lock

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Fleetdeck needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

# The official FOCUS validator (tests/billing/test_focus_validator.py runs it on the FOCUS export) pins numpy<2,
# pandas<3, pandera 0.17 and more that clash with the app's dependencies: it gets a virtual env of its own.
FOCUS_VENV ?= .venv-focus
$(FOCUS_VENV)/.installed: constraints-focus.txt
	$(PYTHON) -m venv $(FOCUS_VENV)
	$(FOCUS_VENV)/bin/python -m pip install -q -c constraints-focus.txt focus-validator
	@touch $@

install: $(VENV)/.installed $(FOCUS_VENV)/.installed

# .fleetdeck/dev.env for manage.py commands beside the demo (settings load it, the environment wins): DEBUG=true
# and the data folder the demo uses, never anything else from the environment. Never .env: that is the name of
# the operator's production file for docker compose.
DEV_ENV := .fleetdeck/dev.env
dev-env:
	@mkdir -p $(dir $(DEV_ENV))
	@{ echo '# Written by make demo: development settings for manage.py commands. Never use in production.'; \
	  echo 'DEBUG=true'; \
	  $(if $(FLEETDECK_DATA_DIR),echo 'FLEETDECK_DATA_DIR=$(abspath $(FLEETDECK_DATA_DIR))';) } > $(DEV_ENV)

# The demo needs the app's env only; the FOCUS validator's is for the tests.
demo: $(VENV)/.installed dev-env
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py seed_demo --if-empty --nodes $(DEMO_NODES) --user $(DEMO_USER) --password $(DEMO_PASSWORD)
	@echo ""
	@echo "  Fleetdeck is starting at http://$(HOST):$(PORT)/"
	@echo "  Log in as $(DEMO_USER) / $(DEMO_PASSWORD)   (API docs: http://$(HOST):$(PORT)/api/docs/)"
	@echo "  Ctrl-C stops web, worker, beat and the fleet simulator; 'make stop' also stops the embedded PostgreSQL."
	@echo ""
	PATH="$(abspath $(BIN)):$$PATH" DEBUG=true $(DEMO_CLOUDS) $(DEMO_MAIL) $(BIN)/honcho -f Procfile.demo start

test: install
	DEBUG=true $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

stop:
	@test -x $(BIN)/python && $(BIN)/python -m config.embedded stop || true

# Refresh the pinned versions after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^fleetdeck' > constraints.txt

# .fleetdeck holds the embedded database, the broker folder and dev.env; a .env of your own stays.
clean: stop
	rm -rf $(VENV) $(FOCUS_VENV) .fleetdeck staticfiles test-artifacts
