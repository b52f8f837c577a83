"""CloudWatch embedded metric format (EMF): metrics as one JSON document per line on stdout.

The container's awslogs driver ships stdout to CloudWatch Logs, which extracts the metrics named
under ``_aws.CloudWatchMetrics``; no API call, no agent. Used by the ``ActiveCalls`` gauge
(``media_server/scaling.py``) and the per-call counters and latencies
(``media_server/telemetry.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Final

NAMESPACE: Final = "callkit"
#: EMF accepts at most 100 values per metric in one document (and 100 metrics).
MAX_VALUES: Final = 100

#: ``(name, unit, value)``: one number, or up to ``MAX_VALUES`` samples of the same metric.
Metric = tuple[str, str, float | Sequence[float]]


def document(
    metrics: Sequence[Metric],
    *,
    dimensions: Mapping[str, str],
    timestamp: float,
    namespace: str = NAMESPACE,
) -> str:
    """The EMF document (one line of JSON) for ``metrics`` at ``timestamp`` (seconds)."""
    body: dict[str, object] = {
        "_aws": {
            "Timestamp": int(timestamp * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
                }
            ],
        },
        **dimensions,
    }
    for name, _, value in metrics:
        body[name] = value if isinstance(value, int | float) else list(value)
    return json.dumps(body, separators=(",", ":"))


def write_stdout(line: str) -> None:
    # One write per line so concurrent log lines never interleave inside it; flushed so the
    # awslogs driver sees it now rather than when a buffer fills.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
