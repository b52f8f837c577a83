"""The media server's ECS glue: draining on SIGTERM, task scale-in protection, the ActiveCalls metric.

How a Fargate task holding calls goes away without cutting them (docs/aws.md §6; template.yaml says the
same from the infrastructure side):

1. Service auto scaling and deployments never pick a task with scale-in protection.
   ``ScaleInProtection`` keeps it on while the task holds calls (refreshed before it expires, so a
   wedged process loses it within ``DEFAULT_EXPIRES_MINUTES``) and clears it when the task is idle.
2. When ECS does stop a task of a load-balanced service, it first deregisters it from the target
   group and waits for the ALB to drain it: open WebSockets stay up for as long as
   ``deregistration_delay`` (3600 s, the longest call) and only then does SIGTERM arrive.
3. On SIGTERM, ``DrainCoordinator.begin_drain()`` fails readiness, refuses new streams and waits for
   the calls left (normally none by then) until ``stopTimeout`` (120 s on Fargate at most) minus a
   margin, so the server can close what remains and exit before SIGKILL.

``ActiveCallsMetric`` writes the per-task ``ActiveCalls`` gauge as a CloudWatch embedded metric
format (EMF) line on stdout (``media_server/emf.py``); the awslogs driver ships it and CloudWatch
extracts the metric that the service's target-tracking policy follows (average calls per task).

Everything here is synchronous and pure except ``TaskScaling.run`` and ``begin_drain``; the clock,
``sleep``, the HTTP call and the output stream are injected, so tests run on virtual time.

Wiring, in the server::

    coordinator = DrainCoordinator.from_env()
    scaling = asyncio.create_task(TaskScaling.from_env(coordinator).run())   # at startup
    # each stream:   if not coordinator.admit(): refuse it; else ... finally coordinator.release()
    # GET /readyz:   200 if coordinator.ready else 503
    # on SIGTERM:    result = await coordinator.begin_drain(); close result.remaining_calls
    #                streams (if any), cancel ``scaling``, exit
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from callkit.errors import ServiceError
from media_server import emf

__all__ = [
    "DEFAULT_EXPIRES_MINUTES",
    "DEFAULT_STOP_TIMEOUT_SECONDS",
    "ENV_AGENT_URI",
    "ENV_CLUSTER_NAME",
    "ENV_DRAIN_MARGIN",
    "ENV_SERVICE_NAME",
    "ENV_STOP_TIMEOUT",
    "ActiveCallsMetric",
    "DrainCoordinator",
    "DrainResult",
    "DrainState",
    "HttpRequest",
    "ScaleInProtection",
    "TaskScaling",
    "urllib_http",
]

logger = logging.getLogger("callkit.media.scaling")

#: Set by the ECS agent in every container of a task (absent locally: protection is then a no-op).
ENV_AGENT_URI: Final = "ECS_AGENT_URI"
#: The metric's dimensions; template.yaml sets both to what the scaling policy's metric names.
ENV_SERVICE_NAME: Final = "CALLKIT_ECS_SERVICE_NAME"
ENV_CLUSTER_NAME: Final = "CALLKIT_ECS_CLUSTER_NAME"
#: The container's ``StopTimeout`` (template.yaml): seconds between SIGTERM and SIGKILL.
ENV_STOP_TIMEOUT: Final = "CALLKIT_STOP_TIMEOUT_SECONDS"
#: Seconds kept back from the stop timeout to close what remains and exit (default 15).
ENV_DRAIN_MARGIN: Final = "CALLKIT_DRAIN_MARGIN_SECONDS"

PROTECTION_PATH: Final = "/task-protection/v1/state"
#: The agent accepts 1 to 2880 minutes (48 h).
MIN_EXPIRES_MINUTES: Final = 1
MAX_EXPIRES_MINUTES: Final = 2880
#: Short on purpose: protection is refreshed while calls are active, so a hung process that stops
#: refreshing becomes eligible for scale-in within this time instead of the agent's default 2 h.
DEFAULT_EXPIRES_MINUTES: Final = 15
#: Refresh when less than this is left of the protection (capped at half the expiry).
DEFAULT_REFRESH_BEFORE_SECONDS: Final = 300.0

DEFAULT_STOP_TIMEOUT_SECONDS: Final = 120.0
#: Left of stopTimeout after the drain gives up: close the remaining streams, flush the logs, exit.
DEFAULT_DRAIN_MARGIN_SECONDS: Final = 15.0

METRIC_NAMESPACE: Final = emf.NAMESPACE
METRIC_NAME: Final = "ActiveCalls"
DEFAULT_METRIC_INTERVAL_SECONDS: Final = 60.0


class HttpRequest(Protocol):
    """One HTTP exchange: ``(method, url, body, headers, timeout) -> (status, response body)``.

    Raises ``OSError`` (``urllib.error.URLError`` is one) when no response arrives at all.
    """

    def __call__(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes]: ...


# No proxy for the agent (a link-local address): HTTP_PROXY in the task must not capture it.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urllib_http(
    method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, bytes]:
    """``HttpRequest`` over the standard library (blocking: run it in a thread from asyncio code)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:  # a status other than 2xx still has a body to read
        with exc:
            return exc.code, exc.read()


