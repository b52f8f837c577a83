"""One call's OpenAI Realtime socket, GA protocol (docs/protocols/ai-providers.md §3).

::

    session = config.session()
    await session.connect(session_update(config, instructions=..., tools=...))
    gate = ResponseGate()
    async for event in session.events():          # a reader task parses frames into events
        if (create := gate.observe(event)) is not None:
            await session.send(create)             # the response.create a tool round deferred
        ...
    await session.close()

``connect`` opens the socket with ``Authorization: Bearer`` (never ``OpenAI-Beta``: the beta shape
is retired, §3.1), waits for ``session.created``, sends the ``session.update`` and waits for
``session.updated``. Any ``error`` before that (``beta_api_shape_disabled`` included) is a
``ServiceError``; a timeout is a retryable one. A dropped socket ends ``events()`` with a retryable
``ServiceError``. There is no reconnect: a realtime conversation cannot resume on a new session,
so the pipeline apologises instead. The message format lives in ``openai_protocol``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from callkit.errors import ConfigurationError, ProtocolError, ServiceError
from callkit.net.websocket_session import Inbox, SocketPolicy, SocketStats, WebSocketSession
from callkit.realtime.openai import OpenAIRealtimeProvider
from callkit.realtime.openai_protocol import (
    MAX_MESSAGE_BYTES,
    RealtimeError,
    RealtimeEvent,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    Unknown,
    parse_server_event,
    response_create,
)

__all__ = ["OpenAIRealtimeSession", "ResponseGate", "SessionStats"]

log = logging.getLogger(__name__)

#: Raised by the server when a ``response.create`` overlaps an active response (§3.5).
ACTIVE_RESPONSE: Final = "conversation_already_has_active_response"


@dataclass(slots=True)
class SessionStats(SocketStats):
    """The socket's counters (``messages``: frames received after ``session.updated``), and:"""

    unknown: int = 0  # well-formed events we do not handle
    beta_events: int = 0  # retired beta event names (should stay 0: we speak GA only)
    errors: int = 0  # in-band ``error`` events


