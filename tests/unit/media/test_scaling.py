"""The media server's ECS glue: scale-in protection, the ActiveCalls EMF line, draining.

The ECS agent is a loopback ``http.server`` that answers like the real task-protection endpoint
(docs/aws.md §6), so the PUTs go over a socket through the default ``urllib`` transport. Time is
virtual: ``VirtualTime`` hands out the clock and the ``sleep`` the code under test awaits.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from callkit.errors import ServiceError
from media_server.scaling import (
    ENV_AGENT_URI,
    ENV_CLUSTER_NAME,
    ENV_SERVICE_NAME,
    ENV_STOP_TIMEOUT,
    ActiveCallsMetric,
    DrainCoordinator,
    DrainState,
    ScaleInProtection,
    TaskScaling,
)

TASK_ARN = "arn:aws:ecs:us-east-1:111122223333:task/callkit-media/0123456789abcdef0"


class VirtualTime:
    """A monotonic clock and an ``asyncio``-compatible ``sleep`` that move only on ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, self._order, future))
        self._order += 1
        await future

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
            await settle()
        self.now = target
        await settle()


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(20):
        await asyncio.sleep(0)


# --- A fake ECS agent on loopback ---------------------------------------------------------------


@dataclass
class FakeAgent:
    """Answers ``/task-protection/v1/state`` like the ECS agent; records what it was sent."""

    url: str
    requests: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    #: Queued (status, document) answers; empty: confirm what was asked.
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    received: threading.Condition = field(default_factory=threading.Condition)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [body for _, _, _, body in self.requests]

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Block until ``count`` requests have arrived (the client runs in another thread)."""
        with self.received:
            assert self.received.wait_for(lambda: len(self.requests) >= count, timeout), self.requests


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    state = FakeAgent(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw)
            with state.received:
                state.requests.append((self.command, self.path, self.headers.get("Content-Type", ""), body))
                state.received.notify_all()
            if state.answers:
                status, document = state.answers.pop(0)
            else:
                enabled = body["ProtectionEnabled"]
                status = 200
                document = {
                    "protection": {
                        "ExpirationDate": "2026-01-01T01:00:00Z" if enabled else None,
                        "ProtectionEnabled": enabled,
                        "TaskArn": TASK_ARN,
                    }
                }
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    # ECS_AGENT_URI has a path of its own (http://169.254.170.2/api/<container id>).
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/0123456789abcdef0-1234567890"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- ScaleInProtection --------------------------------------------------------------------------


def test_protection_puts_the_agent_document_only_when_the_state_changes(agent: FakeAgent) -> None:
    protection = ScaleInProtection(agent.url, clock=Clock())
    assert protection.available and protection.protected is None

    assert protection.set(True, 15) is True
    assert protection.set(True, 15) is False, "already on with time left: no request"
    assert protection.protected is True
    assert protection.set(False) is True
    assert protection.set(False) is False
    assert protection.protected is False

    assert [(method, path, ctype) for method, path, ctype, _ in agent.requests] == [
        ("PUT", "/api/0123456789abcdef0-1234567890/task-protection/v1/state", "application/json")
    ] * 2
    # ExpiresInMinutes only with ProtectionEnabled true (it means nothing when clearing).
    assert agent.bodies == [{"ProtectionEnabled": True, "ExpiresInMinutes": 15}, {"ProtectionEnabled": False}]


def test_protection_is_refreshed_before_it_expires(agent: FakeAgent) -> None:
    clock = Clock()
    protection = ScaleInProtection(agent.url, clock=clock, refresh_before_seconds=300)
    protection.set(True, 15)
    clock.now += 9 * 60 + 59  # 5 min 1 s left
    assert protection.set(True, 15) is False
    clock.now += 1  # 5 min left
    assert protection.due(True, 15)
    assert protection.set(True, 15) is True
    clock.now += 9 * 60
    assert protection.set(True, 15) is False
    assert len(agent.requests) == 2


def test_refresh_margin_is_capped_at_half_the_expiry(agent: FakeAgent) -> None:
    clock = Clock()
    protection = ScaleInProtection(agent.url, clock=clock, refresh_before_seconds=3600)
    protection.set(True, 2)
    clock.now += 59
    assert protection.set(True, 2) is False
    clock.now += 1
    assert protection.set(True, 2) is True


def test_a_failure_leaves_the_state_unknown_and_the_next_call_retries(agent: FakeAgent) -> None:
    protection = ScaleInProtection(agent.url, clock=Clock())
    agent.answers.append((400, {"failure": {"Arn": TASK_ARN, "Detail": None, "Reason": "TASK_NOT_VALID"}}))
    with pytest.raises(ServiceError, match="TASK_NOT_VALID") as caught:
        protection.set(True)
    assert caught.value.retryable is False
    assert protection.protected is None
    assert protection.set(True) is True
    assert protection.protected is True
    assert len(agent.requests) == 2


@pytest.mark.parametrize(
    ("code", "retryable"),
    [("ThrottlingException", True), ("RequestCanceled", True), ("AccessDeniedException", False)],
)
def test_agent_errors_say_whether_to_retry(agent: FakeAgent, code: str, retryable: bool) -> None:
    protection = ScaleInProtection(agent.url)
    agent.answers.append(
        (500, {"requestID": "r-1", "error": {"Arn": TASK_ARN, "Code": code, "Message": "no"}})
    )
    with pytest.raises(ServiceError, match=code) as caught:
        protection.set(True)
    assert caught.value.retryable is retryable


def test_unexpected_answers_and_an_unreachable_agent_are_service_errors(agent: FakeAgent) -> None:
    protection = ScaleInProtection(agent.url)
    agent.answers.append((200, {"something": "else"}))
    with pytest.raises(ServiceError, match="unexpected answer"):
        protection.set(True)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = ScaleInProtection(f"http://127.0.0.1:{port}/api/x", timeout_seconds=2)
    with pytest.raises(ServiceError, match="unreachable") as caught:
        unreachable.set(True)
    assert caught.value.retryable is True
    assert unreachable.protected is None


def test_without_an_agent_protection_is_a_no_op() -> None:
    def http(
        method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        raise AssertionError("no request without ECS_AGENT_URI")

    local = ScaleInProtection.from_env({}, http=http)
    assert not local.available
    assert local.set(True) is False
    assert local.due(True) is False
    assert ScaleInProtection.from_env({ENV_AGENT_URI: "http://169.254.170.2/api/x"}).available


def test_expiry_must_be_what_the_agent_accepts() -> None:
    protection = ScaleInProtection(None)
    for minutes in (0, 2881):
        with pytest.raises(ValueError, match="expires_minutes"):
            protection.set(True, minutes)


# --- ActiveCallsMetric --------------------------------------------------------------------------


def test_metric_line_is_cloudwatch_emf_with_the_policy_dimensions() -> None:
    lines: list[str] = []
    metric = ActiveCallsMetric(
        service_name="callkit-media",
        cluster_name="callkit-MediaCluster-abc",
        write=lines.append,
        clock=lambda: 1_767_225_600.123,
    )
    assert metric.emit(3) is True
    (line,) = lines
    assert "\n" not in line
    document = json.loads(line)
    assert document == {
        "_aws": {
            "Timestamp": 1_767_225_600_123,
            "CloudWatchMetrics": [
                {
                    "Namespace": "callkit",
                    "Dimensions": [["ServiceName", "ClusterName"]],
                    "Metrics": [{"Name": "ActiveCalls", "Unit": "Count"}],
                }
            ],
        },
        "ServiceName": "callkit-media",
        "ClusterName": "callkit-MediaCluster-abc",
        "ActiveCalls": 3,
    }


def test_metric_update_writes_only_changes_and_emit_always_writes() -> None:
    lines: list[str] = []
    metric = ActiveCallsMetric(service_name="s", cluster_name="c", write=lines.append, clock=lambda: 0.0)
    assert metric.update(0) is True
    assert metric.update(0) is False
    assert metric.update(1) is True
    assert metric.emit(1) is True
    assert [json.loads(line)["ActiveCalls"] for line in lines] == [0, 1, 1]
    with pytest.raises(ValueError, match="negative"):
        metric.emit(-1)


def test_metric_dimensions_come_from_the_environment() -> None:
    lines: list[str] = []
    metric = ActiveCallsMetric.from_env({ENV_SERVICE_NAME: "svc", ENV_CLUSTER_NAME: "cl"}, write=lines.append)
    assert metric.enabled and metric.emit(0)
    assert {k: v for k, v in json.loads(lines[0]).items() if k != "_aws"} == {
        "ServiceName": "svc",
        "ClusterName": "cl",
        "ActiveCalls": 0,
    }


def test_metric_is_silent_without_its_dimensions() -> None:
    lines: list[str] = []
    metric = ActiveCallsMetric.from_env({ENV_SERVICE_NAME: "only-service"}, write=lines.append)
    assert not metric.enabled
    assert metric.emit(2) is False
    assert metric.update(3) is False
    assert lines == []


def test_metric_writes_whole_lines_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ActiveCallsMetric(service_name="s", cluster_name="c").emit(4)
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1
    assert json.loads(out)["ActiveCalls"] == 4


# --- DrainCoordinator ---------------------------------------------------------------------------


def test_admit_and_release_count_calls_and_notify() -> None:
    seen: list[int] = []
    coordinator = DrainCoordinator()
    coordinator.subscribe(seen.append)
    assert coordinator.ready and coordinator.state is DrainState.SERVING
    assert coordinator.admit() and coordinator.admit()
    coordinator.release()
    assert coordinator.active_calls == 1
    assert seen == [1, 2, 1]
    coordinator.release()
    with pytest.raises(RuntimeError, match="without a matching admit"):
        coordinator.release()


def test_drain_with_no_calls_finishes_at_once() -> None:
    async def main() -> None:
        time = VirtualTime()
        coordinator = DrainCoordinator(clock=time.clock, sleep=time.sleep)
        result = await coordinator.begin_drain()
        assert (result.remaining_calls, result.elapsed_seconds, result.timed_out) == (0, 0.0, False)
        assert coordinator.state is DrainState.DRAINED and not coordinator.ready

    asyncio.run(main())


def test_drain_refuses_new_calls_and_ends_when_the_last_call_does() -> None:
    async def main() -> None:
        time = VirtualTime()
        states: list[tuple[DrainState, int]] = []
        coordinator = DrainCoordinator(
            stop_timeout_seconds=120, margin_seconds=15, clock=time.clock, sleep=time.sleep
        )
        coordinator.subscribe(lambda active: states.append((coordinator.state, active)))
        assert coordinator.budget_seconds == 105
        coordinator.admit()
        coordinator.admit()

        drain = asyncio.create_task(coordinator.begin_drain())
        await settle()
        assert coordinator.state is DrainState.DRAINING
        assert not coordinator.ready, "readiness fails as soon as the drain starts"
        assert coordinator.admit() is False, "no new calls while draining"
        assert coordinator.active_calls == 2

        await time.advance(30)
        coordinator.release()
        await time.advance(10)
        assert not drain.done()
        coordinator.release()
        await settle()
        result = drain.result()
        assert (result.remaining_calls, result.elapsed_seconds, result.timed_out) == (0, 40.0, False)
        assert states == [
            (DrainState.SERVING, 1),
            (DrainState.SERVING, 2),
            (DrainState.DRAINING, 2),
            (DrainState.DRAINING, 1),
            (DrainState.DRAINING, 0),
            (DrainState.DRAINED, 0),
        ]

    asyncio.run(main())


def test_drain_gives_up_at_stop_timeout_minus_the_margin_and_reports_the_calls_left() -> None:
    async def main() -> None:
        time = VirtualTime()
        coordinator = DrainCoordinator.from_env(
            {ENV_STOP_TIMEOUT: "60"}, margin_seconds=10, clock=time.clock, sleep=time.sleep
        )
        for _ in range(3):
            coordinator.admit()
        drain = asyncio.create_task(coordinator.begin_drain())
        await time.advance(49.9)
        assert not drain.done()
        await time.advance(0.1)
        result = drain.result()
        assert (result.remaining_calls, result.elapsed_seconds, result.timed_out) == (3, 50.0, True)
        assert coordinator.state is DrainState.DRAINED
        # The server then closes what is left; releases still count down after the drain.
        for _ in range(3):
            coordinator.release()
        assert coordinator.active_calls == 0
        # A second SIGTERM gets the same answer, without a second drain.
        assert await coordinator.begin_drain() is result

    asyncio.run(main())


def test_stop_timeout_from_env_must_be_a_number() -> None:
    with pytest.raises(ValueError, match=ENV_STOP_TIMEOUT):
        DrainCoordinator.from_env({ENV_STOP_TIMEOUT: "two minutes"})
    assert DrainCoordinator.from_env({}).budget_seconds == 105


# --- TaskScaling: the three together -------------------------------------------------------------


class FakeHttp:
    """The agent's protocol in-process, for virtual-time tests (the socket is tested above)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_next = 0

    def __call__(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]:
        document = json.loads(body)
        self.bodies.append(document)
        if self.fail_next:
            self.fail_next -= 1
            return 500, b'{"error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}'
        enabled = document["ProtectionEnabled"]
        return 200, json.dumps({"protection": {"ProtectionEnabled": enabled, "TaskArn": TASK_ARN}}).encode()


