"""One call's Deepgram live-transcription socket (docs/protocols/ai-providers.md §1).

The policy (connect timeout and retries, one reconnect on a drop with up to ``hold_seconds`` of
audio held meanwhile, keep-alives while no audio flows, a short wait for the last results at
close) is ``callkit.net.websocket_session``'s; this module says what Deepgram's frames and closes
mean, with the sans-I/O ``deepgram_protocol``. One session per call, never shared
(docs/architecture.md §1.2)::

    async with config.session() as stt:           # connects; ServiceError if it cannot
        ...  await stt.send_audio(frame)          # 20-ms μ-law frames from the carrier
        async for event in stt.events():          # Interim | Utterance | SpeechStarted
            ...                                   # raises ServiceError when the stream is lost

Transcripts are never logged (STYLE 15); the request id of each socket is.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from websockets.asyncio.client import ClientConnection

from callkit.errors import ConfigurationError, ProtocolError, ServiceError
from callkit.net.websocket_session import Inbox, SessionState, SocketPolicy, SocketStats, WebSocketSession
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

# Bytes per sample of the raw encodings, for sizing the hold buffer; others are assumed 16-bit.
_BYTES_PER_SAMPLE: Final = {"mulaw": 1, "alaw": 1, "linear16": 2, "linear32": 4}


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
class SessionStats(SocketStats):
    """The socket's counters, and undecodable messages and each socket's request id."""

    bad_messages: int = 0
    request_ids: list[str] = field(default_factory=list)


class DeepgramSession(WebSocketSession):
    """One call's streaming transcription over one socket at a time (at most two in its life)."""

    name = "Deepgram"
    stats: SessionStats

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
        bytes_per_second = sample_rate * channels * _BYTES_PER_SAMPLE.get(encoding, 2)
        socket = SocketPolicy(
            connect_timeout=policy.connect_timeout,
            close_timeout=policy.close_timeout,
            max_reconnects=policy.max_reconnects,
            hold_bytes=int(policy.hold_seconds * bytes_per_second),
            keepalive_interval=config.keepalive_interval,
            ping_interval=policy.ping_interval,
            ping_timeout=policy.ping_timeout,
            max_message_bytes=MAX_MESSAGE_BYTES,
        )
        super().__init__(socket, stats=SessionStats())
        self._url = config.url(encoding=encoding, sample_rate=sample_rate, channels=channels)
        self._api_key = config.api_key
        self._assembler = UtteranceAssembler()
        self._inbox: Inbox[STTEvent] = Inbox()
        self._close_stream_sent = False

    # --- public API -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect. Raises ``ServiceError`` (``retryable=False`` for a refused key) if it cannot."""
        if self.state != "idle":
            raise RuntimeError("a DeepgramSession starts once")
        try:
            await self._open()
        except BaseException:
            self._inbox.end()
            raise

    async def send_audio(self, audio: bytes) -> None:
        """Send one chunk of audio in the session's encoding. Never raises for a lost stream.

        While reconnecting the audio is held (up to ``hold_seconds``); after a failure or a close
        it is dropped and counted. Lost streams surface through ``events()``.
        """
        if not audio:
            return  # §1.3: an empty binary frame can close the stream
        if self.state in ("idle", "connecting"):
            raise RuntimeError("call DeepgramSession.start() before send_audio()")
        with contextlib.suppress(ServiceError):  # counted; events() says why
            await self._send(audio)

    async def finalize(self) -> None:
        """Ask Deepgram to flush now (our own VAD decided the turn ended, §1.5 step 7)."""
        if self.connected:
            with contextlib.suppress(ServiceError):  # the reader handles the close
                await self._send(finalize(), hold=False)

    def events(self) -> AsyncIterator[STTEvent]:
        """Assembled events until ``close()``; raises ``ServiceError`` if the stream is lost for good.

        One consumer per session.
        """
        return self._inbox

    async def close(self) -> None:
        """Send ``CloseStream``, wait up to ``close_timeout`` for the last results, close. Idempotent."""
        if self.closed:
            await self._close()
            return
        self._close_stream_sent = True
        await self._close(goodbye=close_stream())
        if self.failure is None:
            utterance = self._assembler.flush()
            if utterance is not None:
                self._inbox.put(utterance)
        self._inbox.end()

    async def __aenter__(self) -> DeepgramSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- protocol -------------------------------------------------------------------------------

    def url(self) -> str:
        return self._url

    def headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Token {self._api_key}"}

    def _refusal(self, status: int, headers: Mapping[str, str]) -> ServiceError:
        detail = headers.get("dg-error", "")
        retryable = status in (408, 429) or status >= 500
        return ServiceError(
            f"Deepgram refused the stream: HTTP {status} {detail}".rstrip(), retryable=retryable
        )

    async def _handshake(self, ws: ClientConnection) -> None:
        request_id = ws.response.headers.get("dg-request-id", "") if ws.response is not None else ""
        if request_id:
            self.stats.request_ids.append(request_id)
        log.info("Deepgram stream open", extra={"request_id": request_id})

    def _keep_alive_frame(self) -> str:
        return keep_alive()

    def _close_error(self, code: int | None, reason: str) -> ServiceError | None:
        """§1.6: our ``CloseStream`` ends it; rejected data fails it; anything else is a drop."""
        match classify_close(code, reason, close_stream_sent=self._close_stream_sent):
            case "ended":
                return None
            case "failed":
                return ServiceError(f"Deepgram closed the stream: {code} {reason}".rstrip(), retryable=False)
            case _:
                return ServiceError(f"Deepgram stream dropped: {code} {reason}".rstrip(), retryable=True)

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
            # The variant is Deepgram's error class; the description is its free text: length only.
            log.warning(
                "Deepgram error message", extra={"variant": event.variant, "chars": len(event.description)}
            )
        for item in self._assembler.feed(event):
            self._inbox.put(item)

    def _on_failed(self, error: ServiceError) -> None:
        log.error("Deepgram stream lost", extra={"retryable": error.retryable})
        self._inbox.fail(error)
