"""The call id follows the asyncio task that bound it, for both telemetry classes."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from callkit.telemetry import PowertoolsTelemetry, StdlibTelemetry, Telemetry, current_call_id


class Records(logging.Handler):
    """Keeps each record with the call id bound where it was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None, dict[str, object]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), current_call_id(), dict(getattr(record, "callkit", {}))))


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("test.telemetry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def run_fresh(scenario: Coroutine[Any, Any, None]) -> None:
    """Run ``scenario`` in an empty context: no call bound by an earlier test in this thread."""
    contextvars.Context().run(asyncio.run, scenario)


async def call(telemetry: Telemetry, call_id: str, started: asyncio.Barrier) -> None:
    """One call: binds its id, lets the other call bind, logs, and logs from a sub-task."""
    telemetry.bind_call(call_id)
    await started.wait()  # both calls have bound their ids before either logs
    telemetry.info("call step", step=1)

    async def subtask() -> None:
        await asyncio.sleep(0)
        telemetry.warning("sub-task step")

    await asyncio.create_task(subtask())
    telemetry.info("call step", step=2)


def test_concurrent_tasks_each_log_their_own_call_id(records: Records) -> None:
    telemetry = StdlibTelemetry(logging.getLogger("test.telemetry"))

    async def scenario() -> None:
        started = asyncio.Barrier(2)
        await asyncio.gather(call(telemetry, "CA1", started), call(telemetry, "CA2", started))
        assert current_call_id() is None, "a binding inside a task never leaks out of it"

    run_fresh(scenario())
    by_call = {cid: [m for m, c, _ in records.seen if c == cid] for cid in ("CA1", "CA2")}
    assert by_call == {cid: ["call step", "sub-task step", "call step"] for cid in ("CA1", "CA2")}
    assert len(records.seen) == 6
    assert [fields for message, _, fields in records.seen if message == "call step"][:2] == [
        {"step": 1},
        {"step": 1},
    ]


def test_stdlib_metrics_stay_in_memory() -> None:
    telemetry = StdlibTelemetry()
    telemetry.count("BargeIns")
    telemetry.count("BargeIns", 2)
    telemetry.measure("TurnLatency", 180.5)
    telemetry.measure("TurnLatency", 90.0)
    assert telemetry.metrics == {"BargeIns": 3}
    assert telemetry.measurements == {"TurnLatency": [180.5, 90.0]}


def test_powertools_lines_carry_their_call_as_call_id_and_correlation_id() -> None:
    output = io.StringIO()
    logger = Logger(service="telemetry-test", logger_handler=logging.StreamHandler(output))
    telemetry = PowertoolsTelemetry(logger, Metrics(namespace="callkit", service="telemetry-test"))
    PowertoolsTelemetry(logger, Metrics(namespace="callkit", service="telemetry-test"))  # one filter still

    async def scenario() -> None:
        telemetry.info("before any call")
        started = asyncio.Barrier(2)
        await asyncio.gather(call(telemetry, "CA1", started), call(telemetry, "CA2", started))

    run_fresh(scenario())
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    assert "call_id" not in lines[0] and "correlation_id" not in lines[0]
    for call_id in ("CA1", "CA2"):
        mine = [line for line in lines[1:] if line.get("call_id") == call_id]
        assert [line["message"] for line in mine] == ["call step", "sub-task step", "call step"]
        assert all(line["correlation_id"] == call_id for line in mine)
    assert len(lines) == 7
    assert "call_id" not in logger.get_current_keys(), "nothing logger-wide"


def test_powertools_measure_is_a_milliseconds_metric() -> None:
    metrics = Metrics(namespace="callkit", service="telemetry-metrics")
    telemetry = PowertoolsTelemetry(Logger(service="telemetry-metrics"), metrics)
    telemetry.measure("TurnLatency", 240.0)
    telemetry.count("Turns")
    document = metrics.serialize_metric_set()
    metrics.clear_metrics()
    units = {m["Name"]: m["Unit"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"TurnLatency": "Milliseconds", "Turns": "Count"}
    assert document["TurnLatency"] == [240.0] or document["TurnLatency"] == 240.0
