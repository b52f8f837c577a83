"""Serving one carrier media stream: admit it, then hand it to the call's pipeline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from callkit.errors import AdmissionRefusedError, ProtocolError, UnknownEventError
from callkit.stream.admission import (
    Admitted,
    admit_start,
    log_refusal,
    read_start,
    verify_handshake,
)

if TYPE_CHECKING:
    from starlette.websockets import WebSocket

    from callkit.carriers import CarrierFormat
    from callkit.carriers._types import StreamEvent
    from callkit.interface import CallInterface
    from callkit.settings import Settings
    from callkit.store.aio import AsyncStore
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry


#: Malformed frames of one stream that are logged; the ones after are only counted.
MALFORMED_LOGGED = 10


class StreamLink(Protocol):
    """The carrier socket as a pipeline sees it: text frames in and out."""

    async def receive(self) -> str | None:
        """The next text frame, or ``None`` once the carrier closed the stream."""
        ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int = 1000) -> None: ...


async def carrier_events(
    link: StreamLink, carrier: CarrierFormat, telemetry: Telemetry
) -> AsyncIterator[StreamEvent]:
    """The carrier's stream messages, decoded, until it closes the stream.

    Unknown event types are skipped (carriers add events); malformed frames are counted, skipped
    and logged by type, the first ``MALFORMED_LOGGED`` of a stream only (a broken stream sends 50
    a second): one bad frame never ends a call, nor does a stream of them flood the log.
    """
    malformed = 0
    while (text := await link.receive()) is not None:
        try:
            yield carrier.decode_stream_message(text)
        except UnknownEventError:
            continue
        except ProtocolError as error:
            malformed += 1
            telemetry.count("StreamMessagesMalformed")
            if malformed <= MALFORMED_LOGGED:
                telemetry.warning(
                    "stream message malformed",
                    reason=type(error).__name__,
                    malformed=malformed,
                    logged_up_to=MALFORMED_LOGGED,
                )


class Pipeline(Protocol):
    async def run(self, admitted: Admitted, link: StreamLink) -> None:
        """Hold the call until it ends; never raises."""
        ...


class StarletteLink:
    """``StreamLink`` over a Starlette ``WebSocket`` (uvicorn)."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket
        self.closed = False

    async def receive(self) -> str | None:
        while not self.closed:
            try:
                message = await self._socket.receive()
            except RuntimeError:  # Starlette: the socket was closed (by us, as the call ended)
                self.closed = True
                return None
            if message["type"] == "websocket.disconnect":
                self.closed = True
                return None
            text = message.get("text")
            if text is not None:
                return str(text)
        return None

    async def send(self, text: str) -> None:
        if not self.closed:
            await self._socket.send_text(text)

    async def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            # The peer may be gone already (Starlette raises WebSocketDisconnect then).
            with contextlib.suppress(Exception):
                await self._socket.close(code)


async def serve_stream(
    socket: WebSocket,
    *,
    path: str,
    interfaces: Sequence[CallInterface],
    settings: Settings,
    store: AsyncStore,
    credentials: Credentials,
    telemetry: Telemetry,
    pipeline_for: Callable[[Admitted], Pipeline | None],
    clock: Callable[[], float] = time.time,
    on_admitted: Callable[[Admitted], Awaitable[None]] | None = None,
) -> None:
    """Admit the stream at ``path`` and run its pipeline; refusals close with 1008 and write nothing."""
    headers = {k.lower(): v for k, v in socket.headers.items()}
    await socket.accept()
    link = StarletteLink(socket)
    try:
        carrier, candidates = verify_handshake(
            interfaces, headers, path=path, settings=settings, credentials=credentials
        )
        start = await read_start(carrier, link.receive)
        admitted = await admit_start(
            start, candidates, carrier, store=store, credentials=credentials, now=clock()
        )
    except AdmissionRefusedError as refused:
        log_refusal(telemetry, refused.reason)
        await link.close(refused.close_code)
        return
    telemetry.bind_call(admitted.call.call_id)
    telemetry.info(
        "media stream admitted", provider=admitted.interface.provider, pipeline=admitted.call.pipeline
    )
    telemetry.count("StreamsAdmitted")
    pipeline = pipeline_for(admitted)
    if pipeline is None:
        telemetry.error("no pipeline for this call", pipeline=admitted.call.pipeline)
        await link.close(1011)
        return
    if on_admitted is not None:
        await on_admitted(admitted)
    await pipeline.run(admitted, link)
    await link.close()