# --- Task scale-in protection --------------------------------------------------------------------


class ScaleInProtection:
    """Sets the task's scale-in protection through the ECS agent, only when it has to.

    ``set(True, n)`` asks for protection unless it is known to be on with more than the refresh
    margin left; ``set(False)`` clears it unless it is known to be off. After a failed request the
    state is unknown and the next ``set`` asks again. Without ``ECS_AGENT_URI`` (a local run) every
    call is a no-op.

    The task role needs ``ecs:UpdateTaskProtection`` (the agent calls the ECS API with it); the
    endpoint works for tasks that belong to a service only (``TASK_NOT_VALID`` otherwise).
    """

    def __init__(
        self,
        agent_uri: str | None,
        http: HttpRequest = urllib_http,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_before_seconds: float = DEFAULT_REFRESH_BEFORE_SECONDS,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._url = f"{agent_uri.rstrip('/')}{PROTECTION_PATH}" if agent_uri else None
        self._http = http
        self._clock = clock
        self._refresh_before = refresh_before_seconds
        self._timeout = timeout_seconds
        self._protected: bool | None = None  # None: unknown (nothing asked yet, or the last ask failed)
        self._expires_at = 0.0  # clock time; a lower bound of the agent's own expiry

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, http: HttpRequest = urllib_http
    ) -> ScaleInProtection:
        env = os.environ if environ is None else environ
        return cls(env.get(ENV_AGENT_URI) or None, http)

    @property
    def available(self) -> bool:
        """Whether there is an ECS agent to ask (false in local runs)."""
        return self._url is not None

    @property
    def protected(self) -> bool | None:
        """The state the agent last confirmed; ``None`` when unknown."""
        return self._protected

    def due(self, protected: bool, expires_minutes: int = DEFAULT_EXPIRES_MINUTES) -> bool:
        """Whether ``set(protected, expires_minutes)`` would send a request now."""
        if self._url is None:
            return False
        if self._protected is None or self._protected != protected:
            return True
        if not protected:
            return False
        refresh_before = min(self._refresh_before, expires_minutes * 60 / 2)
        return self._clock() >= self._expires_at - refresh_before

    def set(self, protected: bool, expires_minutes: int = DEFAULT_EXPIRES_MINUTES) -> bool:
        """Bring the protection to ``protected``; True when a request was sent (and succeeded).

        Raises ``ServiceError`` when the agent is unreachable or refuses (``retryable`` for
        timeouts, throttling and server errors); the state is then unknown.
        """
        if not MIN_EXPIRES_MINUTES <= expires_minutes <= MAX_EXPIRES_MINUTES:
            raise ValueError(f"expires_minutes must be {MIN_EXPIRES_MINUTES}..{MAX_EXPIRES_MINUTES}")
        if self._url is None or not self.due(protected, expires_minutes):
            return False
        # ExpiresInMinutes only means something when enabling (the agent's default is 120 min).
        payload: dict[str, Any] = {"ProtectionEnabled": protected}
        if protected:
            payload["ExpiresInMinutes"] = expires_minutes
        asked_at = self._clock()
        self._protected = None
        try:
            status, body = self._http(
                "PUT",
                self._url,
                json.dumps(payload).encode(),
                {"Content-Type": "application/json"},
                self._timeout,
            )
        except OSError as exc:
            raise ServiceError(f"ECS agent unreachable for task protection: {exc}", retryable=True) from exc
        confirmed = _parse_protection_response(status, body)
        self._protected = confirmed
        # Counted from before the request: never later than the agent's own expiry.
        self._expires_at = asked_at + expires_minutes * 60 if confirmed else 0.0
        return True


