"""Benchmark: the webhook Lambda's cold path and warm request latency, against a naive baseline.

    uv run python bench/webhook.py [--runs 9] [--requests 2000] [--handwritten DIR]

Cold path as deployed (bench/_coldpath.py): a fresh interpreter per sample imports the handler and
serves a signed incoming call (cascading pipeline) with the auth token in SSM, the stream-token
key in Secrets Manager and the call table, all on a moto server on loopback; credentials as Lambda
gives them (key variables), and SnapStart-style (imports and clients before the snapshot, container
credentials refreshed after the restore; only the first request is timed). Callkit and the
baseline alternate within each round so drift hits both. ``--handwritten DIR`` adds a third
handler: an export of the tree before botocore (``git archive <commit> layers/callkit/src
functions | tar -x -C DIR``), callkit's own SigV4 DynamoDB client, measured the same way.

Cold init: a fresh interpreter per run imports the handler module with the deployed environment
(a DynamoDB table configured, so the DynamoDB client is built at import; no network is touched at
import), timed inside the process around the import. Callkit and the baseline
(``bench/naive_webhook.py``) alternate so drift hits both. Warm: in one fresh process per handler,
signed Twilio incoming-call events (a new CallSid each) go through Mangum and the full handler
with the in-memory store; stdout (JSON logs, EMF metrics) goes to /dev/null as it would to
CloudWatch. Medians and percentiles of the per-request wall time. Also lists the five largest
import costs left in the callkit handler (self time, summed per top-level package).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _coldpath
from _stats import percentile

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "CALLKIT_APP": "callkit_app:interfaces",
    "CALLKIT_PUBLIC_URL": "https://abc123xyz9.execute-api.us-east-1.amazonaws.com",
    "CALLKIT_MEDIA_URL": "wss://media.example.com",
    "CALLKIT_RELAY_URL": "wss://relay.example.com/prod",
    "CALLKIT_PHONE_NUMBER": "+15551234567",
    "CALLKIT_PROVIDER": "twilio",
    "CALLKIT_PIPELINE": "cascading",
    "CALLKIT_TOKEN_KEY": "0123456789abcdef" * 4,
    "TWILIO_AUTH_TOKEN": "callkit-test-twilio-auth-token",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_SERVICE_NAME": "callkit-webhook",
    "POWERTOOLS_METRICS_NAMESPACE": "callkit",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT / "bench")]),
    "PYTHONWARNINGS": "ignore",
}
MODULES = {"callkit": "webhook.app", "naive": "naive_webhook"}

WARM_CHILD = """
import json, os, sys, time
from callkit.testing import LambdaContext, SimulatedCarrier, http_api_event
import {module} as handler_module
carrier = SimulatedCarrier("twilio", base_url=os.environ["CALLKIT_PUBLIC_URL"])
events = [http_api_event(carrier.incoming_call(to="+15551234567")) for _ in range({requests} + 200)]
context = LambdaContext()
real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")
for event in events[:200]:  # warm-up: first-request work (secrets, lazy imports) is not "warm"
    assert handler_module.handler(event, context)["statusCode"] == 200
times = []
for event in events[200:]:
    t = time.perf_counter()
    response = handler_module.handler(event, context)
    times.append((time.perf_counter() - t) * 1000)
    assert response["statusCode"] == 200
