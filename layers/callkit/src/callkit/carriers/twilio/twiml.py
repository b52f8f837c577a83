"""TwiML answers to the incoming-call webhook (docs/protocols/twilio.md §3), built by hand to stay import-light.

Every value is escaped. Characters XML 1.0 cannot carry at all (C0 controls other than tab, CR and
LF; lone surrogates; U+FFFE, U+FFFF) are stripped rather than raised on: they come from
configuration text such as a greeting, and failing the call over an invisible character is worse
than dropping it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from callkit.carriers._types import Answer, DialAnswer, ErrorAnswer, HangupAnswer, RelayAnswer, StreamAnswer
from callkit.errors import UnsupportedError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["render_answer"]

_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Tab, LF and CR as character references: parsers normalise them to spaces (in attributes) or LF.
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# <Stream> carries only μ-law 8 kHz in both directions (docs/protocols/twilio.md §4).
_TWILIO_STREAM_FORMAT = "audio/x-mulaw;rate=8000"


def _text(value: str) -> str:
    return _NOT_XML.sub("", value).translate(_TEXT_ESCAPES)


def _attrs(pairs: Iterable[tuple[str, str | None]]) -> str:
    """`` name="value"`` for each pair whose value is not ``None``."""
    return "".join(
        f' {name}="{_NOT_XML.sub("", value).translate(_ATTR_ESCAPES)}"'
        for name, value in pairs
        if value is not None
    )


def _parameters(parameters: Mapping[str, str]) -> str:
    return "".join(f"<Parameter{_attrs([('name', k), ('value', v)])}/>" for k, v in parameters.items())


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _stream(answer: StreamAnswer) -> str:
    if answer.content_type != _TWILIO_STREAM_FORMAT:
        raise UnsupportedError(f"Twilio Media Streams carry only {_TWILIO_STREAM_FORMAT}")
    stream = _attrs([("url", answer.url), ("statusCallback", answer.status_callback_url)])
    # The stream token travels as a <Parameter>: <Stream url> must not have a query string.
    return f"<Connect><Stream{stream}>{_parameters({'token': answer.token})}</Stream></Connect>"


def _relay(answer: RelayAnswer) -> str:
    greeting = answer.welcome_greeting
    relay = _attrs(
        [
            ("url", answer.url),
            ("welcomeGreeting", greeting),
            # Only meaningful with a greeting; follows the turn-level setting.
            ("welcomeGreetingInterruptible", answer.interruptible if greeting is not None else None),
            ("language", answer.language),
            ("voice", answer.voice),
            ("ttsProvider", answer.tts_provider),
            ("transcriptionProvider", answer.transcription_provider),
            ("interruptible", answer.interruptible),
            ("interruptSensitivity", answer.interrupt_sensitivity),
            ("dtmfDetection", _bool(answer.dtmf_detection)),
        ]
    )
    connect = _attrs([("action", answer.action_url)])
    children = _parameters(answer.parameters)
    return f"<Connect{connect}><ConversationRelay{relay}>{children}</ConversationRelay></Connect>"


def _error(answer: ErrorAnswer) -> str:
    return f"<Say{_attrs([('language', answer.language)])}>{_text(answer.message)}</Say><Hangup/>"


def _dial(answer: DialAnswer) -> str:
    return f"<Dial{_attrs([('timeout', str(answer.timeout_seconds))])}>{_text(answer.number)}</Dial>"


def render_answer(answer: Answer) -> str:
    """A complete TwiML document (serve it as ``text/xml``).

    Raises ``UnsupportedError`` for a ``StreamAnswer`` whose ``content_type`` is not μ-law 8 kHz.
    """
    match answer:
        case StreamAnswer():
            body = _stream(answer)
        case RelayAnswer():
            body = _relay(answer)
        case ErrorAnswer():
            body = _error(answer)
        case DialAnswer():
            body = _dial(answer)
        case HangupAnswer():
            body = "<Hangup/>"
    return f"{_PROLOG}<Response>{body}</Response>"
