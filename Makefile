# callkit: `make demo` runs a whole simulated call; `make test` runs every check CI runs.
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
UV_RUN := uv run --frozen --no-sync

.PHONY: setup setup-sam demo call test check lint typecheck unit sam-checks build deploy bench format clean

setup:
	@.ci/bootstrap.sh

setup-sam:
	@.ci/bootstrap.sh --sam

demo: setup
	$(UV_RUN) python -m callkit.demo

call: setup
	$(UV_RUN) python -m callkit call

test: setup-sam
	$(MAKE) --no-print-directory check unit

check: lint typecheck sam-checks

lint:
	$(UV_RUN) ruff format --check .
	$(UV_RUN) ruff check .

# bench/ gets its own mypy run: its webhook.py and relay.py share names with functions/'s packages.
typecheck:
	$(UV_RUN) mypy
	MYPYPATH=bench $(UV_RUN) mypy bench

unit:
	$(UV_RUN) pytest -q

sam-checks:
	CFN_LINT="$(UV_RUN) cfn-lint" PYTHON312="$$(cat .venv/.python312)" .ci/sam-checks.sh

build: setup-sam
	PATH="$$(dirname $$(cat .venv/.python312)):$$PATH" sam build

deploy: build
	sam deploy --guided

bench: setup
	$(UV_RUN) python bench/webhook.py
	$(UV_RUN) python bench/relay.py
	$(UV_RUN) python bench/media.py

format: setup
	$(UV_RUN) ruff format .
	$(UV_RUN) ruff check --fix .

clean:
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache
