#!/usr/bin/env bash
# Offline checks of the SAM application: no AWS credentials, no Docker, only the package index.
#
#   1. cfn-lint template.yaml
#   1b. checkov on the template once per deployment shape (.ci/template_variants.py: checkov
#      evaluates Conditions with the parameters' defaults), settings and class-wide skips in
#      .ci/checkov.yaml, per-resource skips in the template's Metadata; run by uvx (installs
#      itself into uv's cache on first use; --skip-download: no calls to the Prisma Cloud API)
#   2. sam validate --lint
#   3. sam validate without lint (the real SAM transform, as CloudFormation runs it), then cfn-lint
#      on the transformed template. Steps 1-2 check the SAM template as written and miss errors
#      only the transform shows: an event Path that is not a literal string, or a circular
#      dependency through SAM-generated resources (E3004).
#   4. the media server image, statically (no Docker engine needed): media_server/Dockerfile runs
#      as a non-root user with a /healthz HEALTHCHECK, STOPSIGNAL SIGTERM, port 8080 and
#      `python -m media_server`, on a python:3.12-slim base with no architecture-specific step;
#      every COPY source exists and gets through .dockerignore; the task definition agrees (port,
#      health check, stop timeout); and the locked dependencies the image installs all have
#      linux/arm64 wheels (uv resolves the export for aarch64 without building anything).
#   5. sam build (no container; needs a CPython 3.12 on PATH) for ARCHITECTURE (the template's
#      Architecture parameter), then the artifacts: the layer has callkit and the webhook extra,
#      compiled for that architecture, without boto3; the functions (webhook, relay) have no
#      virtualenv, tests or caches.
#
# Environment: CFN_LINT (default "uv run cfn-lint"), SAM (default "sam"), UV (default "uv"),
# UV_RUN (default "uv run --frozen --no-sync"), CHECKOV (default: a pinned checkov through uvx),
# ARCHITECTURE (arm64 or x86_64, default arm64),
# PYTHON312 (a python3.12 executable; default: the first found on PATH, then under pyenv),
# AWS_REGION (for the transform only; default us-east-1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a cfn_lint <<<"${CFN_LINT:-uv run cfn-lint}"
read -r -a sam <<<"${SAM:-sam}"
read -r -a uv <<<"${UV:-uv}"
read -r -a uv_run <<<"${UV_RUN:-uv run --frozen --no-sync}"
read -r -a checkov <<<"${CHECKOV:-uvx --quiet --from checkov==3.3.30 checkov}"
architecture=${ARCHITECTURE:-arm64}
case "$architecture" in
    arm64) lambda_arch=aarch64 ;;
    x86_64) lambda_arch=x86_64 ;;
    *) printf 'sam-checks: ARCHITECTURE must be arm64 or x86_64 (got %s)\n' "$architecture" >&2; exit 2 ;;
esac
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

step "checkov (one template per deployment shape)"
"${uv_run[@]}" python .ci/template_variants.py template.yaml "$workdir/variants"
"${checkov[@]}" --config-file .ci/checkov.yaml --directory "$workdir/variants"

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

step "media server image (static: Dockerfile, .dockerignore, task definition, arm64 wheels)"
python312=$(find_python312)
"$python312" - media_server/Dockerfile .dockerignore template.yaml >"$workdir/image.env" <<'PY'
"""Check media_server/Dockerfile without building it; print the extras its uv export installs."""

import json
import re
import shlex
import sys
from pathlib import Path

dockerfile_path, ignore_path, template_path = (Path(a) for a in sys.argv[1:4])
errors: list[str] = []

# Instructions: comments dropped, "\" continuations joined.
instructions: list[tuple[str, str]] = []
pending = ""
for raw in dockerfile_path.read_text().splitlines():
    line = raw.strip()
    if not pending and (not line or line.startswith("#")):
        continue
    if pending and line.startswith("#"):
        continue
    if line.endswith("\\"):
        pending += line[:-1] + " "
        continue
    pending += line
    keyword, _, rest = pending.partition(" ")
    instructions.append((keyword.upper(), rest.strip()))
    pending = ""

args: dict[str, str] = {}
stages: list[list[tuple[str, str]]] = []
for keyword, rest in instructions:
    if keyword == "ARG" and not stages:
        name, _, default = rest.partition("=")
        args[name] = default.strip('"')
    if keyword == "FROM":
        stages.append([])
    if stages:
        stages[-1].append((keyword, rest))
if not stages:
    sys.exit(f"{dockerfile_path}: no FROM")

runtime = re.search(r"^\s+Runtime:\s*python(\d+\.\d+)\s*$", template_path.read_text(), re.MULTILINE)
python_version = runtime.group(1) if runtime else "3.12"
for stage in stages:
    options = stage[0][1].split()
    if any(o.startswith("--platform") for o in options):
        errors.append(f"FROM {stage[0][1]}: no --platform (the image is built per architecture)")
    image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), ""), [o for o in options if not o.startswith("--")][0])
    if not image.startswith(f"python:{python_version}-slim"):
        errors.append(f"FROM {image}: expected python:{python_version}-slim (the functions' runtime)")
for keyword, rest in instructions:
    if keyword != "FROM" and re.search(r"amd64|x86_64|aarch64|arm64", rest):
        errors.append(f"{keyword} {rest[:60]}...: architecture-specific")

final = stages[-1]
def last(keyword: str) -> str | None:
    values = [rest for k, rest in final if k == keyword]
    return values[-1] if values else None

user = last("USER")
if user is None or user.split(":")[0] in {"root", "0"}:
    errors.append(f"final stage: USER must be a non-root user (got {user!r})")
healthcheck = last("HEALTHCHECK") or ""
health_cmd: list[str] = []
if "CMD" not in healthcheck or "/healthz" not in healthcheck:
    errors.append("final stage: HEALTHCHECK ... CMD on /healthz missing")
else:
    try:
        health_cmd = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    except ValueError:
        errors.append("HEALTHCHECK: use the exec form CMD [...] (no shell in the command)")
if last("STOPSIGNAL") != "SIGTERM":
    errors.append("final stage: STOPSIGNAL SIGTERM missing")
if "8080" not in (last("EXPOSE") or "").split():
    errors.append("final stage: EXPOSE 8080 missing")
try:
    cmd = json.loads(last("CMD") or "null")
except ValueError:
    cmd = None
if cmd != ["python", "-m", "media_server"]:
    errors.append(f'final stage: CMD must be ["python", "-m", "media_server"] (got {cmd!r})')
if not Path("media_server/__main__.py").is_file():
    errors.append("media_server/__main__.py missing: `python -m media_server` has nothing to run")

# .dockerignore as Docker reads it: the last matching pattern wins; a pattern that matches a
# parent directory matches everything below it.
def to_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")

rules: list[tuple[bool, re.Pattern[str]]] = []
for raw in ignore_path.read_text().splitlines():
    line = raw.strip()
    if not line or line.startswith("#"):
        continue
    negate = line.startswith("!")
    pattern = line[1:].strip() if negate else line
    pattern = pattern.strip("/")
    rules.append((negate, to_regex(pattern)))

