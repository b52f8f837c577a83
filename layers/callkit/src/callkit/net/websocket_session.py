"""One provider WebSocket per call: the policy written once, the vendor writing only its protocol (STYLE 5).

The base owns, for every streaming provider (Deepgram, Cartesia, OpenAI Realtime, a next one):

- the connect, with a timeout and the vendor's URL and headers, retried with jittered backoff
  (``SocketPolicy.retry``, a ``callkit.net.RetryPolicy``) while the failure is ``retryable``; a
  refusal (401, 403, most 4xx) is never retried;
- one reader task per socket, a keep-alive task while nothing else is sent, and a clean shutdown:
  no task outlives ``_close()``;
- after a drop, either a bounded reconnect in the background (``max_reconnects``), outbound frames
  held meanwhile (``hold_bytes``, oldest dropped first, counted) and sent in order once the new
  socket is up; or, with ``reopen_on_demand``, nothing: the vendor opens a new socket when it next
  needs one (a TTS between replies);
- a failure for good becomes one ``ServiceError`` (``retryable`` as it is), handed to the vendor's
  ``_on_failed`` once; counters in ``stats`` and every state change to an optional ``listener``.

A vendor subclass supplies the protocol: ``url()`` and ``headers()``; ``_on_message`` (its
sans-I/O parser, delivering what it parsed; a ``ProtocolError`` gives the socket up);
``_keep_alive_frame``; ``_close_error`` (what a close by the server means) and ``_refusal`` (what
a refused handshake means); ``_handshake`` (a first exchange on every new socket); ``_on_lost``
(what a lost socket fails: Cartesia's replies in flight; Deepgram's stream goes on) and
``_on_failed``. Its public API calls ``_open``, ``_send`` and ``_close``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from callkit.errors import ConfigurationError, ProtocolError, ServiceError
from callkit.net.retry import RetryPolicy, retry_after

__all__ = ["CONNECT_RETRY", "Inbox", "SessionState", "SocketPolicy", "SocketStats", "WebSocketSession"]

log = logging.getLogger(__name__)

SessionState = Literal["idle", "connecting", "open", "reconnecting", "down", "closing", "closed", "failed"]
"""``down``: the socket was lost and ``reopen_on_demand`` waits for the next ``_open``."""

_CLOSE_PROTOCOL_ERROR: Final = 1002
#: A (re)connect on a call: a few quick tries (a refused or reset TCP connection, a 503), never one
#: that starts after a slow attempt has already kept the caller waiting for seconds.
CONNECT_RETRY: Final = RetryPolicy(
    max_attempts=3, deadline=6.0, attempt_allowance=0.5, backoff_base=0.2, backoff_max=1.0
)


@dataclass(frozen=True, slots=True)
class SocketPolicy:
    """How hard a session tries. ``retry`` bounds each (re)connect in attempts and seconds.

    ``max_reconnects`` is how many drops a session repairs in its life (0: a drop is final unless
    ``reopen_on_demand``). ``hold_bytes`` of outbound frames wait while it reconnects (the time is
    bounded by ``retry.deadline``). ``keepalive_interval``: the vendor's keep-alive frame after
    that long with nothing sent (``None``: none). WebSocket pings find a silently dead socket
    within ``ping_interval + ping_timeout`` s.
    """

    connect_timeout: float = 5.0
    close_timeout: float = 2.0
    retry: RetryPolicy = CONNECT_RETRY
    max_reconnects: int = 0
    reopen_on_demand: bool = False
    hold_bytes: int = 0
    keepalive_interval: float | None = None
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    max_message_bytes: int = 1 << 20


@dataclass(slots=True)
class SocketStats:
    """Counters for metrics, over every socket of the session. ``dropped_*`` never left us."""

    connects: int = 0
    connect_retries: int = 0
    reconnects: int = 0
    messages: int = 0  # frames received
    frames_sent: int = 0
    bytes_sent: int = 0
    keepalives_sent: int = 0
    held_frames: int = 0
    dropped_frames: int = 0
    dropped_bytes: int = 0


class _End:
    """Queued once when no more items will come."""


_END: Final = _End()


class Inbox[T]:
    """What a session received for its one consumer: items, then the end, or the error that ended it.

    The error is raised once; every later read ends quietly.
    """

    __slots__ = ("_ended", "_queue")

    def __init__(self) -> None:
        self._queue: asyncio.Queue[T | ServiceError | _End] = asyncio.Queue()
        self._ended = False

    def put(self, item: T) -> None:
        if not self._ended:
            self._queue.put_nowait(item)

    def fail(self, error: ServiceError) -> None:
        if not self._ended:
            self._queue.put_nowait(error)
        self.end()

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    def __aiter__(self) -> Inbox[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later read ends too
            raise StopAsyncIteration
        if isinstance(item, ServiceError):
            raise item
        return item


class WebSocketSession:
    """The policy half of a provider session; a vendor subclass writes the protocol half."""

    #: The vendor's name in errors and logs.
    name: str = "the provider"

    def __init__(
        self,
        policy: SocketPolicy,
        *,
        stats: SocketStats | None = None,
        listener: Callable[[SessionState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy
        self.stats = stats if stats is not None else SocketStats()
        self.failure: ServiceError | None = None  # what failed the session for good
        self._listener = listener
        self._clock = clock
        self._rand = rand
        self._state: SessionState = "idle"
        self._ws: ClientConnection | None = None
        self._epoch = 0  # sockets opened so far: which one a vendor object was bound to
        self._opening = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._held: deque[str | bytes] = deque()
        self._held_bytes = 0
        self._last_sent = 0.0
        self._closing = False
        self._closed = asyncio.Event()

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state == "open"

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def epoch(self) -> int:
        """The number of the current socket (1 for the first); changes with every new socket."""
        return self._epoch

    # --- the vendor's half ----------------------------------------------------------------------

    def url(self) -> str:
        raise NotImplementedError

    def headers(self) -> Mapping[str, str]:
        return {}

    def _on_message(self, message: str | bytes) -> None:
        """One frame from the server; raise ``ProtocolError`` to give the socket up."""
        raise NotImplementedError

    def _keep_alive_frame(self) -> str | bytes | None:
        return None

    def _close_error(self, code: int | None, reason: str) -> ServiceError | None:
        """What a close by the server means: ``None`` when the stream ended as asked."""
        detail = f"{code} {reason}".rstrip()
        return ServiceError(f"the {self.name} connection was lost (close code {detail})", retryable=True)

    def _refusal(self, status: int, headers: Mapping[str, str]) -> ServiceError:
        """The error for a refused handshake: retry a timeout, a rate limit or an outage only."""
        retryable = status in (408, 429) or status >= 500
        return ServiceError(f"{self.name} refused the connection: HTTP {status}", retryable=retryable)

    async def _handshake(self, ws: ClientConnection) -> None:
        """A first exchange on every new socket, before the reader starts; raise ``ServiceError``."""

    def _on_lost(self, error: ServiceError) -> None:
        """A socket was lost (a reconnect may follow): fail what cannot survive it."""

    def _on_failed(self, error: ServiceError) -> None:
        """The session failed for good (called once, never after ``_close``)."""

    # --- for the vendor's public API ------------------------------------------------------------

    async def _open(self) -> None:
        """Connect now unless open; raises ``ServiceError`` (``ConfigurationError`` for a bad URL)."""
        async with self._opening:
            if self._state == "open":
                return
            if self._closing or self._state == "failed":
                raise ServiceError(f"the {self.name} session is closed")
            self._set_state("connecting")
            try:
                ws = await self._connect()
            except BaseException:
                self._set_state("down" if self.policy.reopen_on_demand else "failed")
                raise
            if self.closed:  # _close() ran while we connected
                await ws.close()
                raise ServiceError(f"the {self.name} session is closed")
            self._attach(ws)
            self._set_state("open")

    async def _send(self, frame: str | bytes, *, hold: bool = True) -> None:
        """Send one frame, or hold it while reconnecting; raises ``ServiceError`` when it cannot.

        Waits only when the socket's write buffer is full (the network stalled; pings turn that
        into a drop). A frame that can be neither sent nor held is counted in ``dropped_*``.
        """
        ws = self._ws
        if self._state == "open" and ws is not None:
            self._last_sent = self._clock()
            try:
                await ws.send(frame)
            except ConnectionClosed:
                if hold and self._may_reconnect():
                    self._hold(frame)  # the reader sees the close and reconnects
                    return
                error = ServiceError(f"the {self.name} connection was lost", retryable=True)
                if self.policy.reopen_on_demand:
                    self._lose(ws, error)
                self._drop(frame)
                raise error from None
            self.stats.frames_sent += 1
            self.stats.bytes_sent += len(frame)
        elif self._state == "reconnecting" and hold and self.policy.hold_bytes:
            self._hold(frame)
        else:
            self._drop(frame)
            raise ServiceError(f"the {self.name} session is {self._state}", retryable=self._state != "closed")

    async def _close(self, goodbye: str | bytes | None = None) -> None:
        """Stop every task and close the socket; idempotent.

        ``goodbye`` is sent first when the socket is open, and the reader is given
        ``close_timeout`` to take the last messages until the server closes (Deepgram's flush).
        """
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        previous, self._state = self._state, "closing"
        self._notify()
        try:
            self._discard_held()
            await _stop(self._keepalive)
            ws, reader = self._ws, self._reader
            if goodbye is not None and previous == "open" and ws is not None and reader is not None:
                try:
                    await ws.send(goodbye)
                except ConnectionClosed:
                    pass
                else:
                    await asyncio.wait({reader}, timeout=self.policy.close_timeout)
            for task in list(self._tasks):
                await _stop(task)
            self._ws = None
            if ws is not None:
                await ws.close()
        finally:
            self._state = "closed"
            self._notify()
            self._closed.set()

    # --- connecting -----------------------------------------------------------------------------

    async def _connect(self) -> ClientConnection:
        """One (re)connect: attempts with jittered backoff while the failure is retryable."""
        started = self._clock()
        attempts = 0
        while True:
            attempts += 1
            began = self._clock()
            hint: float | None = None
            try:
                ws = await self._dial()
            except InvalidStatus as exc:
                error = self._refusal(exc.response.status_code, exc.response.headers)
                hint = retry_after(exc.response.headers)
                cause: BaseException = exc
            except ServiceError as exc:
                error, cause = exc, exc
            else:
                try:
                    await self._handshake(ws)
                except BaseException:
                    await ws.close()
                    raise
                self.stats.connects += 1
                return ws
            now = self._clock()
            wait = None
            if error.retryable:
                wait = self.policy.retry.delay(
                    attempts,
                    elapsed=now - started,
                    last_attempt=now - began,
                    retry_after=hint,
                    rand=self._rand,
                )
            if wait is None:
                raise error from cause
            self.stats.connect_retries += 1
            log.warning("%s connect failed; retrying", self.name, extra={"attempt": attempts, "wait": wait})
            await asyncio.sleep(wait)

    async def _dial(self) -> ClientConnection:
        policy = self.policy
        try:
            return await connect(
                self.url(),
                additional_headers=dict(self.headers()),
                open_timeout=policy.connect_timeout,
                close_timeout=policy.close_timeout,
                ping_interval=policy.ping_interval,
                ping_timeout=policy.ping_timeout,
                max_size=policy.max_message_bytes,
                # Audio, or JSON with base64 audio, does not deflate: it would only cost CPU per frame.
                compression=None,
            )
        except InvalidStatus:
            raise
        except TimeoutError as exc:
            raise ServiceError(
                f"{self.name} did not answer within {policy.connect_timeout:g} s", retryable=True
            ) from exc
        except InvalidURI as exc:
            raise ConfigurationError(f"the {self.name} URL is not a WebSocket URL: {exc}") from None
        except (OSError, WebSocketException) as exc:
            raise ServiceError(
                f"cannot connect to {self.name}: {type(exc).__name__}", retryable=True
            ) from exc

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._epoch += 1
        self._last_sent = self._clock()
        self._reader = self._spawn(self._run(ws), "reader")
        if self.policy.keepalive_interval and self._keepalive is None:
            self._keepalive = self._spawn(self._keep_alive(self.policy.keepalive_interval), "keepalive")

    def _spawn(self, work: Coroutine[Any, Any, None], role: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"{self.name.lower().replace(' ', '-')}-{role}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- reading and reconnecting ---------------------------------------------------------------

    async def _run(self, ws: ClientConnection) -> None:
        """Read sockets until the stream ends; repair drops within the policy; fail once otherwise."""
        try:
            while True:
                error = await self._read(ws)
                if self._closing or error is None:
                    return
                self._lose(ws, error)
                if self.policy.reopen_on_demand:
                    return
                if not error.retryable or not self._may_reconnect():
                    raise error
                self.stats.reconnects += 1
                self._set_state("reconnecting")
                # The error's text can carry the provider's close reason: its class only.
                log.warning(
                    "%s socket dropped; reconnecting",
                    self.name,
                    extra={"callkit": {"reason": type(error).__name__}},
                )
                ws = await self._connect()
                if self.closed:
                    await ws.close()
                    return
                self._ws, self._epoch = ws, self._epoch + 1
                self._last_sent = self._clock()
                if await self._send_held(ws):
                    self._set_state("open")
        except ServiceError as exc:
            self._fail(exc)
        except Exception as exc:
            log.exception("%s reader failed", self.name)
            self._fail(ServiceError(f"{self.name} session failed: {type(exc).__name__}"))

    async def _read(self, ws: ClientConnection) -> ServiceError | None:
        """Read one socket to its end: ``None`` when it ended as asked, else why it was lost."""
        try:
            async for message in ws:
                self.stats.messages += 1
                try:
                    self._on_message(message)
                except ProtocolError:
                    # We can no longer trust the stream (whose audio is whose): give the socket up.
                    log.warning("%s sent a message we cannot parse; closing the socket", self.name)
                    await ws.close(_CLOSE_PROTOCOL_ERROR)
                    return ServiceError(f"{self.name} sent a message we cannot parse", retryable=True)
        except ConnectionClosed:
            pass  # the close code says what it means
        return self._close_error(ws.close_code, ws.close_reason or "")

    def _may_reconnect(self) -> bool:
        return not self._closing and self.stats.reconnects < self.policy.max_reconnects

    def _lose(self, ws: ClientConnection, error: ServiceError) -> None:
        """Forget a lost socket once (the reader and a sender may both notice)."""
        if self._ws is not ws or self._closing:
            return
        self._ws = None
        if self.policy.reopen_on_demand:
            self._set_state("down")
        self._on_lost(error)

    async def _send_held(self, ws: ClientConnection) -> bool:
        """Send what was held, in order; ``False`` when the new socket closed meanwhile."""
        # Frames that arrive while this awaits are appended and sent by the same loop.
        while self._held:
            frame = self._held.popleft()
            self._held_bytes -= len(frame)
            try:
                await ws.send(frame)
            except ConnectionClosed:
                self._held.appendleft(frame)
                self._held_bytes += len(frame)
                return False  # the next read sees the close
            self.stats.frames_sent += 1
            self.stats.bytes_sent += len(frame)
        return True

    async def _keep_alive(self, interval: float) -> None:
        """Send the keep-alive frame only when nothing was sent for ``interval`` s."""
        while True:
            idle = self._clock() - self._last_sent
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            ws, frame = self._ws, self._keep_alive_frame()
            if self._state != "open" or ws is None or frame is None:
                await asyncio.sleep(interval)
                continue
            self._last_sent = self._clock()
            try:
                await ws.send(frame)
            except ConnectionClosed:
                continue  # the reader handles the close
            self.stats.keepalives_sent += 1

    # --- state ----------------------------------------------------------------------------------

    def _hold(self, frame: str | bytes) -> None:
        self._held.append(frame)
        self._held_bytes += len(frame)
        self.stats.held_frames += 1
        while self._held_bytes > self.policy.hold_bytes:
            self._drop(oldest := self._held.popleft())
            self._held_bytes -= len(oldest)

    def _drop(self, frame: str | bytes) -> None:
        self.stats.dropped_frames += 1
        self.stats.dropped_bytes += len(frame)

    def _discard_held(self) -> None:
        self.stats.dropped_frames += len(self._held)
        self.stats.dropped_bytes += self._held_bytes
        self._held.clear()
        self._held_bytes = 0

    def _set_state(self, state: SessionState) -> None:
        if not self._closing and state != self._state:
            self._state = state
            self._notify()

    def _notify(self) -> None:
        if self._listener is not None:
            self._listener(self._state)

    def _fail(self, error: ServiceError) -> None:
        self._discard_held()
        if self._closing or self.failure is not None:
            return  # the caller is ending the session anyway
        self.failure = error
        self._set_state("failed")
        log.error("%s session failed", self.name, extra={"retryable": error.retryable})
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._on_failed(error)


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it, without swallowing a cancellation of our own."""
    if task is not None and not task.done() and task is not asyncio.current_task():
        task.cancel()
        await asyncio.wait({task})
