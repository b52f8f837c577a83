"""The media server's JSON log lines and its EMF counters and latencies."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from callkit.telemetry import StdlibTelemetry, bind_call
from media_server.scaling import ENV_CLUSTER_NAME, ENV_SERVICE_NAME
from media_server.telemetry import JsonFormatter, MediaTelemetry, configure_logging


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The root logger as the media server sets it up, writing into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("info", buffer)
    yield buffer
    root.handlers[:], level = saved
    root.setLevel(level)


def run_fresh[T](scenario: Coroutine[Any, Any, T]) -> T:
    """Run ``scenario`` in an empty context: no call bound by an earlier test in this thread."""
    return contextvars.Context().run(asyncio.run, scenario)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# --- JSON lines ----------------------------------------------------------------------------------


def test_a_line_has_the_base_keys_the_call_and_the_fields(output: io.StringIO) -> None:
    telemetry = StdlibTelemetry()

    async def a_call() -> None:
        telemetry.bind_call("CA1")
        telemetry.info("media stream admitted", provider="twilio", pipeline="cascading", level="ignored")
        logging.getLogger("callkit.conversation").warning("tool %s failed", "lookup")

    async def scenario() -> None:
        telemetry.info("outside any call")
        await asyncio.create_task(a_call())
        logging.getLogger("callkit").debug("below LOG_LEVEL")

    run_fresh(scenario())
    first, admitted, other = lines(output)
    assert set(first) == {"timestamp", "level", "logger", "message"}
    assert first["timestamp"].endswith("+00:00") and "T" in first["timestamp"]
    assert admitted == {
        "timestamp": admitted["timestamp"],
        "level": "INFO",
        "logger": "callkit",
        "message": "media stream admitted",
        "call_id": "CA1",
        "provider": "twilio",
        "pipeline": "cascading",
    }
    assert other["call_id"] == "CA1", "another module's line during the call names it too"
    assert (other["logger"], other["level"], other["message"]) == (
        "callkit.conversation",
        "WARNING",
        "tool lookup failed",
    )


def test_exception_info_is_part_of_the_line(output: io.StringIO) -> None:
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        StdlibTelemetry().error("speech synthesis failed", exc_info=True)
    StdlibTelemetry().error("no exception here", exc_info=True)
    failed, plain = lines(output)
    assert failed["exception_name"] == "ConnectionResetError"
    assert "Traceback" in failed["exception"] and "peer went away" in failed["exception"]
    assert "exception" not in plain
    assert len(output.getvalue().splitlines()) == 2, "a traceback stays inside its line"


def test_formatter_prefers_the_records_own_call_id() -> None:
    record = logging.LogRecord("callkit", logging.INFO, __file__, 1, "hello", None, None)
    record.call_id = "CA9"
    formatted = run_fresh(_format_in_call(record, "CA1"))
    assert json.loads(formatted)["call_id"] == "CA9"


async def _format_in_call(record: logging.LogRecord, call_id: str) -> str:
    bind_call(call_id)
    return JsonFormatter().format(record)


# --- EMF -----------------------------------------------------------------------------------------


def telemetry(written: list[str]) -> MediaTelemetry:
    return MediaTelemetry(
        service_name="callkit-media",
        cluster_name="callkit-MediaCluster-abc",
        write=written.append,
        clock=lambda: 1_767_225_600.5,
    )


def test_counts_are_summed_per_name_into_one_emf_line() -> None:
    written: list[str] = []
    metrics = telemetry(written)
    for name in ("BargeIns", "StreamsAdmitted", "BargeIns", "ProviderFailures", "StreamsRefused"):
        metrics.count(name)
    metrics.count("Turns", 5)
    metrics.measure("TurnLatency", 212.5)
    metrics.measure("TurnLatency", 180.0)
    assert metrics.flush() == 1
    (line,) = written
    document = json.loads(line)
    assert document["_aws"]["Timestamp"] == 1_767_225_600_500
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "callkit"
    assert directive["Dimensions"] == [["ServiceName", "ClusterName"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "BargeIns": "Count",
        "ProviderFailures": "Count",
        "StreamsAdmitted": "Count",
        "StreamsRefused": "Count",
        "Turns": "Count",
        "TurnLatency": "Milliseconds",
    }
    assert (document["ServiceName"], document["ClusterName"]) == ("callkit-media", "callkit-MediaCluster-abc")
    assert document["BargeIns"] == 2 and document["Turns"] == 5 and document["StreamsRefused"] == 1
    assert document["TurnLatency"] == [212.5, 180.0]


def test_a_flush_starts_a_new_window_and_an_empty_one_writes_nothing() -> None:
    written: list[str] = []
    metrics = telemetry(written)
    metrics.count("Transfers")
    assert metrics.flush() == 1
    assert metrics.flush() == 0
    metrics.count("Transfers", 2)
    metrics.flush()
    assert [json.loads(line)["Transfers"] for line in written] == [1, 2]


def test_more_than_100_samples_go_out_in_several_documents() -> None:
    written: list[str] = []
    metrics = telemetry(written)
    for value in range(250):
        metrics.measure("TurnLatency", float(value))
    metrics.count("Turns", 250)
    assert metrics.flush() == 3
    documents = [json.loads(line) for line in written]
    assert [len(d["TurnLatency"]) for d in documents] == [100, 100, 50]
    assert [v for d in documents for v in d["TurnLatency"]] == [float(v) for v in range(250)]
    assert [d.get("Turns") for d in documents] == [250, None, None], "counts once"
    for document in documents:
        names = [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        assert all(name in document for name in names)


def test_without_its_dimensions_it_writes_nothing() -> None:
    written: list[str] = []
    metrics = MediaTelemetry.from_env({ENV_SERVICE_NAME: "only-service"}, write=written.append)
    assert not metrics.enabled
    metrics.count("BargeIns")
    assert metrics.flush() == 0 and written == []
    assert MediaTelemetry.from_env({ENV_SERVICE_NAME: "s", ENV_CLUSTER_NAME: "c"}).enabled


def test_publish_flushes_every_interval_until_cancelled() -> None:
    written: list[str] = []
    metrics = telemetry(written)
    slept: list[float] = []
    ticks: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        tick: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await ticks.put(tick)
        await tick

    async def scenario() -> None:
        publisher = asyncio.create_task(metrics.publish(60.0, sleep=sleep))
        for minute in range(3):
            tick = await ticks.get()  # the publisher sleeps
            metrics.count("Turns", minute + 1)
            tick.set_result(None)
        await ticks.get()  # the fourth sleep: three flushes done
        publisher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publisher

    run_fresh(scenario())
    assert slept == [60.0] * 4
    assert [json.loads(line)["Turns"] for line in written] == [1, 2, 3]
