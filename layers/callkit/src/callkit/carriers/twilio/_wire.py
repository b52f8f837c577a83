"""Helpers shared by the Media Streams and ConversationRelay codecs: size check, decode, counters."""

from __future__ import annotations

import binascii

import msgspec

from callkit.carriers._types import MAX_STREAM_MESSAGE_BYTES
from callkit.errors import MessageTooLargeError, ProtocolError, UnknownEventError

# UTF-8 needs at most 4 bytes per code point, so a str this short cannot be over the limit.
_SAFE_STR_CHARS = MAX_STREAM_MESSAGE_BYTES // 4


def check_size(text: str | bytes) -> None:
    """Raise ``MessageTooLargeError`` for a frame over ``MAX_STREAM_MESSAGE_BYTES`` (before parsing)."""
    if isinstance(text, str):
        if len(text) <= _SAFE_STR_CHARS:
            return
        size = len(text.encode("utf-8", errors="surrogatepass"))
    else:
        size = len(text)
    if size > MAX_STREAM_MESSAGE_BYTES:
        raise MessageTooLargeError(f"frame of {size} bytes is over the {MAX_STREAM_MESSAGE_BYTES} byte limit")


_ENVELOPE = msgspec.json.Decoder(dict[str, object])


def decode[T](decoder: msgspec.json.Decoder[T], tag_field: str, tags: frozenset[str], text: str | bytes) -> T:
    """Decode ``text`` with ``decoder`` (a tagged union of wire Structs whose tag values are ``tags``).

    Raises ``UnknownEventError`` when the frame is a JSON object whose tag is a string not in
    ``tags``, ``ProtocolError`` for anything else that does not fit.
    """
    check_size(text)
    try:
        return decoder.decode(text)
    except (msgspec.DecodeError, UnicodeError) as exc:
        error = exc
    # Only on the error path: find out whether the tag itself was the problem.
    try:
        envelope = _ENVELOPE.decode(text)
    except (msgspec.DecodeError, UnicodeError):
        envelope = {}
    tag = envelope.get(tag_field)
    if isinstance(tag, str) and tag not in tags:
        raise UnknownEventError(tag) from None
    raise ProtocolError(f"malformed frame: {error}") from None


def counter(value: int | str | None, name: str) -> int | None:
    """A Twilio counter (``sequenceNumber``, ``chunk``, ``timestamp``): a decimal string on the wire."""
    if value is None or isinstance(value, int):
        if value is not None and value < 0:
            raise ProtocolError(f"{name} must not be negative")
        return value
    # Length cap: Python refuses int() of over 4300 digits, and no counter gets near 20.
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise ProtocolError(f"{name} is not a decimal counter")
    return int(value)


def b64decode(payload: str, name: str) -> bytes:
    """Strict standard base64 (padding required, no whitespace)."""
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except ValueError:
        raise ProtocolError(f"{name} is not valid base64") from None