#: Error codes of the agent's ``error`` answer that are worth retrying (see the endpoint's docs).
_RETRYABLE_CODES: Final = frozenset(
    {"RequestCanceled", "RequestTimeout", "RequestError", "ThrottlingException"}
)


def _parse_protection_response(status: int, body: bytes) -> bool:
    """The agent's answer: ``{"protection": {...}}``, ``{"failure": {...}}`` or ``{"error": {...}}``."""
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    protection = document.get("protection")
    if 200 <= status < 300 and isinstance(protection, dict):
        return bool(protection.get("ProtectionEnabled"))
    failure = document.get("failure")
    if isinstance(failure, dict):
        reason = failure.get("Reason") or "unknown reason"
        raise ServiceError(f"task protection failed: {reason}", retryable=False)
    error = document.get("error")
    if isinstance(error, dict):
        code = str(error.get("Code") or "UnknownError")
        message = error.get("Message")
        raise ServiceError(
            f"task protection error {code}" + (f": {message}" if message else ""),
            retryable=code in _RETRYABLE_CODES,
        )
    raise ServiceError(f"task protection: unexpected answer (HTTP {status})", retryable=status >= 500)


# --- The ActiveCalls metric ----------------------------------------------------------------------


class ActiveCallsMetric:
    """The task's active calls as one CloudWatch EMF line, on a timer (``emit``) and on change (``update``).

    Namespace ``callkit``, metric ``ActiveCalls`` (unit Count), dimensions ``ServiceName`` and
    ``ClusterName``: exactly what the target-tracking policy in template.yaml names, so its
    ``Average`` statistic is the mean number of calls per task. Disabled (writes nothing) when
    either dimension is unknown, as in local runs.
    """

    def __init__(
        self,
        *,
        service_name: str,
        cluster_name: str,
        write: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._service_name = service_name
        self._cluster_name = cluster_name
        self._write = write or emf.write_stdout
        self._clock = clock
        self._last: int | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, write: Callable[[str], object] | None = None
    ) -> ActiveCallsMetric:
        env = os.environ if environ is None else environ
        return cls(
            service_name=env.get(ENV_SERVICE_NAME, ""),
            cluster_name=env.get(ENV_CLUSTER_NAME, ""),
            write=write,
        )

    @property
    def enabled(self) -> bool:
        return bool(self._service_name and self._cluster_name)

    def record(self, active_calls: int) -> str:
        """The EMF document (one line of JSON) for this value now."""
        return emf.document(
            [(METRIC_NAME, "Count", active_calls)],
            dimensions={"ServiceName": self._service_name, "ClusterName": self._cluster_name},
            timestamp=self._clock(),
            namespace=METRIC_NAMESPACE,
        )

    def emit(self, active_calls: int) -> bool:
        """Write the value (the periodic sample); True when a line was written."""
        if active_calls < 0:
            raise ValueError("active_calls cannot be negative")
        if not self.enabled:
            return False
        self._write(self.record(active_calls))
        self._last = active_calls
        return True

    def update(self, active_calls: int) -> bool:
        """Write the value if it differs from the last one written."""
        if active_calls == self._last:
            return False
        return self.emit(active_calls)


