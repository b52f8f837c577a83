"""Twilio's wire formats (docs/protocols/twilio.md), sans-I/O.

Same shape as ``callkit.carriers.plivo``: parse webhooks, compute and verify signatures, render
the answer, encode and decode Media Streams frames. ConversationRelay (``relay``) is Twilio's
alone.
"""

from __future__ import annotations

from typing import Final

from callkit.carriers.twilio.media_stream import (
    decode_stream_command,
    decode_stream_message,
    encode_clear,
    encode_mark,
    encode_play_audio,
    encode_stream_event,
)
from callkit.carriers.twilio.relay import (
    RelayCommand,
    RelayDtmf,
    RelayEnd,
    RelayError,
    RelayEvent,
    RelayInfo,
    RelayInterrupt,
    RelayLanguage,
    RelayPlay,
    RelayPrompt,
    RelaySendDigits,
    RelaySetup,
    RelayText,
    decode_relay_command,
    decode_relay_message,
    encode_end,
    encode_language,
    encode_play,
    encode_relay_event,
    encode_send_digits,
    encode_text,
)
from callkit.carriers.twilio.rest import API_URL, hangup_request, say_and_hangup_request, transfer_request
from callkit.carriers.twilio.signature import (
    compute_signature,
    signature_headers,
    verify_request,
    verify_websocket_handshake,
)
from callkit.carriers.twilio.twiml import render_answer
from callkit.carriers.twilio.webhooks import parse_incoming_call, parse_relay_ended, parse_status_update

NAME: Final = "twilio"
#: Lower-case header names whose presence identifies a Twilio request.
SIGNATURE_HEADERS: Final = ("x-twilio-signature",)
ANSWER_CONTENT_TYPE: Final = "text/xml"

__all__ = [
    "ANSWER_CONTENT_TYPE",
    "API_URL",
    "NAME",
    "SIGNATURE_HEADERS",
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
    "compute_signature",
    "decode_relay_command",
    "decode_relay_message",
    "decode_stream_command",
    "decode_stream_message",
    "encode_clear",
    "encode_end",
    "encode_language",
    "encode_mark",
    "encode_play",
    "encode_play_audio",
    "encode_relay_event",
    "encode_send_digits",
    "encode_stream_event",
    "encode_text",
    "hangup_request",
    "parse_incoming_call",
    "parse_relay_ended",
    "parse_status_update",
    "render_answer",
    "say_and_hangup_request",
    "signature_headers",
    "transfer_request",
    "verify_request",
    "verify_websocket_handshake",
]
