"""One call's Deepgram live-transcription socket (docs/protocols/ai-providers.md §1).

The session owns the policy: connect timeout, keepalives while no audio flows, one reconnect on a
drop with up to ``hold_seconds`` of audio held meanwhile, and a short wait for the last results at
close. The protocol (messages, what a close means, assembling utterances) is the sans-I/O
``deepgram_protocol``. One session per call, never shared (docs/architecture.md §1.2)::

    async with config.session() as stt:           # connects; ServiceError if it cannot
        ...  await stt.send_audio(frame)          # 20-ms μ-law frames from the carrier
        async for event in stt.events():          # Interim | Utterance | SpeechStarted
            ...                                   # raises ServiceError when the stream is lost

Transcripts are never logged (STYLE 15); the request id of each socket is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from callkit.errors import ConfigurationError, ProtocolError, ServiceError
from callkit.stt.deepgram_protocol import (
    MAX_MESSAGE_BYTES,
    DeepgramError,
    Metadata,
    STTEvent,
    UtteranceAssembler,
    classify_close,
    close_stream,
    finalize,
    keep_alive,
    parse_message,
)

if TYPE_CHECKING:
    from callkit.stt.deepgram import DeepgramSTT

__all__ = ["DeepgramSession", "SessionPolicy", "SessionState", "SessionStats"]

log = logging.getLogger(__name__)

_monotonic: Final = time.monotonic

# Bytes per sample of the raw encodings, for sizing the hold buffer; others are assumed 16-bit.
_BYTES_PER_SAMPLE: Final = {"mulaw": 1, "alaw": 1, "linear16": 2, "linear32": 4}

SessionState = Literal["idle", "connecting", "open", "reconnecting", "closing", "closed", "failed"]


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How hard a session tries. The defaults suit a phone call.

    ``close_timeout`` is how long ``close()`` waits for Deepgram's last results after
    ``CloseStream``; ``hold_seconds`` is how much audio is kept while reconnecting (the oldest is
    dropped first, so what is kept joins the live audio without a gap). WebSocket pings every
    ``ping_interval`` s find a silently dead socket within ``ping_interval + ping_timeout`` s,
    before its write buffer (32 KiB, 4 s of μ-law) fills and ``send_audio`` has to wait.
    """

    connect_timeout: float = 5.0
    close_timeout: float = 2.0
    max_reconnects: int = 1
    hold_seconds: float = 1.0
    ping_interval: float = 5.0
    ping_timeout: float = 5.0


@dataclass(slots=True)
class SessionStats:
    """Counters for metrics. ``held_frames`` waited during a reconnect; ``dropped_*`` never reached Deepgram."""

    frames_sent: int = 0
    bytes_sent: int = 0
    keepalives_sent: int = 0
    reconnects: int = 0
    held_frames: int = 0
    dropped_frames: int = 0
    dropped_bytes: int = 0
    bad_messages: int = 0
    request_ids: list[str] = field(default_factory=list)


class _End:
    """Queued once when no more events will come."""


_END: Final = _End()
_Item = STTEvent | ServiceError | _End


class _EventStream:
    """``events()``: what the assembler emitted, then the end, or the error that ended it."""

    __slots__ = ("_queue",)

    def __init__(self, queue: asyncio.Queue[_Item]) -> None:
        self._queue = queue

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> STTEvent:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later read ends too
            raise StopAsyncIteration
        if isinstance(item, ServiceError):
            raise item
        return item