real_stdout.write(json.dumps(times))
"""


def child(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def cold_path(runs: int, handwritten: Path | None) -> _coldpath.Samples:
    """``{mode: {handler: [{"import_ms", "first_ms"}, ...]}}`` for modes ``lambda`` and ``snapstart``."""
    from callkit.testing import SimulatedCarrier, http_api_event

    handlers = {"callkit": (str(ROOT / "functions"), "webhook.app"), "naive": ("", "naive_webhook")}
    if handwritten is not None:
        src = os.pathsep.join(
            [str(handwritten / "layers" / "callkit" / "src"), str(handwritten / "functions")]
        )
        handlers["handwritten"] = (src, "webhook.app")
    app_env = {k: v for k, v in ENV.items() if k not in ("TWILIO_AUTH_TOKEN", "CALLKIT_TOKEN_KEY")} | {
        "CALLKIT_TABLE": _coldpath.TABLE,
        "TWILIO_AUTH_TOKEN_PARAM": _coldpath.AUTH_TOKEN_PARAM,
        "CALLKIT_TOKEN_KEY_SECRET": _coldpath.TOKEN_KEY_SECRET,
    }
    carrier = SimulatedCarrier("twilio", base_url=ENV["CALLKIT_PUBLIC_URL"])
    samples: _coldpath.Samples = {m: {h: [] for h in handlers} for m in ("lambda", "snapstart")}
    with _coldpath.deployed_aws() as (endpoint, credentials_url):
        for _ in range(runs):
            for mode, by_handler in samples.items():
                for name, (path, module) in handlers.items():
                    env = _coldpath.base_env() | app_env | _coldpath.aws_env(mode, endpoint, credentials_url)
                    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, str(ROOT / "bench")) if p)
                    event = http_api_event(carrier.incoming_call(to=ENV["CALLKIT_PHONE_NUMBER"]))
                    by_handler[name].append(_coldpath.sample(module, event, env))
    return samples


def warm(requests: int) -> dict[str, list[float]]:
    env = ENV | {"CALLKIT_TABLE": ""}
    return {
        name: json.loads(child(WARM_CHILD.format(module=module, requests=requests), env))
        for name, module in MODULES.items()
    }


def largest_imports(count: int = 5) -> list[tuple[str, float]]:
    env = {**os.environ, **ENV, "CALLKIT_TABLE": "calls"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import webhook.app"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        top = name.strip().split(".")[0]
        totals[top] = totals.get(top, 0.0) + int(self_us) / 1000
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per handler and mode (>=9)")
    parser.add_argument("--requests", type=int, default=2000, help="warm requests per handler")
    parser.add_argument("--handwritten", type=Path, default=None, help="tree with callkit's own AWS client")
    args = parser.parse_args()
    started = time.time()
    cold = _coldpath.figures(cold_path(args.runs, args.handwritten))
    warm_ms = warm(args.requests)
    warm_stats = {
        name: {q: round(percentile(v, p), 3) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        for name, v in warm_ms.items()
    }
    imports = [(name, round(ms, 1)) for name, ms in largest_imports()]
    ratios = {mode: round(f["callkit"]["cold_ms"] / f["naive"]["cold_ms"], 2) for mode, f in cold.items()}
    print(f"cold path as deployed (secrets in SSM / Secrets Manager, moto), medians of {args.runs} (ms):")
    for mode, by_handler in cold.items():
        what = "import + first request" if mode == "lambda" else "first request after restore"
        print(f"  {mode} ({what}):")
        for name, f in by_handler.items():
            print(
                f"    {name:12s} {f['cold_ms']:8.1f}   (import {f['import_ms']:.1f}, first request {f['first_request_ms']:.1f})"
            )
        print(f"    ratio callkit/naive: {ratios[mode]:.2f}  (target <= 0.70)")
    print(f"warm request through Mangum, in-memory store, {args.requests} requests (ms):")
    for name, stats in warm_stats.items():
        print(f"  {name:8s} p50 {stats['p50']:.3f}  p90 {stats['p90']:.3f}  p99 {stats['p99']:.3f}")
    print("  target: callkit p50 <= 3 ms")
    print("five largest imports left in the callkit handler (self time per top-level package, ms):")
    for name, ms in imports:
        print(f"  {name:28s} {ms:7.1f}")
    result = {
        "cold_path_ms": cold,
        "cold_ratio": ratios,
        "warm_ms": warm_stats,
        "largest_imports_ms": imports,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "webhook.json").write_text(json.dumps(result, indent=2))
    print(f"({time.time() - started:.0f} s; written to bench/results/webhook.json)")


if __name__ == "__main__":
    main()
