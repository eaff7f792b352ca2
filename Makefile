# Each target bootstraps what it needs: a fresh machine with Python 3.11 and make is enough.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=
SPARK := pyspark==4.3.0

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

# Two locks: requirements.lock is what the kit needs to run (make install / make demo);
# requirements-dev.lock adds the test and lint tools (make test / make lint), at the same versions.
# `uv pip install -r` (not sync): the runtime install never removes the dev tools.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

$(DEV_STAMP): requirements-dev.lock $(STAMP)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.lock
	@touch $@

install: $(STAMP) ## Create .venv with the runtime dependencies and the kit (`kit` command)

install-dev: $(DEV_STAMP) ## install + the test and lint tools (pytest, Playwright, ruff, mypy)

demo: $(STAMP) ## Train the example model if needed, then open the Gradio demo
	@$(BIN)/kit status >/dev/null 2>&1 || $(BIN)/kit train
	$(BIN)/kit demo $(DEMO_ARGS)

# Debian packages the tests start for real: Chromium (browser tests), iproute2 (another host in a
# network namespace), podman/buildah and friends (images built and run; a base made by debootstrap),
# nats-server (the broker channel of model versions).
DEBIAN_PACKAGES := chromium iproute2 podman buildah skopeo debootstrap uidmap fuse-overlayfs \
  slirp4netns containernetworking-plugins catatonit runc nats-server

debian: ## Install the Debian packages the tests use (Chromium, iproute2, podman, buildah...), as root
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "apt-get install $$missing"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(CHROMIUM) --version 2>/dev/null

lint: $(DEV_STAMP) ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

spark: $(STAMP) ## Install the optional Spark engine of kit batch (pyspark; Java 17 needed)
	$(BIN)/uv pip install --quiet --python $(BIN)/python "$(SPARK)"

test: $(DEV_STAMP) debian spark lint ## Run every test (unit, integration, browser, images); sets itself up
	$(BIN)/python -m pytest $(PYTEST_ARGS)

reliability: $(DEV_STAMP) ## The fault, bad-input and security tests, then their figures (scripts/reliability/results)
	rm -rf test-output/reliability
	$(BIN)/python -m pytest -m reliability $(PYTEST_ARGS)
	$(BIN)/python -m scripts.reliability.report

bench: $(STAMP) ## Full `kit bench` + the 1M-row `kit batch` benchmark into scripts/bench/results
	@$(BIN)/kit status >/dev/null 2>&1 || $(BIN)/kit train
	$(BIN)/kit bench --out scripts/bench/results
	$(BIN)/python -m scripts.bench.readme
	$(BIN)/python -m scripts.bench.batch_bench

lock: ## Re-resolve both locks from pyproject.toml (the runtime one at the dev one's versions)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header -c requirements-dev.lock -o requirements.lock

clean: ## Remove the venv, caches and test output (not your models in .kit/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output

.PHONY: help install install-dev reliability demo debian spark lint test bench lock clean