async def inline(function: Any, *args: Any) -> Any:
    return function(*args)


def test_task_scaling_follows_the_calls_and_ticks_every_minute() -> None:
    async def main() -> None:
        time = VirtualTime()
        http = FakeHttp()
        lines: list[int] = []
        coordinator = DrainCoordinator(clock=time.clock, sleep=time.sleep)
        metric = ActiveCallsMetric(
            service_name="s",
            cluster_name="c",
            write=lambda line: lines.append(json.loads(line)["ActiveCalls"]),
        )
        protection = ScaleInProtection("http://agent/api/x", http, clock=time.clock)
        scaling = TaskScaling(
            coordinator, metric, protection, clock=time.clock, sleep=time.sleep, run_blocking=inline
        )
        runner = asyncio.create_task(scaling.run())
        await settle()
        assert lines == [0], "a first sample at start"
        assert http.bodies == [{"ProtectionEnabled": False}], "a known state at start"

        coordinator.admit()
        await settle()
        assert lines == [0, 1]
        assert http.bodies[-1] == {"ProtectionEnabled": True, "ExpiresInMinutes": 15}
        coordinator.admit()
        await settle()
        assert lines == [0, 1, 2]
        assert len(http.bodies) == 2, "already protected: no request"

        await time.advance(60)
        assert lines == [0, 1, 2, 2], "the periodic sample"
        await time.advance(9 * 60)  # 10 minutes in: 5 left of the 15, time to refresh
        assert lines[-1] == 2 and len(lines) == 13
        assert http.bodies[-1] == {"ProtectionEnabled": True, "ExpiresInMinutes": 15}
        assert len(http.bodies) == 3

        coordinator.release()
        coordinator.release()
        await settle()
        assert lines[-2:] == [1, 0]
        assert http.bodies[-1] == {"ProtectionEnabled": False}
        assert len(http.bodies) == 4

        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())


