"""One Cartesia TTS WebSocket per call, reused for every reply of that call (docs/protocols/ai-providers.md §2).

The call opens a ``CartesiaSession`` when it starts and closes it when it ends; two calls never share
a socket (docs/architecture.md §1.2). Each agent reply is one Cartesia context::

    async with CartesiaSession(config) as session:        # connects now: the handshake is off the
        reply = session.new_reply()                        # first reply's critical path
        await reply.send("Sure, let me check that. ")      # continue: true, one piece per clause
        await reply.end()                                  # transcript "", continue: false
        async for audio in reply.audio():                  # raw μ-law in arrival order, until done
            ...
        await reply.cancel()                               # barge-in: no more audio from this context

One reader task demultiplexes the socket by ``context_id``. A message for a context that is not
live (late frames of a cancelled context, docs/protocols/ai-providers.md §2.3) is dropped and counted in ``stats.dropped``.

Failures end the reply's ``audio()`` with ``ServiceError``: a context ``error`` (``retryable`` for
429 and 5xx), a lost socket (retryable; the next reply reconnects once, lazily: Cartesia closes a
socket after ~5 min idle), a refused handshake (401: not retryable), or silence for
``response_timeout`` seconds after ``end()``. ``cancel()`` never raises: barge-in must always work.
The message format lives in ``cartesia_protocol``; this module only moves frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from callkit.errors import ConfigurationError, ServiceError, UnknownEventError
from callkit.net.websocket_session import SocketPolicy, SocketStats, WebSocketSession
from callkit.tts.cartesia import CartesiaTTS
from callkit.tts.cartesia_protocol import (
    AudioChunk,
    CartesiaError,
    ContextDone,
    Encoding,
    FlushDone,
    SampleRate,
    Timestamps,
    cancel_request,
    generation_request,
    parse_message,
)

__all__ = ["CartesiaReply", "CartesiaSession", "ReplyState", "SessionStats"]

log = logging.getLogger(__name__)

#: What the reader puts in a reply's queue: audio, the end (``None``) or the failure.
_Item = bytes | ServiceError | None


class ReplyState(enum.Enum):
    """Where a reply stands. ``DONE``, ``CANCELLED`` and ``FAILED`` are final."""

    OPEN = "open"  # created; nothing sent yet (no context on the server)
    STREAMING = "streaming"  # pieces sent with continue: true
    ENDED = "ended"  # continue: false sent; Cartesia owes us the rest and ``done``
    DONE = "done"  # ``done`` received (audio may still wait in the queue)
    CANCELLED = "cancelled"
    FAILED = "failed"


_FINAL: Final = frozenset({ReplyState.DONE, ReplyState.CANCELLED, ReplyState.FAILED})


@dataclass(slots=True)
class SessionStats(SocketStats):
    """Counters for one session (all connections it made)."""

    audio_bytes: int = 0  # audio delivered to live replies
    dropped: int = 0  # frames of a context that is not live (cancelled, failed, unknown)
    ignored: int = 0  # frames of a type we do not handle (phoneme_timestamps, future types)


class CartesiaSession(WebSocketSession):
    """The Cartesia socket of one call. Not thread-safe; one event loop.

    ``encoding``/``sample_rate`` choose the audio format (μ-law 8 kHz for phone lines).
    ``add_timestamps`` collects word timings in ``reply.timestamps``. ``connect_timeout`` bounds the
    handshake; ``response_timeout`` bounds the silence after ``end()`` before the reply fails. The
    socket's policy is ``callkit.net.websocket_session``'s: a lost socket fails the replies in
    flight and the next reply opens a new one.
    """

    name = "Cartesia"
    stats: SessionStats

    def __init__(
        self,
        config: CartesiaTTS,
        *,
        encoding: Encoding = "pcm_mulaw",
        sample_rate: SampleRate = 8000,
        add_timestamps: bool = False,
        connect_timeout: float = 5.0,
        response_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not config.api_key:
            raise ConfigurationError(
                "CartesiaTTS needs api_key= or the CARTESIA_API_KEY environment variable"
            )
        config.require_voice()
        policy = SocketPolicy(connect_timeout=connect_timeout, reopen_on_demand=True)
        super().__init__(policy, stats=SessionStats(), clock=clock)
        self.config = config
        self.encoding: Encoding = encoding
        self.sample_rate: SampleRate = sample_rate
        self.add_timestamps = add_timestamps
        self.response_timeout = response_timeout
        self.clock = clock
        self._replies: dict[str, CartesiaReply] = {}

    def __repr__(self) -> str:
        return f"CartesiaSession({self.config!r}, connected={self.connected})"

    async def __aenter__(self) -> CartesiaSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- connection -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket now if it is not open (at call start). Raises ``ServiceError``."""
        await self._open()

    async def aclose(self) -> None:
        """Close the socket; live replies fail with a non-retryable ``ServiceError``."""
        self._fail_all(ServiceError("the Cartesia session was closed"))
        await self._close()

    def url(self) -> str:
        return self.config.base_url

    def headers(self) -> Mapping[str, str]:
        return {
            "Authorization": f"Bearer {self.config.api_key}",
            "Cartesia-Version": self.config.cartesia_version,
        }

    def _on_lost(self, error: ServiceError) -> None:
        self._fail_all(error)  # a context does not survive its socket

    def _fail_all(self, error: ServiceError) -> None:
        replies, self._replies = self._replies, {}
        for reply in replies.values():
            reply._fail(error)

    # --- receiving ------------------------------------------------------------------------------

    def _on_message(self, message: str | bytes) -> None:
        try:
            event = parse_message(message)
        except UnknownEventError:
            self.stats.ignored += 1
            return
        match event:
            case AudioChunk(context_id, audio):
                if (reply := self._replies.get(context_id)) is None:
                    self.stats.dropped += 1
                else:
                    self.stats.audio_bytes += len(audio)
                    reply._on_audio(audio)
            case Timestamps(context_id):
                if (reply := self._replies.get(context_id)) is None:
                    self.stats.dropped += 1
                else:
                    reply.timestamps.append(event)
            case ContextDone(context_id):
                if (reply := self._replies.pop(context_id, None)) is None:
                    self.stats.dropped += 1
                else:
                    reply._finish()
            case CartesiaError(context_id):
                error = _service_error(event)
                if context_id is None:  # not tied to a context: every live reply may be affected
                    self._fail_all(error)
                elif (reply := self._replies.pop(context_id, None)) is None:
                    self.stats.dropped += 1
                else:
                    reply._fail(error)
            case FlushDone():
                pass  # we never send ``flush``

    # --- replies --------------------------------------------------------------------------------

    def new_reply(self) -> CartesiaReply:
        """A new context for one agent reply. The socket is (re)opened by its first ``send``."""
        if self.closed:
            raise RuntimeError("the Cartesia session is closed")
        return CartesiaReply(self, str(uuid.uuid4()))

    async def _send_input(self, reply: CartesiaReply, transcript: str, *, continue_: bool) -> None:
        if reply._socket is None:
            try:
                await self._open()
            except ServiceError as exc:
                reply._fail(exc)
                raise
            if reply.state is ReplyState.CANCELLED:  # cancelled while we connected
                return
            if reply._socket is None:  # (a concurrent send may have bound it meanwhile)
                reply._socket = self.epoch
                reply._started_at = self.clock()
                self._replies[reply.context_id] = reply
        reply.state = ReplyState.STREAMING if continue_ else ReplyState.ENDED
        reply._last_activity = self.clock()
        request = generation_request(
            self.config,
            reply.context_id,
            transcript,
            continue_=continue_,
            encoding=self.encoding,
            sample_rate=self.sample_rate,
            add_timestamps=self.add_timestamps,
        )
        try:
            if reply._socket != self.epoch:  # its socket was lost (and replaced)
                raise ServiceError("the Cartesia connection was lost", retryable=True)
            await self._send(request)
        except ServiceError as error:
            reply._fail(error)
            raise

    async def _cancel(self, reply: CartesiaReply) -> None:
        self._replies.pop(reply.context_id, None)  # from now on its late frames are dropped
        if reply._socket == self.epoch and self.connected:
            with contextlib.suppress(ServiceError):  # a lost socket cancels everything anyway
                await self._send(cancel_request(reply.context_id))


