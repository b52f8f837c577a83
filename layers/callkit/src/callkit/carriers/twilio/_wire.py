"""Helpers shared by the Media Streams and ConversationRelay codecs: checked decode, counters, base64."""

from __future__ import annotations

import binascii

import msgspec

from callkit.carriers._frames import DECODE_ERRORS, check_frame, counter
from callkit.errors import ProtocolError, UnknownEventError

__all__ = ["b64decode", "counter", "decode"]

_ENVELOPE = msgspec.json.Decoder(dict[str, object])


def decode[T](decoder: msgspec.json.Decoder[T], tag_field: str, tags: frozenset[str], text: str | bytes) -> T:
    """Decode ``text`` with ``decoder`` (a tagged union of wire Structs whose tag values are ``tags``).

    Raises ``UnknownEventError`` when the frame is a JSON object whose tag is a string not in
    ``tags``, ``ProtocolError`` for anything else that does not fit.
    """
    frame = check_frame(text)
    try:
        return decoder.decode(frame)
    except DECODE_ERRORS as exc:
        error = exc
    # Only on the error path: find out whether the tag itself was the problem.
    try:
        envelope = _ENVELOPE.decode(frame)
    except DECODE_ERRORS:
        envelope = {}
    tag = envelope.get(tag_field)
    if isinstance(tag, str) and tag not in tags:
        raise UnknownEventError(tag) from None
    raise ProtocolError(f"malformed frame: {error}") from None


def b64decode(payload: str, name: str) -> bytes:
    """Strict standard base64 (padding required, no whitespace)."""
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except ValueError:
        raise ProtocolError(f"{name} is not valid base64") from None
