"""Plivo: Answer/Hangup URL webhooks, Signature V3, Plivo XML and audio stream frames (docs/protocols/plivo.md).

Sans-I/O, the same shape as ``callkit.carriers.twilio``. Plivo has no managed relay mode, so
``render_answer`` refuses a ``RelayAnswer``.
"""

from __future__ import annotations

from callkit.carriers.plivo.answer import ANSWER_CONTENT_TYPE, render_answer
from callkit.carriers.plivo.audio_stream import (
    decode_stream_command,
    decode_stream_message,
    encode_clear,
    encode_mark,
    encode_play_audio,
    encode_stream_event,
)
from callkit.carriers.plivo.rest import API_URL, hangup_request, say_and_hangup_request, transfer_request
from callkit.carriers.plivo.signature import (
    SIGNATURE_HEADERS,
    compute_signature,
    signature_headers,
    verify_request,
    verify_websocket_handshake,
)
from callkit.carriers.plivo.webhooks import NAME, parse_incoming_call, parse_status_update

__all__ = [
    "ANSWER_CONTENT_TYPE",
    "API_URL",
    "NAME",
    "SIGNATURE_HEADERS",
    "compute_signature",
    "decode_stream_command",
    "decode_stream_message",
    "encode_clear",
    "encode_mark",
    "encode_play_audio",
    "encode_stream_event",
    "hangup_request",
    "parse_incoming_call",
    "parse_status_update",
    "render_answer",
    "say_and_hangup_request",
    "signature_headers",
    "transfer_request",
    "verify_request",
    "verify_websocket_handshake",
]
