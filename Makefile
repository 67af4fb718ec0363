# Thin aliases over Pants and Docker Compose. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PANTS := ./pants
COMPOSE_OPTIONS := --env-file .env -f compose/docker-compose.yml
COMPOSE := docker compose $(COMPOSE_OPTIONS)
API := src/python/services/api
WORKER := src/python/services/worker

# Image labels and tags: the release and the commit (Pants passes these as build args).
export FORGE_VERSION := $(shell cat src/python/modules/buildinfo/VERSION)
export FORGE_GIT_REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export IMAGE_TAG := $(FORGE_VERSION)-$(FORGE_GIT_REVISION)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
		'{ name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1) } \
		END { for (i = 1; i <= NR; i++) printf "  %-" width "s  %s\n", name[i], text[i] }'

# --- Quality gates -------------------------------------------------------------------------

.PHONY: lint lint-config type test fmt ci docs-check
lint: ## BUILD files up to date; ruff, black, hadolint, shellcheck; Compose file and workflow valid
	$(PANTS) tailor --check update-build-files --check lint ::
	$(MAKE) --no-print-directory lint-config

lint-config: ## The Compose file is valid with .env.example; actionlint on the GitHub workflow
	STACK_ENV_FILE=../.env.example docker compose --env-file .env.example -f compose/docker-compose.yml config --quiet
	@# actionlint and shellcheck (for the workflow's run: steps) are in the launcher's venv.
	tools="$$(FORGE_LAUNCHER_PRINT_VENV=1 $(PANTS))/bin" && \
		"$$tools/actionlint" -shellcheck="$$tools/shellcheck" -pyflakes= .github/workflows/*.yml

type: ## mypy (strict) over all Python targets
	$(PANTS) check ::

test: ## Every test (needs PostgreSQL and Redis, see DEV.md)
	$(PANTS) test ::

fmt: ## Format and auto-fix (black, ruff --fix) and tidy BUILD files
	$(PANTS) update-build-files fix ::

ci: lint ## Everything CI checks, in CI's order (the README's test command)
	$(PANTS) check ::
	@# --force: never a remembered result, the services are part of what is tested.
	$(PANTS) test --force ::
	$(PANTS) run $(API):openapi -- --check
	$(MAKE) --no-print-directory docs-check
	scripts/check-launcher
	scripts/check-changed-since
	$(MAKE) --no-print-directory chaos-ci
	$(PANTS) package ::
	scripts/compose-smoke

docs-check: ## Relative links in the Markdown files resolve; DEV.md/README runnable blocks succeed
	python3 src/python/devtools/check_docs.py

# --- API contract --------------------------------------------------------------------------

.PHONY: openapi
openapi: ## Regenerate docs/openapi/openapi.v1.json from the code
	$(PANTS) run $(API):openapi

# --- Build -------------------------------------------------------------------------------

.PHONY: package venv lock
package: ## Build every PEX (dist/) and both images (forge-api, forge-worker)
	$(PANTS) package ::

venv: ## Export the python-default resolve as a venv for your IDE (dist/export/)
	$(PANTS) export --resolve=python-default

lock: ## Regenerate lockfiles after editing 3rdparty/python/*requirements.txt
	$(PANTS) generate-lockfiles

# --- Local processes -----------------------------------------------------------------------

.PHONY: dev
dev: ## api, worker, reconciler, an S3 server as local processes (dev.env); Ctrl-C stops
	$(PANTS) package src/python/devtools:dev
	@# Run outside Pants: Ctrl-C reaches only the supervisor (which stops its processes and
	@# exits 0), and Pants stays free for other shells. The PEX finds CPython 3.12 on PATH or
	@# under pyenv, even with no global pyenv version.
	PEX_PYTHON_PATH="$$(printf '%s:' "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12.*/bin)$$PATH" \
		python3 dist/src.python.devtools/dev.pex dev.env

# --- Compose stack -----------------------------------------------------------------------

.PHONY: images up down logs ps dev-key
.env:
	cp .env.example .env

images: ## Build the forge-api and forge-worker images, tagged latest and <version>-<commit>
	$(PANTS) package docker/api docker/worker

up: .env images ## Build the images and start the stack; returns once every service is healthy
	@# `up --detach`, then a poll until every service is healthy (see the script for why).
	scripts/compose-up $(COMPOSE_OPTIONS)

down: ## Stop the stack and remove its containers (volumes stay; add -v by hand to drop data)
	$(COMPOSE) down --remove-orphans

logs: ## Follow the stack's output (Forge's services write JSON lines); Ctrl-C stops
	@# Compose exits 130 on Ctrl-C: that is how following ends, not an error.
	$(COMPOSE) logs --follow || [ $$? -eq 130 ]

ps: ## The stack's containers and their health
	$(COMPOSE) ps --all

dev-key: ## Print the stack's development API key (FORGE_API_KEY=$(make -s dev-key))
	@$(COMPOSE) exec api cat /var/lib/forge/keys/development.key

# --- Database (FORGE_DATABASE_URL) ---------------------------------------------------------

.PHONY: migrate-head migrate-down migration
migrate-head: ## Upgrade the database to the newest migration
	$(PANTS) run $(API):api -- migrate upgrade head

migrate-down: ## Undo the newest applied migration
	$(PANTS) run $(API):api -- migrate downgrade -1

migration: ## Write a new migration from the models: make migration m="add widgets"
	@test -n "$(m)" || { echo 'usage: make migration m="what it changes"' >&2; exit 2; }
	$(PANTS) run $(API):api -- migrate revision --autogenerate -m "$(m)"
	$(PANTS) fix alembic::

# --- Benchmarks ----------------------------------------------------------------------------

.PHONY: chaos chaos-ci chaos-compose
chaos: ## Fault-injection soak as local processes, full run (1,000 jobs, ~15 min); see DEV.md
	$(PANTS) run src/python/chaos:soak -- --jobs 1000 --poison 10 --rate 1.5

# SOAK_ARGS are added to (and override) the soak's options, e.g. SOAK_ARGS="--jobs 150".
chaos-compose: images ## The soak against the Compose stack (project forge-chaos): containers killed, paused, stopped; see DEV.md
	$(PANTS) run src/python/chaos:soak -- --stack compose --jobs 1000 --poison 10 --rate 1.5 $(SOAK_ARGS)

chaos-ci: ## The soak shortened for CI (120 jobs, ~4 min); fails on a lost, stuck or repeated job
	$(PANTS) run src/python/chaos:soak -- --jobs 120 --poison 3 --rounds 1 --rate 1.5 --max-step-s 0.1

.PHONY: bench-bootstrap bench-api bench-jobs bench-stream
bench-bootstrap: ## Cold ./pants bootstrap and warm no-op test run, with baselines
	scripts/bench-bootstrap

bench-api: ## /healthz and /readyz throughput and latency next to bare FastAPI (needs wrk)
	$(PANTS) run src/python/benchmarks:api-http

bench-jobs: ## Job submission, end-to-end latency, throughput, scale and memory next to bare FastAPI and Celery (needs wrk)
	$(PANTS) run src/python/benchmarks:jobs

bench-stream: ## Event streams: /healthz with 500 open, commit -> client latency, connections (needs wrk)
	$(PANTS) run src/python/benchmarks:stream