def ignored(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded

for stage in stages:
    for keyword, rest in stage:
        if keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(rest)
        if any(w.startswith("--from") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            path = Path(source)
            clean = path.as_posix().strip("/")
            if ".." in path.parts or not path.exists():
                errors.append(f"{keyword} {source}: not found in the build context (the repository root)")
            elif path.is_dir():
                files = [f for f in path.rglob("*") if f.is_file() and not ignored(f.as_posix())]
                if not files:
                    errors.append(f"{keyword} {source}: .dockerignore leaves nothing of it in the context")
            elif ignored(clean):
                errors.append(f"{keyword} {source}: excluded by .dockerignore")
if Path("media_server/__main__.py").is_file() and ignored("media_server/__main__.py"):
    errors.append("media_server/__main__.py: excluded by .dockerignore")
for junk in (".venv/bin/python", ".git/HEAD", ".aws-sam/build.toml", "tests/unit/test_agent.py"):
    if not ignored(junk):
        errors.append(f".dockerignore: {junk} would be sent in the build context")

# The task definition must agree with the image.
template = template_path.read_text()
stop_timeout = re.search(r"^\s+StopTimeout:\s*(\d+)", template, re.MULTILINE)
if not stop_timeout or int(stop_timeout.group(1)) > 120:
    errors.append("template: the media container needs a StopTimeout of at most 120 s (Fargate)")
elif f'CALLKIT_STOP_TIMEOUT_SECONDS, Value: "{stop_timeout.group(1)}"' not in template:
    errors.append("template: CALLKIT_STOP_TIMEOUT_SECONDS must equal the container's StopTimeout")
if "{ContainerPort: 8080, Protocol: tcp}" not in template or "{Name: PORT, Value: \"8080\"}" not in template:
    errors.append("template: the media container must map and set PORT 8080 (the image's EXPOSE)")
if health_cmd[:1] == ["python"] and json.dumps(health_cmd[2]) not in template:
    errors.append("template: the task definition's HealthCheck must run the image's HEALTHCHECK command")

export = next((rest for keyword, rest in instructions if keyword == "RUN" and "uv export" in rest), "")
extras = re.findall(r"--extra\s+(\S+)", export)
if not extras:
    errors.append("Dockerfile: no `uv export ... --extra ...` found")
if errors:
    sys.exit("\n".join(f"media server image: {e}" for e in errors))
print("EXTRAS=" + ",".join(extras))
PY
extras=$(sed -n 's/^EXTRAS=//p' "$workdir/image.env")
echo "Dockerfile, .dockerignore and task definition agree; image extras: $extras"
extra_args=()
for extra in ${extras//,/ }; do extra_args+=(--extra "$extra"); done
# The same export as the Dockerfile's builder stage, resolved for linux/arm64 with --no-build: it
# fails if a locked dependency has no aarch64 wheel for CPython 3.12 (the slim image has no compiler).
# uv needs an interpreter for both (never a downloaded one: offline).
UV_PYTHON_DOWNLOADS=never "${uv[@]}" export --quiet --locked --python "$python312" --no-dev \
    --no-emit-workspace --package callkit "${extra_args[@]}" --output-file "$workdir/image-requirements.txt"
UV_PYTHON_DOWNLOADS=never "${uv[@]}" pip install --dry-run --quiet --no-build --require-hashes \
    --python "$python312" --python-version 3.12 --python-platform aarch64-manylinux_2_28 \
    --target "$workdir/image-target" -r "$workdir/image-requirements.txt"
echo "image dependencies: $(grep -c '^[a-z0-9]' "$workdir/image-requirements.txt") locked packages, all with linux/arm64 wheels"

step "sam build ($architecture)"
export PATH="$(dirname "$python312"):$PATH"
echo "using $python312 ($("$python312" --version))"
started=$SECONDS
# SAM resolves the layer's BuildArchitecture from the parameter but cannot pass it to make.
LAMBDA_ARCH=$lambda_arch "${sam[@]}" build --template-file template.yaml --parameter-overrides "Architecture=$architecture"
echo "sam build took $((SECONDS - started)) s"

step "build artifacts"
"$python312" - template.yaml .aws-sam/build "$architecture" <<'PY'
"""Check the built layer and function against the template's contract."""

import re
import sys
from pathlib import Path

template, build = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
errors: list[str] = []

if not re.search(r"^\s+BuildArchitecture:\s*!Ref Architecture\s*$", template, re.MULTILINE):
    sys.exit("template.yaml: CallkitLayer's Metadata.BuildArchitecture must be !Ref Architecture")
arch = sys.argv[3]
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
