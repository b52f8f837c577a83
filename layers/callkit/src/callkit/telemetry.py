"""Logs and metrics behind one small interface.

Deployed functions use Powertools (JSON logs with the call id as correlation id, CloudWatch EMF
metrics); local runs and tests use the standard library and keep counters in memory so tests can
assert them. Messages are fixed strings; call details go in structured fields, and phone numbers,
transcripts and DTMF digits never go anywhere here (STYLE 15).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

Field = str | int | float | bool | None


class Telemetry(Protocol):
    def bind_call(self, call_id: str) -> None:
        """Attach ``call_id`` to every following log line of this request (correlation id)."""
        ...

    def info(self, message: str, **fields: Field) -> None: ...
    def warning(self, message: str, **fields: Field) -> None: ...
    def error(self, message: str, *, exc_info: bool = False, **fields: Field) -> None: ...
    def count(self, name: str, value: int = 1) -> None:
        """Add to a count metric."""
        ...


class StdlibTelemetry:
    """Logging through ``logging`` and metrics into a ``Counter``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("callkit")
        self.metrics: Counter[str] = Counter()
        self.call_id: str | None = None

    def bind_call(self, call_id: str) -> None:
        self.call_id = call_id

    def _extra(self, fields: dict[str, Field]) -> dict[str, object]:
        return {"callkit": {"call_id": self.call_id, **fields}}

    def info(self, message: str, **fields: Field) -> None:
        self.logger.info(message, extra=self._extra(fields))

    def warning(self, message: str, **fields: Field) -> None:
        self.logger.warning(message, extra=self._extra(fields))

    def error(self, message: str, *, exc_info: bool = False, **fields: Field) -> None:
        self.logger.error(message, exc_info=exc_info, extra=self._extra(fields))

    def count(self, name: str, value: int = 1) -> None:
        self.metrics[name] += value


class PowertoolsTelemetry:
    """Powertools Logger and Metrics (EMF on stdout; no API calls, no X-Ray SDK)."""

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self.metrics = metrics

    def bind_call(self, call_id: str) -> None:
        self.logger.set_correlation_id(call_id)
        self.logger.append_keys(call_id=call_id)

    def info(self, message: str, **fields: Field) -> None:
        self.logger.info(message, extra=fields)

    def warning(self, message: str, **fields: Field) -> None:
        self.logger.warning(message, extra=fields)

    def error(self, message: str, *, exc_info: bool = False, **fields: Field) -> None:
        self.logger.error(message, exc_info=exc_info, extra=fields)

    def count(self, name: str, value: int = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
