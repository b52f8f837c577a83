"""Admitting a media stream (docs/architecture.md §2.3): anything refused here is closed with 1008 (1011 when the
store cannot be reached), and nothing is written.

1. The upgrade's signature (``X-Twilio-Signature`` / ``X-Plivo-Signature-V3``) over the stream
   URL we wrote in the answer, with the auth token of an interface of that carrier.
2. The carrier's first messages, until ``start`` (Twilio sends ``connected`` first), within a
   deadline: its ``token`` parameter must be a stream token minted for this call and pipeline.
3. An atomic claim of the call item: one stream per call, so a replayed token cannot attach a
   second stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callkit.carriers import CarrierFormat, carrier_format
from callkit.carriers._types import StreamConnected, StreamEvent, StreamStarted
from callkit.errors import (
    AdmissionRefusedError,
    CallkitError,
    CallNotFoundError,
    ConfigurationError,
    ProtocolError,
    SignatureError,
    TokenError,
    TransitionError,
    UnknownEventError,
)

if TYPE_CHECKING:
    from callkit.interface import CallInterface
    from callkit.settings import Settings
    from callkit.store._base import CallRecord
    from callkit.store.aio import AsyncStore
    from callkit.switchboard import Credentials
    from callkit.telemetry import Telemetry

#: How long a stream may take to send ``start`` after the upgrade.
START_DEADLINE_SECONDS = 5.0
#: Close codes (RFC 6455 §7.4.1): a stream that is not what it should be; a store that did not
#: answer, so nothing is known against the stream (the carrier reports the failed stream).
POLICY_VIOLATION = AdmissionRefusedError.POLICY_VIOLATION
SERVER_ERROR = AdmissionRefusedError.SERVER_ERROR


@dataclass(frozen=True, slots=True)
class Admitted:
    carrier: CarrierFormat
    interface: CallInterface
    call: CallRecord
    start: StreamStarted


def stream_url(settings: Settings, interface: CallInterface) -> str:
    """The stream URL written in the answer (and signed by the carrier on the upgrade)."""
    return f"{settings.media_url}{interface.stream_path}"


def carrier_for_handshake(
    interfaces: Sequence[CallInterface], headers: Mapping[str, str]
) -> tuple[CarrierFormat, list[CallInterface]]:
    for name in ("twilio", "plivo"):
        candidates = [i for i in interfaces if i.provider == name and i.pipeline != "managed"]
        carrier = carrier_format(name)
        if candidates and any(h in headers for h in carrier.SIGNATURE_HEADERS):
            return carrier, candidates
    raise AdmissionRefusedError("no carrier signature on the upgrade")


def verify_handshake(
    interfaces: Sequence[CallInterface],
    headers: Mapping[str, str],
    *,
    path: str,
    settings: Settings,
    credentials: Credentials,
) -> tuple[CarrierFormat, list[CallInterface]]:
    carrier, candidates = carrier_for_handshake(interfaces, headers)
    for interface in candidates:
        if interface.stream_path != path:
            continue
        try:
            carrier.verify_websocket_handshake(
                stream_url(settings, interface), headers, credentials.auth_token(interface)
            )
        except (SignatureError, ConfigurationError):
            continue
        return carrier, [i for i in candidates if i.stream_path == path]
    raise AdmissionRefusedError("handshake signature")


async def read_start(
    carrier: CarrierFormat,
    receive: Callable[[], Awaitable[str | None]],
    *,
    deadline: float = START_DEADLINE_SECONDS,
) -> StreamStarted:
    async def first_start() -> StreamStarted:
        while True:
            text = await receive()
            if text is None:
                raise AdmissionRefusedError("closed before start")
            try:
                event: StreamEvent = carrier.decode_stream_message(text)
            except UnknownEventError:
                continue
            except ProtocolError as exc:
                raise AdmissionRefusedError("malformed message before start") from exc
            if isinstance(event, StreamStarted):
                return event
            if not isinstance(event, StreamConnected):
                raise AdmissionRefusedError(f"{type(event).__name__} before start")

    try:
        return await asyncio.wait_for(first_start(), deadline)
    except TimeoutError as exc:
        raise AdmissionRefusedError("no start message in time") from exc


async def admit_start(
    start: StreamStarted,
    candidates: Sequence[CallInterface],
    carrier: CarrierFormat,
    *,
    store: AsyncStore,
    credentials: Credentials,
    now: float,
) -> Admitted:
    """Check the token against the call item, then claim the call for this stream.

    The store is reached off the event loop (``AsyncStore``); when it does not answer, the stream
    is refused with ``SERVER_ERROR`` and nothing is written.
    """
    try:
        record = await store.get_call(start.call_id)
    except (CallkitError, TimeoutError) as exc:
        raise AdmissionRefusedError(
            f"store unavailable: {type(exc).__name__}", close_code=SERVER_ERROR
        ) from exc
    if record is None or record.carrier != carrier.NAME:
        raise AdmissionRefusedError("unknown call")
    interface = next((i for i in candidates if i.phone_number == record.to_number), None) or next(
        (i for i in candidates if i.pipeline == record.pipeline), None
    )
    if interface is None or interface.pipeline != record.pipeline:
        raise AdmissionRefusedError("no interface for this call")
    try:
        credentials.stream_tokens().verify(
            start.parameters.get("token", ""), call_id=start.call_id, pipeline=record.pipeline
        )
        claimed = await store.claim_stream(start.call_id, start.stream_id, now=now)
    except TokenError as exc:
        raise AdmissionRefusedError(f"stream token: {type(exc).__name__}") from exc
    except (CallNotFoundError, TransitionError) as exc:
        raise AdmissionRefusedError(f"claim: {type(exc).__name__}") from exc
    except (CallkitError, TimeoutError) as exc:
        raise AdmissionRefusedError(
            f"store unavailable: {type(exc).__name__}", close_code=SERVER_ERROR
        ) from exc
    return Admitted(carrier=carrier, interface=interface, call=claimed, start=start)


def log_refusal(telemetry: Telemetry, reason: str) -> None:
    telemetry.warning("media stream refused", reason=reason)
    telemetry.count("StreamsRefused")
