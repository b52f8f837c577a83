"""Logs and metrics behind one small interface.

Deployed functions use Powertools (JSON logs with the call id as correlation id, CloudWatch EMF
metrics); the media server logs JSON lines and publishes EMF itself (``media_server/telemetry.py``);
local runs and tests use the standard library and keep metrics in memory so tests can assert
them. Messages are fixed strings; call details go in structured fields, and phone numbers,
transcripts and DTMF digits never go anywhere here (STYLE 15).

The call id lives in a ``ContextVar``, not on the telemetry object: one process serves many calls
at once (the media server runs each WebSocket in its own asyncio task), and a task sees only the
id bound in its own context. ``asyncio.create_task`` copies the context, so a call's sub-tasks
inherit its id; a binding made inside a task never leaks out of it. (One made by synchronous code
outside any task lasts in that thread until the next one, as the old per-instance id did.)
"""

from __future__ import annotations

import logging
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, Literal, Protocol

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

Field = str | int | float | bool | None
#: Units of ``Telemetry.measure`` (CloudWatch unit names).
MeasureUnit = Literal["Milliseconds"]

_call_id: Final[ContextVar[str | None]] = ContextVar("callkit_call_id", default=None)


def bind_call(call_id: str) -> None:
    """Name the call the current context (task, request) serves, for every line logged from it."""
    _call_id.set(call_id)


def current_call_id() -> str | None:
    """The call id bound in the current context, ``None`` outside a call."""
    return _call_id.get()


class Telemetry(Protocol):
    def bind_call(self, call_id: str) -> None:
        """Attach ``call_id`` to every following log line of this task or request (correlation id)."""
        ...

    def info(self, message: str, **fields: Field) -> None: ...
    def warning(self, message: str, **fields: Field) -> None: ...
    def error(self, message: str, *, exc_info: bool = False, **fields: Field) -> None: ...
    def count(self, name: str, value: int = 1) -> None:
        """Add to a count metric."""
        ...

    def measure(self, name: str, value: float, unit: MeasureUnit = "Milliseconds") -> None:
        """Record one sample of a measured metric (a latency)."""
        ...


class StdlibTelemetry:
    """Logging through ``logging`` (fields under ``extra={"callkit": ...}``), metrics in memory."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("callkit")
        self.metrics: Counter[str] = Counter()
        self.measurements: defaultdict[str, list[float]] = defaultdict(list)

    def bind_call(self, call_id: str) -> None:
        bind_call(call_id)

    def _extra(self, fields: dict[str, Field]) -> dict[str, object]:
        return {"callkit": fields}

    def info(self, message: str, **fields: Field) -> None:
        self.logger.info(message, extra=self._extra(fields))

    def warning(self, message: str, **fields: Field) -> None:
        self.logger.warning(message, extra=self._extra(fields))

    def error(self, message: str, *, exc_info: bool = False, **fields: Field) -> None:
        self.logger.error(message, exc_info=exc_info, extra=self._extra(fields))

    def count(self, name: str, value: int = 1) -> None:
        self.metrics[name] += value

    def measure(self, name: str, value: float, unit: MeasureUnit = "Milliseconds") -> None:
        self.measurements[name].append(value)


class FieldsFormatter(logging.Formatter):
    """Plain-text lines that keep the structured fields: ``… webhook refused path=/call/incoming reason=…``.

    ``logging``'s own formatters drop ``extra`` values, and ``StdlibTelemetry`` puts everything
    but the fixed message there: without this, a line says that something happened but not why.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = getattr(record, "callkit", None)
        shown = dict(fields) if isinstance(fields, Mapping) else {}
        call_id = getattr(record, "call_id", None) or current_call_id()
        if call_id is not None:
            shown = {"call_id": call_id, **shown}
        return " ".join([text, *(f"{name}={value}" for name, value in shown.items() if value is not None)])


def console_logging(level: int = logging.INFO) -> None:
    """Show callkit's own log lines on stderr, fields included, unless logging is already set up.

    ``asyncio.run(AgentRuntime(...).start())`` in a script configures no logging, and Python then
    shows only warnings, without their fields: the runtime would start silently and a refused
    webhook would not say why. An application that configured logging keeps its own set-up.
    """
    logger = logging.getLogger("callkit")
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)


class CallIdFilter(logging.Filter):
    """Stamps each record logged inside a call with its id: ``call_id`` and ``correlation_id``.

    Outside a call it adds nothing, so the Powertools Logger's own correlation id (the request id
    from ``inject_lambda_context``) stays on the lines logged before the call is known.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        call_id = current_call_id()
        if call_id is not None:
            record.call_id = call_id
            record.correlation_id = call_id
        return True


#: One instance, so adding it to a logger twice is a no-op (``logging.Filterer.addFilter``).
_CALL_ID_FILTER: Final = CallIdFilter()


class PowertoolsTelemetry:
    """Powertools Logger and Metrics (EMF on stdout; no API calls, no X-Ray SDK).

    The call id reaches each record through a ``CallIdFilter`` on the logger (``call_id`` and
    ``correlation_id``), never through logger-wide keys, which every concurrent call would share.
    """

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self.metrics = metrics
        logger.addFilter(_CALL_ID_FILTER)

    def bind_call(self, call_id: str) -> None:
        bind_call(call_id)

    def info(self, message: str, **fields: Field) -> None:
        self.logger.info(message, extra=fields)

    def warning(self, message: str, **fields: Field) -> None:
        self.logger.warning(message, extra=fields)

    def error(self, message: str, *, exc_info: bool = False, **fields: Field) -> None:
        self.logger.error(message, exc_info=exc_info, extra=fields)

    def count(self, name: str, value: int = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def measure(self, name: str, value: float, unit: MeasureUnit = "Milliseconds") -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self.metrics.add_metric(name=name, unit=MetricUnit[unit], value=value)
