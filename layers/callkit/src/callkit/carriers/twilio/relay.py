"""ConversationRelay messages (docs/protocols/twilio.md §5): JSON text frames with a ``type`` field, sans-I/O.

Twilio does STT and TTS; it sends us ``setup``/``prompt``/``dtmf``/``interrupt``/``error``/``info``
and we send ``text``/``play``/``sendDigits``/``language``/``end``. Both directions are encoded and
decoded here, so the fake carrier speaks exactly what the real one does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from callkit.carriers.twilio._relay_wire import (
    COMMAND_TAGS,
    COMMANDS,
    EVENT_TAGS,
    EVENTS,
    CommandFrame,
    DtmfFrame,
    EndFrame,
    ErrorFrame,
    EventFrame,
    InfoFrame,
    InterruptFrame,
    LanguageFrame,
    PlayFrame,
    PromptFrame,
    SendDigitsFrame,
    SetupFrame,
    TextFrame,
)
from callkit.carriers.twilio._wire import decode
from callkit.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "RelayCommand",
    "RelayDtmf",
    "RelayEnd",
    "RelayError",
    "RelayEvent",
    "RelayInfo",
    "RelayInterrupt",
    "RelayLanguage",
    "RelayPlay",
    "RelayPrompt",
    "RelaySendDigits",
    "RelaySetup",
    "RelayText",
    "decode_relay_command",
    "decode_relay_message",
    "encode_end",
    "encode_language",
    "encode_play",
    "encode_relay_event",
    "encode_send_digits",
    "encode_text",
]

# --- events: Twilio -> us ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelaySetup:
    """First frame of a session. Optional wire fields Twilio sends as ``""`` stay ``""``."""

    session_id: str
    call_id: str
    account_id: str
    from_number: str
    to_number: str
    direction: str = ""
    #: Upper-case on this socket (``RINGING``, ``IN-PROGRESS``), unlike the webhooks.
    call_status: str = ""
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    parent_call_id: str = ""
    forwarded_from: str = ""
    caller_name: str = ""
    call_type: str = ""


@dataclass(frozen=True, slots=True)
class RelayPrompt:
    """What the caller said; ``last`` is False only for partial prompts (``partialPrompts``)."""

    text: str
    lang: str | None = None
    last: bool = True


@dataclass(frozen=True, slots=True)
class RelayDtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class RelayInterrupt:
    """Barge-in: Twilio already stopped TTS; only ``utterance_until_interrupt`` was heard."""

    utterance_until_interrupt: str
    duration_until_interrupt_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RelayError:
    description: str


@dataclass(frozen=True, slots=True)
class RelayInfo:
    """A subscribed ``info`` event; ``value`` is rendered as text whatever its JSON type."""

    name: str
    value: str = ""


RelayEvent = RelaySetup | RelayPrompt | RelayDtmf | RelayInterrupt | RelayError | RelayInfo

# --- commands: us -> Twilio --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayText:
    token: str
    last: bool = False
    lang: str | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None


@dataclass(frozen=True, slots=True)
class RelayPlay:
    source: str
    loop: int = 1
    preemptible: bool | None = None
    interruptible: bool | None = None


@dataclass(frozen=True, slots=True)
class RelaySendDigits:
    digits: str


@dataclass(frozen=True, slots=True)
class RelayLanguage:
    tts_language: str | None = None
    transcription_language: str | None = None


@dataclass(frozen=True, slots=True)
class RelayEnd:
    handoff_data: str | None = None


RelayCommand = RelayText | RelayPlay | RelaySendDigits | RelayLanguage | RelayEnd

_ENCODER = msgspec.json.Encoder()
_DIGITS = re.compile(r"[0-9*#w]+")


def _json(wire: EventFrame | CommandFrame) -> str:
    return _ENCODER.encode(wire).decode("utf-8")


def _duration_ms(value: int | float | str | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        if value < 0:
            raise ProtocolError("durationUntilInterruptMs must not be negative")
        return value
    if isinstance(value, float):
        number = value
    else:
        try:
            number = float(value)
        except ValueError:
            raise ProtocolError("durationUntilInterruptMs is not a number") from None
    if not (math.isfinite(number) and number >= 0):
        raise ProtocolError("durationUntilInterruptMs must be a finite, non-negative number")
    return int(number)


def _info_value(value: str | int | float | bool | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    # JSON spelling for booleans and numbers, so "true" is not rendered as "True".
    return _ENCODER.encode(value).decode("ascii")


def decode_relay_message(text: str | bytes) -> RelayEvent:
    """Decode one frame Twilio sent on a ConversationRelay socket.

    Raises ``MessageTooLargeError`` (checked before parsing), ``UnknownEventError`` for a
    well-formed frame with a ``type`` we do not know, ``ProtocolError`` for anything else.
    """
    wire = decode(EVENTS, "type", EVENT_TAGS, text)
    match wire:
        case PromptFrame():
            last = True if wire.last is None else wire.last
            return RelayPrompt(text=wire.voice_prompt, lang=wire.lang, last=last)
        case SetupFrame():
            return RelaySetup(
                session_id=wire.session_id,
                call_id=wire.call_sid,
                account_id=wire.account_sid,
                from_number=wire.from_,
                to_number=wire.to,
                direction=wire.direction,
                call_status=wire.call_status,
                custom_parameters=wire.custom_parameters,
                parent_call_id=wire.parent_call_sid,
                forwarded_from=wire.forwarded_from,
                caller_name=wire.caller_name,
                call_type=wire.call_type,
            )
        case DtmfFrame():
            return RelayDtmf(digit=wire.digit)
        case InterruptFrame():
            duration = _duration_ms(wire.duration_until_interrupt_ms)
            return RelayInterrupt(wire.utterance_until_interrupt, duration_until_interrupt_ms=duration)
        case ErrorFrame():
            return RelayError(description=wire.description)
        case InfoFrame():
            return RelayInfo(name=wire.name, value=_info_value(wire.value))


def encode_relay_event(event: RelayEvent) -> str:
    """Encode ``event`` as Twilio would send it (for the fake carrier)."""
    wire: EventFrame
    match event:
        case RelaySetup():
            wire = SetupFrame(
                session_id=event.session_id,
                account_sid=event.account_id,
                call_sid=event.call_id,
                from_=event.from_number,
                to=event.to_number,
                direction=event.direction,
                call_status=event.call_status,
                custom_parameters=dict(event.custom_parameters),
                parent_call_sid=event.parent_call_id,
                forwarded_from=event.forwarded_from,
                caller_name=event.caller_name,
                call_type=event.call_type,
            )
        case RelayPrompt():
            wire = PromptFrame(voice_prompt=event.text, lang=event.lang, last=event.last)
        case RelayDtmf():
            wire = DtmfFrame(digit=event.digit)
        case RelayInterrupt():
            wire = InterruptFrame(event.utterance_until_interrupt, event.duration_until_interrupt_ms)
        case RelayError():
            wire = ErrorFrame(description=event.description)
        case RelayInfo():
            wire = InfoFrame(name=event.name, value=event.value)
    return _json(wire)


def _check_digits(digits: str) -> None:
    if not _DIGITS.fullmatch(digits):
        raise ProtocolError("sendDigits takes only 0-9, *, # and w (docs/protocols/twilio.md §5)")


def encode_text(
    token: str,
    *,
    last: bool,
    lang: str | None = None,
    interruptible: bool | None = None,
    preemptible: bool | None = None,
) -> str:
    """Speak ``token`` (stream LLM tokens as they come; ``last=True`` ends the talk cycle)."""
    wire = TextFrame(token=token, last=last, lang=lang, interruptible=interruptible, preemptible=preemptible)
    return _json(wire)


def encode_play(
    source: str, *, loop: int = 1, preemptible: bool | None = None, interruptible: bool | None = None
) -> str:
    """Play the audio file at ``source`` (an https URL); ``loop=0`` repeats ~1000 times."""
    if loop < 0:
        raise ProtocolError("play loop must not be negative")
    return _json(PlayFrame(source=source, loop=loop, preemptible=preemptible, interruptible=interruptible))


def encode_send_digits(digits: str) -> str:
    """Send DTMF on the call; raises ``ProtocolError`` unless ``digits`` matches ``[0-9*#w]+``."""
    _check_digits(digits)
    return _json(SendDigitsFrame(digits=digits))


def encode_language(tts_language: str | None = None, transcription_language: str | None = None) -> str:
    """Switch TTS and/or STT language; raises ``ProtocolError`` when both are ``None``."""
    if tts_language is None and transcription_language is None:
        raise ProtocolError("a language message needs ttsLanguage or transcriptionLanguage")
    return _json(LanguageFrame(tts_language=tts_language, transcription_language=transcription_language))


def encode_end(handoff_data: str | None) -> str:
    """End the session; ``handoff_data`` reaches the ``<Connect action>`` callback as ``HandoffData``."""
    return _json(EndFrame(handoff_data=handoff_data))


def decode_relay_command(text: str | bytes) -> RelayCommand:
    """Decode a frame we sent (for the fake carrier); same errors as ``decode_relay_message``.

    Frames Twilio would reject (bad digits, empty language, negative loop) raise ``ProtocolError``.
    """
    wire = decode(COMMANDS, "type", COMMAND_TAGS, text)
    match wire:
        case TextFrame():
            return RelayText(
                token=wire.token,
                last=bool(wire.last),
                lang=wire.lang,
                interruptible=wire.interruptible,
                preemptible=wire.preemptible,
            )
        case PlayFrame():
            loop = 1 if wire.loop is None else wire.loop
            if loop < 0:
                raise ProtocolError("play loop must not be negative")
            return RelayPlay(
                wire.source, loop, preemptible=wire.preemptible, interruptible=wire.interruptible
            )
        case SendDigitsFrame():
            _check_digits(wire.digits)
            return RelaySendDigits(digits=wire.digits)
        case LanguageFrame():
            if wire.tts_language is None and wire.transcription_language is None:
                raise ProtocolError("a language message needs ttsLanguage or transcriptionLanguage")
            return RelayLanguage(wire.tts_language, wire.transcription_language)
        case EndFrame():
            return RelayEnd(handoff_data=wire.handoff_data)