def test_task_scaling_retries_a_failed_protection_at_the_next_tick(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        time = VirtualTime()
        http = FakeHttp()
        coordinator = DrainCoordinator(clock=time.clock, sleep=time.sleep)
        metric = ActiveCallsMetric(service_name="", cluster_name="")
        protection = ScaleInProtection("http://agent/api/x", http, clock=time.clock)
        scaling = TaskScaling(
            coordinator, metric, protection, clock=time.clock, sleep=time.sleep, run_blocking=inline
        )
        runner = asyncio.create_task(scaling.run())
        await settle()
        http.fail_next = 1
        coordinator.admit()
        await settle()
        assert http.bodies[-1]["ProtectionEnabled"] is True
        assert protection.protected is None
        assert "scale-in protection not updated (on)" in caplog.text
        await time.advance(60)
        assert protection.protected is True
        assert len(http.bodies) == 3
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    asyncio.run(main())


def test_task_scaling_in_threads_against_the_loopback_agent(
    agent: FakeAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the environment, on the default ``asyncio.to_thread`` path with real sockets: on, then off."""

    async def main() -> None:
        coordinator = DrainCoordinator()
        scaling = TaskScaling.from_env(
            coordinator, {ENV_AGENT_URI: agent.url, ENV_SERVICE_NAME: "svc", ENV_CLUSTER_NAME: "cl"}
        )
        runner = asyncio.create_task(scaling.run())

        await asyncio.to_thread(agent.wait_for, 1)
        coordinator.admit()
        await asyncio.to_thread(agent.wait_for, 2)
        coordinator.release()
        await asyncio.to_thread(agent.wait_for, 3)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert [body["ProtectionEnabled"] for body in agent.bodies] == [False, True, False]

    asyncio.run(main())
    samples = [json.loads(line)["ActiveCalls"] for line in capsys.readouterr().out.splitlines()]
    assert samples == [0, 1, 0]


def test_the_drain_margin_comes_from_the_environment_too() -> None:
    from media_server.scaling import DrainCoordinator

    coordinator = DrainCoordinator.from_env(
        {"CALLKIT_STOP_TIMEOUT_SECONDS": "20", "CALLKIT_DRAIN_MARGIN_SECONDS": "5"}
    )
    assert coordinator.budget_seconds == 15.0
    with pytest.raises(ValueError, match="CALLKIT_DRAIN_MARGIN_SECONDS"):
        DrainCoordinator.from_env({"CALLKIT_DRAIN_MARGIN_SECONDS": "soon"})
