"""The media server's logs and metrics: JSON lines on stderr, EMF metrics on stdout.

Logs: ``JsonFormatter`` writes one JSON object per line (timestamp, level, logger, message, the
call id bound in the logging task's context, the structured fields and exception info) for every
logger in the process, callkit's modules and uvicorn alike, so a line logged by
``callkit.conversation`` during a call names that call like the pipeline's own lines do.

Metrics: ``MediaTelemetry`` is ``StdlibTelemetry`` for logs, and aggregates ``count()`` per name
and ``measure()`` samples until ``flush()`` writes them as EMF (``media_server/emf.py``), with the
``ActiveCalls`` dimensions, every minute from ``publish()`` and once more at shutdown. Like the
``ActiveCalls`` gauge it writes nothing without its dimensions (local runs).

Wiring, in ``media_server/__main__.py``::

    configure_logging(os.environ.get(ENV_LOG_LEVEL, "INFO"))
    telemetry = MediaTelemetry.from_env()
    publisher = asyncio.create_task(telemetry.publish())   # cancel it, then telemetry.flush()
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Final

from callkit.telemetry import MeasureUnit, StdlibTelemetry, current_call_id
from media_server import emf
from media_server.scaling import DEFAULT_METRIC_INTERVAL_SECONDS, ENV_CLUSTER_NAME, ENV_SERVICE_NAME

__all__ = ["ENV_LOG_LEVEL", "JsonFormatter", "MediaTelemetry", "configure_logging"]

ENV_LOG_LEVEL: Final = "LOG_LEVEL"

#: The keys every line has; a structured field of the same name never replaces them.
_BASE_KEYS: Final = frozenset({"timestamp", "level", "logger", "message", "call_id"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    ``call_id`` is the record's own (``CallIdFilter``) or else the one bound in the context that
    logs it (formatting happens in that context: handlers here are synchronous); it is absent
    outside a call. Structured fields come from ``extra={"callkit": {...}}`` (``StdlibTelemetry``).
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None) or current_call_id()
        if call_id is not None:
            line["call_id"] = call_id
        fields = getattr(record, "callkit", None)
        if isinstance(fields, Mapping):
            line.update((k, v) for k, v in fields.items() if k not in _BASE_KEYS)
        if record.exc_info and record.exc_info[0] is not None:
            line["exception_name"] = record.exc_info[0].__name__
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str | int = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's records to ``stream`` (stderr) as JSON lines; returns the handler.

    Replaces the root logger's handlers (what ``logging.basicConfig`` would install).
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


class MediaTelemetry(StdlibTelemetry):
    """``Telemetry`` for the media server: stdlib logs, metrics published as EMF.

    ``count`` and ``measure`` only add to the current window (under a lock: cheap, and safe from
    threads); ``flush`` writes the window as EMF lines and starts a new one. Counts are summed per
    name; samples go out as value arrays (at most ``emf.MAX_VALUES`` a document), so CloudWatch
    keeps percentiles.
    """

    def __init__(
        self,
        *,
        service_name: str,
        cluster_name: str,
        write: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(logger)
        self._dimensions = {"ServiceName": service_name, "ClusterName": cluster_name}
        self._write = write or emf.write_stdout
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._samples: defaultdict[tuple[str, str], list[float]] = defaultdict(list)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, write: Callable[[str], object] | None = None
    ) -> MediaTelemetry:
        """The ``ActiveCalls`` dimensions, from the environment template.yaml sets."""
        env = os.environ if environ is None else environ
        return cls(
            service_name=env.get(ENV_SERVICE_NAME, ""),
            cluster_name=env.get(ENV_CLUSTER_NAME, ""),
            write=write,
        )

    @property
    def enabled(self) -> bool:
        return all(self._dimensions.values())

    def count(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def measure(self, name: str, value: float, unit: MeasureUnit = "Milliseconds") -> None:
        with self._lock:
            self._samples[name, unit].append(value)

    def flush(self) -> int:
        """Write the window's metrics as EMF lines (none if it is empty); returns how many."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            samples, self._samples = self._samples, defaultdict(list)
        if not self.enabled:
            return 0
        lines = list(self._documents(counts, samples))
        for line in lines:
            self._write(line)
        return len(lines)

    def _documents(
        self, counts: Counter[str], samples: Mapping[tuple[str, str], list[float]]
    ) -> Iterator[str]:
        totals: list[emf.Metric] = [(name, "Count", value) for name, value in sorted(counts.items()) if value]
        chunks = {
            key: [values[i : i + emf.MAX_VALUES] for i in range(0, len(values), emf.MAX_VALUES)]
            for key, values in sorted(samples.items())
        }
        rounds = max([1 if totals else 0, *(len(c) for c in chunks.values())])
        now = self._clock()
        for index in range(rounds):
            metrics = totals if index == 0 else []
            metrics = metrics + [
                (name, unit, c[index]) for (name, unit), c in chunks.items() if index < len(c)
            ]
            yield emf.document(metrics, dimensions=self._dimensions, timestamp=now)

    async def publish(
        self,
        interval_seconds: float = DEFAULT_METRIC_INTERVAL_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Flush every ``interval_seconds`` until cancelled (a line or two a minute: no thread)."""
        while True:
            await sleep(interval_seconds)
            self.flush()