# --- Draining ------------------------------------------------------------------------------------


class DrainState(enum.Enum):
    """serving (ready, taking calls) -> draining (SIGTERM: not ready, no new calls) -> drained."""

    SERVING = "serving"
    DRAINING = "draining"
    DRAINED = "drained"


_NEXT_STATE: Final = {DrainState.SERVING: DrainState.DRAINING, DrainState.DRAINING: DrainState.DRAINED}


@dataclass(frozen=True, slots=True)
class DrainResult:
    """How a drain ended: ``remaining_calls`` still active at the deadline (0 when all ended)."""

    remaining_calls: int
    elapsed_seconds: float

    @property
    def timed_out(self) -> bool:
        return self.remaining_calls > 0


#: Called with the active call count after every change of the count or of the state.
Listener = Callable[[int], None]


class DrainCoordinator:
    """Counts the task's calls and runs the drain.

    ``admit()`` before accepting a stream (False while draining: refuse it), ``release()`` when it
    ends. ``ready`` is what ``/readyz`` answers. ``begin_drain()`` (on SIGTERM) resolves when the
    calls reach zero or when ``stop_timeout_seconds - margin_seconds`` have passed; calling it
    again returns the same result.
    """

    def __init__(
        self,
        *,
        stop_timeout_seconds: float = DEFAULT_STOP_TIMEOUT_SECONDS,
        margin_seconds: float = DEFAULT_DRAIN_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if stop_timeout_seconds <= 0 or margin_seconds < 0:
            raise ValueError("stop_timeout_seconds must be positive and margin_seconds not negative")
        self._budget = max(0.0, stop_timeout_seconds - margin_seconds)
        self._clock = clock
        self._sleep = sleep
        self._state = DrainState.SERVING
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: list[Listener] = []
        self._drain: asyncio.Future[DrainResult] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> DrainCoordinator:
        env = os.environ if environ is None else environ

        def seconds(name: str, default: float) -> float:
            raw = env.get(name, "")
            try:
                return float(raw) if raw else default
            except ValueError as exc:
                raise ValueError(f"{name}={raw!r} must be a number of seconds") from exc

        kwargs.setdefault("margin_seconds", seconds(ENV_DRAIN_MARGIN, DEFAULT_DRAIN_MARGIN_SECONDS))
        return cls(stop_timeout_seconds=seconds(ENV_STOP_TIMEOUT, DEFAULT_STOP_TIMEOUT_SECONDS), **kwargs)

    @property
    def state(self) -> DrainState:
        return self._state

    @property
    def ready(self) -> bool:
        """Taking calls: ``/readyz`` answers 200, else 503."""
        return self._state is DrainState.SERVING

    @property
    def active_calls(self) -> int:
        return self._active

    @property
    def budget_seconds(self) -> float:
        """How long a drain waits for calls: stopTimeout minus the margin."""
        return self._budget

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def admit(self) -> bool:
        """Count a new call in; False (count unchanged) when the task is no longer taking calls."""
        if self._state is not DrainState.SERVING:
            return False
        self._active += 1
        self._idle.clear()
        self._notify()
        return True

    def release(self) -> None:
        """Count an admitted call out (it ended, or the server closed it)."""
        if self._active == 0:
            raise RuntimeError("release() without a matching admit()")
        self._active -= 1
        if self._active == 0:
            self._idle.set()
        self._notify()

    async def begin_drain(self) -> DrainResult:
        """Stop taking calls and wait for the active ones, at most ``budget_seconds``."""
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._run_drain())
        return await asyncio.shield(self._drain)

    async def _run_drain(self) -> DrainResult:
        started = self._clock()
        self._transition(DrainState.DRAINING)
        logger.info("draining: %d active calls, up to %.0f s", self._active, self._budget)
        if self._active:
            idle = asyncio.ensure_future(self._idle.wait())
            deadline = asyncio.ensure_future(self._sleep(self._budget))
            try:
                await asyncio.wait({idle, deadline}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (idle, deadline):
                    waiter.cancel()
        result = DrainResult(remaining_calls=self._active, elapsed_seconds=self._clock() - started)
        self._transition(DrainState.DRAINED)
        log = logger.warning if result.timed_out else logger.info
        log("drained after %.1f s, %d calls still active", result.elapsed_seconds, result.remaining_calls)
        return result

    def _transition(self, target: DrainState) -> None:
        if _NEXT_STATE.get(self._state) is not target:
            raise RuntimeError(f"drain state cannot go from {self._state.value} to {target.value}")
        self._state = target
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self._active)


