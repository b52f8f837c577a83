"""What every carrier's stream decoder checks before and around parsing a JSON frame.

The media WebSocket and the relay socket take text from the network, so each decoder must be
total: a frame decodes to an event or raises a ``ProtocolError`` (``MessageTooLargeError`` over
the size limit), never anything else. Three things get in the way of that and are settled here,
once for all carriers:

- size: a frame over ``MAX_STREAM_MESSAGE_BYTES`` is refused before any parser sees it;
- nesting: a parser recurses on nested arrays and objects, so a small frame nested a few thousand
  levels deep raises ``RecursionError``; no carrier frame is nested more than four levels, so more
  than ``MAX_JSON_DEPTH`` is refused before parsing (``check_frame``);
- input that is not text or bytes at all.

Also shared: carrier counters (``sequenceNumber``, ``chunk``, ``timestamp``), which arrive as JSON
numbers or as decimal strings depending on carrier and event, and the DTMF digit vocabulary.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from callkit.carriers._types import MAX_STREAM_MESSAGE_BYTES
from callkit.errors import MessageTooLargeError, ProtocolError

#: Deepest nesting of arrays and objects a frame may have. Twilio's ``start`` frame is three levels
#: (``start.mediaFormat``), Plivo's with a JSON ``extra_headers`` object the same; 16 leaves room.
MAX_JSON_DEPTH: Final = 16

#: The errors a msgspec decode can raise on hostile input. ``RecursionError`` cannot happen once
#: ``check_frame`` has passed, but an untyped (``object``) decode is the one place it would.
DECODE_ERRORS: Final = (msgspec.DecodeError, UnicodeError, RecursionError)

#: One DTMF key: 0-9, * and #, plus the A-D tones of a full 16-key pad (lower case as Plivo may send).
#: ``\Z``, not ``$``: msgspec searches with ``re``, where ``$`` also matches before a final newline.
Digit = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Da-d*#]\Z")]

#: A counter as it may appear on the wire: a JSON number or a decimal string.
Counter = int | str | None

# UTF-8 needs at most 4 bytes per code point, so a str this short cannot be over the limit.
_SAFE_STR_CHARS: Final = MAX_STREAM_MESSAGE_BYTES // 4
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_STRING_BYTES: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS: Final = re.compile(r"[\[\]{}]")
_BRACKETS_BYTES: Final = re.compile(rb"[\[\]{}]")
_OPENING: Final = frozenset({"[", "{", b"[", b"{"})


def check_frame(text: object) -> str | bytes:
    """``text`` if a JSON decoder may be given it; raise ``ProtocolError`` otherwise.

    Refuses anything but ``str`` and bytes-like input, a frame over ``MAX_STREAM_MESSAGE_BYTES``
    (``MessageTooLargeError``) and one whose arrays and objects nest deeper than
    ``MAX_JSON_DEPTH`` (brackets inside strings do not count). ``bytearray`` and ``memoryview``
    come back as ``bytes``.
    """
    if isinstance(text, bytearray | memoryview):
        text = bytes(text)
    if isinstance(text, str):
        size = len(text) if len(text) <= _SAFE_STR_CHARS else len(text.encode("utf-8", "surrogatepass"))
    elif isinstance(text, bytes):
        size = len(text)
    else:
        raise ProtocolError(f"a stream frame is text or bytes, not {type(text).__name__}")
    if size > MAX_STREAM_MESSAGE_BYTES:
        raise MessageTooLargeError(f"frame of {size} bytes is over the {MAX_STREAM_MESSAGE_BYTES} byte limit")
    _check_depth(text)
    return text


def _check_depth(text: str | bytes) -> None:
    if isinstance(text, str):
        # The usual frame has a handful of brackets: counting them (in C) proves it shallow.
        if text.count("{") + text.count("[") <= MAX_JSON_DEPTH:
            return
        brackets: list[str] | list[bytes] = _BRACKETS.findall(_STRING.sub('""', text))
    else:
        if text.count(b"{") + text.count(b"[") <= MAX_JSON_DEPTH:
            return
        brackets = _BRACKETS_BYTES.findall(_STRING_BYTES.sub(b'""', text))
    depth = 0
    for bracket in brackets:
        depth = depth + 1 if bracket in _OPENING else depth - 1
        if depth > MAX_JSON_DEPTH:
            raise ProtocolError(f"frame nested deeper than {MAX_JSON_DEPTH} levels")


def counter(value: Counter, name: str) -> int | None:
    """A non-negative counter from a JSON number or a decimal string; ``ProtocolError`` otherwise."""
    if value is None or isinstance(value, int):
        if value is not None and value < 0:
            raise ProtocolError(f"{name} must not be negative")
        return value
    # Length cap: Python refuses int() of over 4300 digits, and no counter gets near 20.
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise ProtocolError(f"{name} is not a decimal counter")
    return int(value)
