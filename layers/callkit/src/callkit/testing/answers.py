"""Reading answers back the way a carrier would: what does this TwiML / Plivo XML tell it to do?"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """``kind`` is what the carrier will do; ``attributes`` are the connect element's attributes."""

    kind: Literal["stream", "relay", "say-and-hangup", "empty", "other"]
    url: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    spoken: str = ""

    @property
    def token(self) -> str:
        return self.parameters.get("token", "")


def _extra_headers(value: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in value.split(",") if item)
    return {k: v for k, _, v in pairs}


def parse_answer(document: str) -> ParsedAnswer:
    root = ET.fromstring(document)  # noqa: S314
    if root.tag != "Response":
        raise ValueError(f"not a carrier answer: root element <{root.tag}>")
    if len(root) == 0:
        return ParsedAnswer("empty")
    first = root[0]
    if first.tag == "Connect" and len(first):
        inner = first[0]
        params = {p.attrib["name"]: p.attrib["value"] for p in inner if p.tag == "Parameter"}
        kind: Literal["stream", "relay"] = "relay" if inner.tag == "ConversationRelay" else "stream"
        attributes = dict(inner.attrib) | {f"Connect.{k}": v for k, v in first.attrib.items()}
        return ParsedAnswer(kind, inner.attrib.get("url", ""), attributes, params)
    if first.tag == "Stream":  # Plivo: the URL is the element text, the token in extraHeaders
        attributes = dict(first.attrib)
        return ParsedAnswer(
            "stream",
            (first.text or "").strip(),
            attributes,
            _extra_headers(attributes.get("extraHeaders", "")),
        )
    if first.tag in ("Say", "Speak") and any(child.tag == "Hangup" for child in root):
        return ParsedAnswer("say-and-hangup", attributes=dict(first.attrib), spoken=first.text or "")
    return ParsedAnswer("other")