def _service_error(event: CartesiaError) -> ServiceError:
    """Status and code only: Cartesia's title and message are its text, which can quote the
    transcript (the caller's words), and the error is logged with its traceback."""
    code = f" {event.code}" if event.code else ""
    return ServiceError(f"Cartesia error {event.status_code}{code}", retryable=event.retryable)


class CartesiaReply:
    """One agent reply: one Cartesia context on the session's socket.

    ``send`` and ``end`` may run in one task while another iterates ``audio()``. ``timestamps`` fills
    with word timings when the session asked for them. ``first_audio_delay`` is the seconds from the
    first ``send`` to the first audio.
    """

    def __init__(self, session: CartesiaSession, context_id: str) -> None:
        self.context_id = context_id
        self.state = ReplyState.OPEN
        self.timestamps: list[Timestamps] = []
        self.audio_bytes = 0
        self.first_audio_delay: float | None = None
        self._session = session
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._error: ServiceError | None = None
        self._socket: int | None = None  # the session's socket (epoch) its context lives on
        self._started_at = 0.0
        self._last_activity = 0.0
        self._exhausted = False

    def __repr__(self) -> str:
        return f"CartesiaReply(context_id={self.context_id!r}, state={self.state.value})"

    async def send(self, text: str) -> None:
        """Speak ``text`` next (verbatim: keep the spaces at its edges). After ``cancel``: ignored."""
        if self.state is ReplyState.CANCELLED:
            return  # the LLM may still be streaming when the caller barges in
        self._raise_if_failed()
        if self.state in (ReplyState.ENDED, ReplyState.DONE):
            raise RuntimeError("this reply has ended; start a new one with session.new_reply()")
        if text:
            await self._session._send_input(self, text, continue_=True)

    async def end(self) -> None:
        """No more text: Cartesia finishes the audio and sends ``done``. Idempotent."""
        self._raise_if_failed()
        if self.state is ReplyState.OPEN:  # nothing was said: no context to close
            self._finish()
        elif self.state is ReplyState.STREAMING:
            await self._session._send_input(self, "", continue_=False)

    async def cancel(self) -> None:
        """Stop this reply now (barge-in): unplayed audio is dropped and ``audio()`` ends. Never raises."""
        if self.state in (ReplyState.CANCELLED, ReplyState.FAILED):
            return
        live = self.state in (ReplyState.STREAMING, ReplyState.ENDED)
        self.state = ReplyState.CANCELLED
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        if live:
            await self._session._cancel(self)

    async def audio(self) -> AsyncIterator[bytes]:
        """Audio in arrival order until ``done`` (or ``cancel``); raises ``ServiceError`` on failure."""
        if self._exhausted:  # iterated before: the outcome again, without waiting
            self._raise_if_failed()
            return
        while True:
            item = await self._next()
            if item is None or isinstance(item, ServiceError):
                self._exhausted = True
                if item is None:
                    return
                raise item
            yield item

    async def _next(self) -> _Item:
        timeout = self._session.response_timeout
        while True:
            try:
                return await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                # Only after end() does Cartesia owe us something; before it the LLM may be slow.
                idle = self._session.clock() - self._last_activity
                if self.state is ReplyState.ENDED and idle >= timeout:
                    await self._session._cancel(self)
                    self._fail(ServiceError(f"Cartesia sent nothing for {timeout:g} s", retryable=True))

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # called by the session's reader

    def _on_audio(self, audio: bytes) -> None:
        now = self._session.clock()
        if self.first_audio_delay is None:
            self.first_audio_delay = now - self._started_at
        self._last_activity = now
        self.audio_bytes += len(audio)
        self._queue.put_nowait(audio)

    def _finish(self) -> None:
        if self.state not in _FINAL:
            self.state = ReplyState.DONE
            self._queue.put_nowait(None)

    def _fail(self, error: ServiceError) -> None:
        if self.state not in _FINAL:
            self.state = ReplyState.FAILED
            self._error = error
            self._queue.put_nowait(error)