# --- Glue ----------------------------------------------------------------------------------------


class TaskScaling:
    """Keeps the metric and the protection in step with a ``DrainCoordinator``.

    On every change of the call count: the metric line (if the value changed) and protection on
    while calls are active, off when idle. Every ``interval_seconds``: the metric line again (the
    target-tracking alarms need a data point per minute) and a protection refresh when due. The
    blocking PUT to the agent runs in a thread, one at a time, always towards the latest count.
    Run it as a task for the life of the server; cancel it on shutdown.
    """

    def __init__(
        self,
        coordinator: DrainCoordinator,
        metric: ActiveCallsMetric,
        protection: ScaleInProtection,
        *,
        interval_seconds: float = DEFAULT_METRIC_INTERVAL_SECONDS,
        expires_minutes: int = DEFAULT_EXPIRES_MINUTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        run_blocking: Callable[..., Awaitable[Any]] = asyncio.to_thread,
    ) -> None:
        self._coordinator = coordinator
        self._metric = metric
        self._protection = protection
        self._interval = interval_seconds
        self._expires_minutes = expires_minutes
        self._clock = clock
        self._sleep = sleep
        self._run_blocking = run_blocking
        self._wake = asyncio.Event()
        self._subscribed = False

    @classmethod
    def from_env(cls, coordinator: DrainCoordinator, environ: Mapping[str, str] | None = None) -> TaskScaling:
        """The metric's dimensions and the agent from the environment template.yaml sets."""
        return cls(coordinator, ActiveCallsMetric.from_env(environ), ScaleInProtection.from_env(environ))

    def _changed(self, active_calls: int) -> None:
        self._metric.update(active_calls)
        self._wake.set()

    async def _reconcile(self) -> None:
        sent: bool | None = None
        while True:
            # The count may change while a request is in flight: go again towards the latest one,
            # but never twice towards the same state (an agent that does not confirm it would
            # otherwise be asked in a loop; the next change or tick asks again).
            desired = self._coordinator.active_calls > 0
            if desired == sent or not self._protection.due(desired, self._expires_minutes):
                return
            try:
                await self._run_blocking(self._protection.set, desired, self._expires_minutes)
            except ServiceError as exc:
                # Retried at the next change or tick; meanwhile the ALB's deregistration delay
                # still keeps this task's calls up through a scale-in (see the module docstring).
                logger.warning("scale-in protection not updated (%s): %s", "on" if desired else "off", exc)
                return
            sent = desired

    async def run(self) -> None:
        if not self._subscribed:
            self._coordinator.subscribe(self._changed)
            self._subscribed = True
        next_tick = self._clock()
        while True:
            now = self._clock()
            if now >= next_tick:
                self._metric.emit(self._coordinator.active_calls)
                while next_tick <= now:  # one line per tick, none to catch up after a stall
                    next_tick += self._interval
            self._wake.clear()
            await self._reconcile()
            if self._wake.is_set():
                continue
            wake = asyncio.ensure_future(self._wake.wait())
            timer = asyncio.ensure_future(self._sleep(max(0.0, next_tick - self._clock())))
            try:
                await asyncio.wait({wake, timer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (wake, timer):
                    waiter.cancel()