class DeepgramSession:
    """One call's streaming transcription over one socket at a time (at most two in its life)."""

    def __init__(
        self,
        config: DeepgramSTT,
        *,
        encoding: str = "mulaw",
        sample_rate: int = 8000,
        channels: int = 1,
        policy: SessionPolicy = SessionPolicy(),  # frozen, so one default is safe to share
    ) -> None:
        if not config.api_key:
            raise ConfigurationError(
                "DeepgramSTT needs api_key= or the DEEPGRAM_API_KEY environment variable"
            )
        self._url = config.url(encoding=encoding, sample_rate=sample_rate, channels=channels)
        self._headers = {"Authorization": f"Token {config.api_key}"}
        self._keepalive_interval = config.keepalive_interval
        self._policy = policy
        bytes_per_second = sample_rate * channels * _BYTES_PER_SAMPLE.get(encoding, 2)
        self._hold_limit = int(policy.hold_seconds * bytes_per_second)
        self._state: SessionState = "idle"
        self._ws: ClientConnection | None = None
        self._assembler = UtteranceAssembler()
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._last_sent = 0.0
        self._close_stream_sent = False
        self._ended = False
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._close_started = False
        self._closed = asyncio.Event()
        self.stats = SessionStats()

    @property
    def state(self) -> SessionState:
        return self._state

    # --- public API -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect. Raises ``ServiceError`` (``retryable=False`` for a refused key) if it cannot."""
        if self._state != "idle":
            raise RuntimeError("a DeepgramSession starts once")
        self._state = "connecting"
        try:
            ws = await self._connect()
        except BaseException:
            self._state = "failed"
            self._end()
            raise
        self._ws = ws
        self._last_sent = _monotonic()
        self._state = "open"
        self._reader = asyncio.create_task(self._read_all(ws), name="deepgram-reader")
        self._keepalive = asyncio.create_task(self._keep_alive(), name="deepgram-keepalive")

    async def send_audio(self, audio: bytes) -> None:
        """Send one chunk of audio in the session's encoding. Never raises for a lost stream.

        While reconnecting the audio is held (up to ``hold_seconds``); after a failure or a close
        it is dropped and counted. Lost streams surface through ``events()``. It only waits when
        the socket's write buffer is full (the network stalled), which the pings turn into a drop.
        """
        if not audio:
            return  # §1.3: an empty binary frame can close the stream
        if self._state == "open":
            ws = self._ws
            assert ws is not None
            self._last_sent = _monotonic()
            try:
                await ws.send(audio)
            except ConnectionClosed:
                # The reader sees the close and reconnects; this frame goes to the new socket.
                self._hold(audio)
                return
            stats = self.stats
            stats.frames_sent += 1
            stats.bytes_sent += len(audio)
        elif self._state == "reconnecting":
            self._hold(audio)
        elif self._state in ("idle", "connecting"):
            raise RuntimeError("call DeepgramSession.start() before send_audio()")
        else:
            self.stats.dropped_frames += 1
            self.stats.dropped_bytes += len(audio)

    async def finalize(self) -> None:
        """Ask Deepgram to flush now (our own VAD decided the turn ended, §1.5 step 7)."""
        ws = self._ws
        if self._state == "open" and ws is not None:
            self._last_sent = _monotonic()
            with contextlib.suppress(ConnectionClosed):  # the reader handles the close
                await ws.send(finalize())

    def events(self) -> AsyncIterator[STTEvent]:
        """Assembled events until ``close()``; raises ``ServiceError`` if the stream is lost for good.

        One consumer per session.
        """
        return _EventStream(self._queue)

    async def close(self) -> None:
        """Send ``CloseStream``, wait up to ``close_timeout`` for the last results, close. Idempotent."""
        if self._close_started:
            await self._closed.wait()
            return
        self._close_started = True
        try:
            await self._shutdown()
        finally:
            self._state = "closed"
            self._closed.set()

    async def __aenter__(self) -> DeepgramSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- connection -----------------------------------------------------------------------------

    async def _connect(self) -> ClientConnection:
        timeout = self._policy.connect_timeout
        try:
            ws = await connect(
                self._url,
                additional_headers=self._headers,
                open_timeout=timeout,
                close_timeout=self._policy.close_timeout,
                ping_interval=self._policy.ping_interval,
                ping_timeout=self._policy.ping_timeout,
                compression=None,  # audio does not deflate; it would only cost CPU on every frame
                max_size=MAX_MESSAGE_BYTES,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            detail = exc.response.headers.get("dg-error", "")
            retryable = status in (408, 429) or status >= 500
            raise ServiceError(
                f"Deepgram refused the stream: HTTP {status} {detail}".rstrip(), retryable=retryable
            ) from exc
        except TimeoutError as exc:
            raise ServiceError(f"Deepgram did not answer within {timeout:g} s", retryable=True) from exc
        except InvalidURI as exc:
            raise ServiceError(f"bad Deepgram URL: {exc}", retryable=False) from exc
        except (OSError, WebSocketException) as exc:
            raise ServiceError(f"cannot connect to Deepgram: {exc}", retryable=True) from exc
        request_id = ws.response.headers.get("dg-request-id", "") if ws.response is not None else ""
        if request_id:
            self.stats.request_ids.append(request_id)
        log.info("Deepgram stream open", extra={"request_id": request_id})
        return ws

    async def _read_all(self, ws: ClientConnection) -> None:
        """Read sockets until the stream ends; reconnect once on a drop (§1.6)."""
        try:
            while True:
                await self._read(ws)
                code, reason = ws.close_code, ws.close_reason or ""
                outcome = classify_close(code, reason, close_stream_sent=self._close_stream_sent)
                if outcome == "ended" or self._close_started:
                    return
                self._set_state("reconnecting")
                if outcome == "failed":
                    raise ServiceError(
                        f"Deepgram closed the stream: {code} {reason}".rstrip(), retryable=False
                    )
                if self.stats.reconnects >= self._policy.max_reconnects:
                    raise ServiceError(
                        f"Deepgram stream dropped again after a reconnect: {code} {reason}".rstrip(),
                        retryable=True,
                    )
                self.stats.reconnects += 1
                log.warning("Deepgram stream dropped; reconnecting", extra={"code": code, "reason": reason})
                ws = await self._connect()
                self._ws = ws
                self._last_sent = _monotonic()
                await self._send_held(ws)
        except ServiceError as exc:
            self._fail(exc)
        except Exception as exc:
            log.exception("Deepgram reader failed")
            self._fail(ServiceError(f"Deepgram session failed: {exc.__class__.__name__}", retryable=False))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._on_message(message)
        except ConnectionClosed:
            pass  # the caller looks at the close code

    def _on_message(self, message: str | bytes) -> None:
        try:
            event = parse_message(message)
        except ProtocolError:
            self.stats.bad_messages += 1
            log.warning("undecodable Deepgram message", extra={"size": len(message)})
            return
        if isinstance(event, Metadata):
            if event.request_id and event.request_id not in self.stats.request_ids:
                self.stats.request_ids.append(event.request_id)
        elif isinstance(event, DeepgramError):
            log.warning(
                "Deepgram error message", extra={"variant": event.variant, "description": event.description}
            )
        for item in self._assembler.feed(event):
            self._queue.put_nowait(item)

    async def _send_held(self, ws: ClientConnection) -> None:
        # Frames that arrive while this awaits are appended and sent in order by the same loop.
        while self._held:
            chunk = self._held.popleft()
            self._held_bytes -= len(chunk)
            try:
                await ws.send(chunk)
            except ConnectionClosed:
                self._held.appendleft(chunk)
                self._held_bytes += len(chunk)
                return  # the next read sees the close
            self.stats.frames_sent += 1
            self.stats.bytes_sent += len(chunk)
        self._set_state("open")

    async def _keep_alive(self) -> None:
        """Send ``KeepAlive`` only when nothing was sent for ``keepalive_interval`` (audio counts)."""
        interval = self._keepalive_interval
        while True:
            idle = _monotonic() - self._last_sent
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            ws = self._ws
            if self._state != "open" or ws is None:
                await asyncio.sleep(interval)
                continue
            self._last_sent = _monotonic()
            try:
                await ws.send(keep_alive())
            except ConnectionClosed:
                continue  # the reader handles the close
            self.stats.keepalives_sent += 1

    # --- state ----------------------------------------------------------------------------------

    def _hold(self, audio: bytes) -> None:
        self._held.append(audio)
        self._held_bytes += len(audio)
        self.stats.held_frames += 1
        while self._held_bytes > self._hold_limit:
            oldest = self._held.popleft()
            self._held_bytes -= len(oldest)
            self.stats.dropped_frames += 1
            self.stats.dropped_bytes += len(oldest)

    def _discard_held(self) -> None:
        self.stats.dropped_frames += len(self._held)
        self.stats.dropped_bytes += self._held_bytes
        self._held.clear()
        self._held_bytes = 0

    def _set_state(self, state: SessionState) -> None:
        if not self._close_started:
            self._state = state

    def _fail(self, error: ServiceError) -> None:
        self._discard_held()
        if self._close_started:
            return  # the caller is ending the call anyway
        self._state = "failed"
        log.error("Deepgram stream lost", extra={"retryable": error.retryable})
        if self._keepalive is not None:
            self._keepalive.cancel()
        self._queue.put_nowait(error)
        self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    async def _shutdown(self) -> None:
        previous = self._state
        self._state = "closing"  # from here on send_audio drops
        self._discard_held()
        await _stop(self._keepalive)
        ws = self._ws
        if previous == "open" and ws is not None and self._reader is not None:
            self._close_stream_sent = True
            try:
                await ws.send(close_stream())
            except ConnectionClosed:
                pass
            else:
                # Deepgram flushes: the last Results, a Metadata, then close 1000 (§1.3).
                await asyncio.wait({self._reader}, timeout=self._policy.close_timeout)
        await _stop(self._reader)
        if self._ws is not None:
            await self._ws.close()
        if previous != "failed":
            utterance = self._assembler.flush()
            if utterance is not None:
                self._queue.put_nowait(utterance)
        self._end()


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it, without swallowing a cancellation of our own."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task})