class OpenAIRealtimeSession(WebSocketSession):
    """The Realtime socket of one call. Not thread-safe; one event loop.

    The socket's policy is ``callkit.net.websocket_session``'s, with no reconnect (the module
    docstring says why); the setup exchange is its ``_handshake``.
    """

    name = "OpenAI Realtime"
    stats: SessionStats

    def __init__(
        self,
        config: OpenAIRealtimeProvider,
        *,
        connect_timeout: float = 10.0,
        update_timeout: float = 10.0,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        if not config.api_key:
            raise ConfigurationError(
                "OpenAIRealtimeProvider needs api_key= or the OPENAI_API_KEY environment variable"
            )
        policy = SocketPolicy(connect_timeout=connect_timeout, max_message_bytes=MAX_MESSAGE_BYTES)
        super().__init__(policy, stats=SessionStats())
        self.config = config
        self._update_timeout = update_timeout
        # ``extra_headers`` is for gateways in front of OpenAI; Authorization always wins.
        self._headers = {**(extra_headers or {}), "Authorization": f"Bearer {config.api_key}"}
        self._inbox: Inbox[RealtimeEvent] = Inbox()
        self._session_update: Mapping[str, Any] = {}
        self.session_id = ""

    def __repr__(self) -> str:
        return f"OpenAIRealtimeSession({self.config!r}, connected={self.connected})"

    async def __aenter__(self) -> OpenAIRealtimeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- connection -----------------------------------------------------------------------------

    async def connect(self, session_update: Mapping[str, Any]) -> None:
        """Open the socket and configure the session. Raises ``ServiceError``."""
        if self.state != "idle":
            raise ServiceError("an OpenAI Realtime session connects once")
        self._session_update = session_update
        await self._open()

    def url(self) -> str:
        return self.config.url()

    def headers(self) -> Mapping[str, str]:
        return self._headers

    async def _handshake(self, ws: ClientConnection) -> None:
        try:
            async with asyncio.timeout(self._update_timeout):
                created = await self._expect(ws, SessionCreated)
                self.session_id = created.session_id
                await ws.send(json_text(self._session_update))
                await self._expect(ws, SessionUpdated)
        except TimeoutError:
            raise ServiceError(
                "OpenAI Realtime did not configure the session in time", retryable=True
            ) from None

    async def _expect[E: (SessionCreated, SessionUpdated)](self, ws: ClientConnection, kind: type[E]) -> E:
        """Read until an event of ``kind``; an ``error`` or a close first is a ``ServiceError``."""
        while True:
            try:
                text = await ws.recv()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                raise ServiceError(
                    f"OpenAI Realtime closed the socket during setup (code {code})", retryable=code != 4000
                ) from None
            try:
                event = parse_server_event(text)
            except ProtocolError as exc:
                # The decoder's text can quote a value of the event: its class only.
                raise ServiceError(f"OpenAI Realtime sent a malformed event ({type(exc).__name__})") from None
            if isinstance(event, kind):
                return event
            if isinstance(event, RealtimeError):
                # beta_api_shape_disabled, an invalid session.update ...: the same request fails again.
                raise ServiceError(f"OpenAI Realtime refused the session: {event.code or event.type}")
            self._count(event)

    async def close(self) -> None:
        """Close the socket; ``events()`` ends without an error. Idempotent."""
        await self._close()
        self._inbox.end()

    # --- frames ---------------------------------------------------------------------------------

    async def send(self, text_event: str) -> None:
        """Send one client event (JSON text from ``openai_protocol``). Raises ``ServiceError``."""
        if self.state == "idle":
            raise ServiceError("the OpenAI Realtime session is not connected")
        await self._send(text_event, hold=False)

    def events(self) -> AsyncIterator[RealtimeEvent]:
        """Events in arrival order until ``close()``; a drop raises a retryable ``ServiceError``."""
        return self._inbox

    def _count(self, event: RealtimeEvent) -> None:
        if isinstance(event, Unknown):
            self.stats.unknown += 1
            if event.beta:
                self.stats.beta_events += 1
                log.warning("OpenAI Realtime sent a beta event", extra={"event_type": event.type})
        elif isinstance(event, RealtimeError):
            self.stats.errors += 1

    def _on_message(self, message: str | bytes) -> None:
        event = parse_server_event(message)
        self._count(event)
        self._inbox.put(event)

    def _on_failed(self, error: ServiceError) -> None:
        self._inbox.fail(error)


def json_text(event: Mapping[str, Any]) -> str:
    """A client event built as a mapping (``session_update``) as JSON text."""
    return msgspec.json.encode(event).decode()


class _Sender(Protocol):
    async def send(self, text_event: str) -> None: ...


class ResponseGate:
    """At most one ``response.create`` in flight (§3.5).

    ``request()`` sends ``response.create`` on ``session`` when no response is active; otherwise it
    remembers to send one after the active response's ``response.done`` (several requests meanwhile
    give one create; the latest ``instructions`` win). ``tool_output()`` says a tool result was added
    while the tool call's response is still active: one create is owed at its ``response.done``.
    Feed server events to ``observe()`` (``ResponseCreated`` of a VAD-started response marks it active;
    a ``conversation_already_has_active_response`` error re-owes our create; ``ResponseDone`` sends
    what is owed). ``done()`` is ``observe()`` for a ``ResponseDone``.
    """

    __slots__ = ("_active", "_owed", "_session", "creates")

    def __init__(self, session: _Sender) -> None:
        self._session = session
        self._active = False
        self._owed: str | None = None
        self.creates = 0  # response.create events sent

    @property
    def active(self) -> bool:
        return self._active

    @property
    def owed(self) -> bool:
        return self._owed is not None

    async def request(self, instructions: str | None = None) -> bool:
        """Send ``response.create`` now (``True``) or after the active response (``False``)."""
        if self._active:
            if self._owed is None or instructions is not None:
                self._owed = response_create(instructions)
            return False
        await self._create(response_create(instructions))
        return True

    def tool_output(self) -> None:
        if self._owed is None:
            self._owed = response_create()

    async def flush(self) -> bool:
        """Send an owed create if no response is active (a tool finished after ``response.done``)."""
        if self._active or self._owed is None:
            return False
        create, self._owed = self._owed, None
        await self._create(create)
        return True

    async def observe(self, event: RealtimeEvent) -> bool:
        """Track one server event; ``True`` when it made the gate send a deferred create."""
        match event:
            case ResponseCreated():
                self._active = True
            case RealtimeError(code=code) if code == ACTIVE_RESPONSE:
                # We raced a response the server started itself: ask again after it is done.
                self._active = True
                self.tool_output()
            case ResponseDone():
                self._active = False
                return await self.flush()
        return False

    async def done(self, event: ResponseDone) -> bool:
        return await self.observe(event)

    async def _create(self, create: str) -> None:
        self._active = True
        self.creates += 1
        await self._session.send(create)
