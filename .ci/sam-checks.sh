#!/usr/bin/env bash
# Offline checks of the SAM application: no AWS credentials, no Docker, only the package index.
#
#   1. cfn-lint template.yaml
#   2. sam validate --lint
#   3. sam validate without lint (the real SAM transform, as CloudFormation runs it), then cfn-lint
#      on the transformed template. Steps 1-2 check the SAM template as written and miss errors
#      only the transform shows: an event Path that is not a literal string, or a circular
#      dependency through SAM-generated resources (E3004).
#   4. sam build (no container; needs a CPython 3.12 on PATH), then the artifacts: the layer has
#      callkit and the webhook extra, compiled for the template's architecture, without boto3; the
#      functions (webhook, relay) have no virtualenv, tests or caches.
#
# Environment: CFN_LINT (default "uv run cfn-lint"), SAM (default "sam"), PYTHON312 (a python3.12
# executable; default: the first found on PATH, then under pyenv), AWS_REGION (for the transform
# only; default us-east-1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a cfn_lint <<<"${CFN_LINT:-uv run cfn-lint}"
read -r -a sam <<<"${SAM:-sam}"
export SAM_CLI_TELEMETRY=0  # offline: no telemetry calls

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'sam-checks: %s\n' "$*" >&2; exit 1; }

# Prints the real path of a working CPython 3.12 (a pyenv shim may exist and still not run).
find_python312() {
    local candidate real
    for candidate in ${PYTHON312:+"$PYTHON312"} "$(command -v python3.12 || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
        [[ -n "$candidate" ]] || continue
        if real=$("$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12); print(sys.executable)' \
            2>/dev/null); then
            printf '%s\n' "$real"
            return
        fi
        [[ -z "${PYTHON312:-}" ]] || fail "PYTHON312=$PYTHON312 is not a working CPython 3.12"
    done
    fail "no working python3.12 found: sam build needs the runtime's Python (set PYTHON312)"
}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

step "cfn-lint template.yaml"
"${cfn_lint[@]}" template.yaml

step "sam validate --lint"
"${sam[@]}" validate --lint --template-file template.yaml

step "sam validate (SAM transform) + cfn-lint of the transformed template"
# An empty config file keeps samconfig.toml's `lint = true` from replacing the transform with lint.
: >"$workdir/empty.toml"
if ! "${sam[@]}" validate --template-file template.yaml --config-file "$workdir/empty.toml" \
    --region "${AWS_REGION:-us-east-1}" --debug >"$workdir/validate.out" 2>"$workdir/validate.err"; then
    cat "$workdir/validate.out" "$workdir/validate.err" >&2
    fail "sam validate (transform) failed"
fi
cat "$workdir/validate.out"
# --debug logs "<timestamp> | Translated template is:" followed by YAML, up to the next log line.
awk '/\| Translated template is:$/ { on = 1; next }
     on && /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9:,]+ \| / { on = 0 }
     on' "$workdir/validate.err" >"$workdir/transformed.yaml"
grep -q '^Resources:' "$workdir/transformed.yaml" \
    || fail "could not find the transformed template in 'sam validate --debug' output"
"${cfn_lint[@]}" "$workdir/transformed.yaml"
echo "transformed template: cfn-lint clean"

step "sam build"
python312=$(find_python312)
export PATH="$(dirname "$python312"):$PATH"
echo "using $python312 ($("$python312" --version))"
started=$SECONDS
"${sam[@]}" build --template-file template.yaml
echo "sam build took $((SECONDS - started)) s"

step "build artifacts"
"$python312" - template.yaml .aws-sam/build <<'PY'
"""Check the built layer and function against the template's contract."""

import re
import sys
from pathlib import Path

template, build = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
errors: list[str] = []

match = re.search(r"^\s+BuildArchitecture:\s*(\S+)", template, re.MULTILINE)
if not match:
    sys.exit("template.yaml: CallkitLayer has no Metadata.BuildArchitecture")
arch = match.group(1)
elf_machine = {"arm64": 0xB7, "x86_64": 0x3E}[arch]

layer = build / "CallkitLayer" / "python"
for name in ("callkit", "fastapi", "mangum", "aws_lambda_powertools", "multipart", "msgspec", "pydantic_core"):
    if not (layer / name).is_dir():
        errors.append(f"layer: {name} missing from {layer}")
for name in ("boto3", "botocore", "s3transfer"):
    if (layer / name).exists():
        errors.append(f"layer: {name} is bundled (the Lambda runtime provides it)")
if not list(layer.glob("callkit/__pycache__/*.cpython-312.pyc")):
    errors.append("layer: callkit is not byte-compiled for CPython 3.12")
shared_objects = sorted(layer.rglob("*.so"))
if not shared_objects:
    errors.append("layer: no compiled extensions found (expected pydantic_core, msgspec)")
for so in shared_objects:
    header = so.read_bytes()[:20]
    machine = int.from_bytes(header[18:20], "little")
    if header[:4] != b"\x7fELF" or machine != elf_machine:
        errors.append(f"layer: {so.relative_to(layer)} is not a Linux {arch} library (e_machine {machine:#x})")

junk = {".venv", "venv", "tests", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
functions = {"WebhookFunction": "webhook", "RelayFunction": "relay"}
for logical_id, package in functions.items():
    function = build / logical_id
    if not (function / package / "app.py").is_file():
        errors.append(f"{logical_id}: {package}/app.py missing")
    for path in function.rglob("*"):
        if path.name in junk or path.suffix == ".pyc":
            errors.append(f"{logical_id}: unexpected {path.relative_to(build)}")

for so in shared_objects:
    print(f"  {so.relative_to(layer)}")
size = sum(p.stat().st_size for p in layer.rglob("*") if p.is_file())
print(f"layer: {arch}, {len(shared_objects)} compiled extensions, {size / 1e6:.1f} MB unzipped")
for logical_id in functions:
    print(f"{logical_id}: {sorted(p.name for p in (build / logical_id).iterdir())}")
if errors:
    sys.exit("\n".join(errors))
PY

step "sam checks passed"
