# callkit: `make demo` runs a whole simulated call; `make test` runs every check CI runs.
SHELL := /bin/bash
# The caller's PATH, to tell whether `sam` will be found after make returns.
CALLER_PATH := $(PATH)
export PATH := $(HOME)/.local/bin:$(PATH)
UV_RUN := uv run --frozen --no-sync
# The template's Architecture parameter: arm64 (deployed default) or x86_64 (sam local on x86).
ARCH ?= arm64
LAMBDA_ARCH := $(if $(filter arm64,$(ARCH)),aarch64,x86_64)

.PHONY: setup setup-sam demo call test check lint typecheck unit sam-checks build deploy deploy-dry-run \
	sam-path bench format clean

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
	@$(MAKE) --no-print-directory sam-path

# bootstrap.sh installs sam as ~/.local/bin/sam (a uv tool); say so when the caller's PATH lacks it.
sam-path:
	@PATH="$(CALLER_PATH)" command -v sam >/dev/null || echo "sam is installed as $$HOME/.local/bin/sam: \
	add that folder to PATH (export PATH=\"\$$HOME/.local/bin:\$$PATH\") or run it as 'uv tool run sam'"

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
	CFN_LINT="$(UV_RUN) cfn-lint" UV_RUN="$(UV_RUN)" PYTHON312="$$(cat .venv/.python312)" .ci/sam-checks.sh

# `sam build` alone also works (the layer's Makefile finds a CPython 3.12, pyenv included); this
# also builds for ARCH, which the layer build cannot learn from SAM: make build ARCH=x86_64.
build: setup-sam
	PATH="$$(dirname $$(cat .venv/.python312)):$$PATH" LAMBDA_ARCH=$(LAMBDA_ARCH) \
		sam build --parameter-overrides Architecture=$(ARCH)

# Image, keys, build and sam deploy (.ci/deploy.sh says what it needs), e.g.
#   make deploy PIPELINE=cascading PHONE_NUMBER=+15551234567 TWILIO_ACCOUNT_SID=AC... CARTESIA_VOICE_ID=...
# DRY_RUN=1 (or make deploy-dry-run) prints every command and calls nothing.
DEPLOY_VARS := PROVIDER PIPELINE PHONE_NUMBER TWILIO_ACCOUNT_SID PLIVO_AUTH_ID CARTESIA_VOICE_ID \
	TRANSFER_NUMBER OPENAI_BASE_URL MEDIA_DOMAIN_NAME MEDIA_CERTIFICATE_ARN STACK REGION REPOSITORY TAG \
	TWILIO_AUTH_TOKEN_PARAM PLIVO_AUTH_TOKEN_PARAM OPENAI_API_KEY_PARAM DEEPGRAM_API_KEY_PARAM \
	CARTESIA_API_KEY_PARAM EXTRA_OVERRIDES DRY_RUN
export $(DEPLOY_VARS) ARCH

deploy: setup-sam
	PATH="$$(dirname $$(cat .venv/.python312)):$$PATH" .ci/deploy.sh

deploy-dry-run:
	DRY_RUN=1 .ci/deploy.sh

bench: setup
	$(UV_RUN) python bench/webhook.py
	$(UV_RUN) python bench/relay.py
	$(UV_RUN) python bench/media.py

format: setup
	$(UV_RUN) ruff format .
	$(UV_RUN) ruff check --fix .

clean:
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache
