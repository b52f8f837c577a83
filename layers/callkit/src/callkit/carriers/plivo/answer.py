"""Plivo XML answers to the Answer URL (docs/protocols/plivo.md §3), built by hand to keep the cold path light."""

from __future__ import annotations

import re
from typing import Final

from callkit.carriers._types import Answer, DialAnswer, HangupAnswer, RelayAnswer, StreamAnswer
from callkit.errors import ProtocolError, UnsupportedError

ANSWER_CONTENT_TYPE: Final = "application/xml"

_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>'
# Attribute-value normalisation would turn raw tab/newline/CR into spaces, and parsers fold a raw
# CR in text into LF, so those travel as character references.
_ATTRIBUTE_ENTITIES: Final = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ('"', "&quot;"),
    ("\t", "&#9;"),
    ("\n", "&#10;"),
    ("\r", "&#13;"),
)
_TEXT_ENTITIES: Final = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;"))
# Characters XML 1.0 cannot carry at all, not even as references.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# extraHeaders keys and values may only hold [A-Za-z0-9], the whole attribute at most 512 bytes.
_EXTRA_HEADER_VALUE: Final = re.compile(r"[A-Za-z0-9]+")
_EXTRA_HEADERS_MAX_BYTES: Final = 512


def render_answer(answer: Answer) -> str:
    """The complete Plivo XML document for ``answer``.

    Raises ``UnsupportedError`` for ``RelayAnswer`` (Plivo has no managed relay) and
    ``ProtocolError`` for a value Plivo XML cannot carry (a token outside ``[A-Za-z0-9]``, control
    characters).
    """
    if isinstance(answer, RelayAnswer):
        raise UnsupportedError(
            "Plivo has no managed (ConversationRelay) mode; use pipeline='cascading' or 'realtime'"
        )
    if isinstance(answer, StreamAnswer):
        body = _stream(answer)
    elif isinstance(answer, DialAnswer):
        # Plivo writes numbers without the leading '+' (docs/protocols/plivo.md §1).
        number = _element("Number", {}, answer.number.lstrip("+"))
        body = f'<Dial timeout="{answer.timeout_seconds}">{number}</Dial>'
    elif isinstance(answer, HangupAnswer):
        body = "<Hangup/>"
    else:
        body = _element("Speak", {"language": answer.language}, answer.message) + "<Hangup/>"
    return f"{_DECLARATION}<Response>{body}</Response>"


def _stream(answer: StreamAnswer) -> str:
    if not _EXTRA_HEADER_VALUE.fullmatch(answer.token):
        raise ProtocolError("a Plivo stream token may only contain [A-Za-z0-9] (extraHeaders)")
    extra_headers = f"token={answer.token}"
    if len(extra_headers) > _EXTRA_HEADERS_MAX_BYTES:
        raise ProtocolError(f"Plivo extraHeaders are limited to {_EXTRA_HEADERS_MAX_BYTES} bytes")
    attributes = {
        # bidirectional lets us play audio back; it requires audioTrack="inbound". keepCallAlive
        # holds the call until the stream closes instead of ending it after the XML (docs/protocols/plivo.md §3).
        "bidirectional": "true",
        "keepCallAlive": "true",
        "audioTrack": "inbound",
        "contentType": answer.content_type,
        "extraHeaders": extra_headers,
    }
    if answer.status_callback_url is not None:
        attributes["statusCallbackUrl"] = answer.status_callback_url
    # The WebSocket URL is the element text, with no whitespace around it.
    return _element("Stream", attributes, answer.url)


def _element(tag: str, attributes: dict[str, str], text: str) -> str:
    rendered = "".join(f' {name}="{_attribute(value)}"' for name, value in attributes.items())
    return f"<{tag}{rendered}>{_text(text)}</{tag}>"


def _attribute(value: str) -> str:
    return _escape(value, _ATTRIBUTE_ENTITIES)


def _text(value: str) -> str:
    return _escape(value, _TEXT_ENTITIES)


def _escape(value: str, entities: tuple[tuple[str, str], ...]) -> str:
    # By hand rather than xml.sax.saxutils.escape, whose module imports urllib.request (~30 ms on
    # the Lambda cold path). "&" goes first so no reference is escaped twice.
    if _NOT_XML.search(value):
        raise ProtocolError("value contains characters XML 1.0 cannot carry")
    for character, reference in entities:
        value = value.replace(character, reference)
    return value
