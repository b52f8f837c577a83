"""msgspec models mirroring Plivo's audio stream JSON frames (docs/protocols/plivo.md §5), field names as on the wire.

Unknown fields are ignored (Plivo adds some over time); ``event`` is the tag of each union.
"""

from __future__ import annotations

import msgspec

# One DTMF key (0-9, *, #, A-D) and a counter that is a JSON number or a decimal string: Plivo's
# docs show numbers, but its stream SDKs type some (``sequenceNumber`` of ``playedStream``) as strings.
from callkit.carriers._frames import Counter, Digit


class Frame(msgspec.Struct, kw_only=True, omit_defaults=True, tag_field="event"):
    """Base of every frame; ``event`` holds the subclass tag."""


class Envelope(msgspec.Struct):
    """Just the tag, decoded only to tell an unknown event from a malformed one."""

    event: str


# --- Plivo -> us ------------------------------------------------------------------------------


class MediaFormat(msgspec.Struct, kw_only=True):
    encoding: str
    sampleRate: int


class StartBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    callId: str
    streamId: str
    accountId: str = ""
    tracks: list[str] = []
    mediaFormat: MediaFormat


# extra_headers is a string in the docs; a clone sends JSON, so an object is taken too (§5 Uncertain).
ExtraHeaders = str | dict[str, str | int | float | bool | None]


class Start(Frame, tag="start"):
    # No top-level streamId on start (docs/protocols/plivo.md §5).
    start: StartBody
    sequenceNumber: Counter = None
    extra_headers: ExtraHeaders | None = None


class MediaBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    payload: bytes  # base64 on the wire; msgspec decodes it strictly
    track: str | None = None
    timestamp: str | int | None = None  # a numeric string in ms per the docs; opaque ordering value
    chunk: Counter = None


class Media(Frame, tag="media"):
    # Plivo repeats extra_headers on every media frame; left undeclared, so it is skipped, not decoded.
    streamId: str
    media: MediaBody
    sequenceNumber: Counter = None


class DtmfBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    digit: Digit
    track: str | None = None
    timestamp: str | int | None = None


class Dtmf(Frame, tag="dtmf"):
    streamId: str
    dtmf: DtmfBody
    sequenceNumber: Counter = None


class PlayedStream(Frame, tag="playedStream"):
    # A Plivo clone omits streamId and sequenceNumber here (docs/protocols/plivo.md §5 Uncertain).
    name: str
    streamId: str = ""
    sequenceNumber: Counter = None


class Played(PlayedStream, tag="played"):
    """The same acknowledgement under the name one Plivo support article uses."""


class ClearedAudio(Frame, tag="clearedAudio"):
    streamId: str = ""
    sequenceNumber: Counter = None


class StopBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    callId: str | None = None
    streamId: str | None = None


class Stop(Frame, tag="stop"):
    """Legacy: older official samples check for it; current docs end the stream by closing."""

    streamId: str = ""
    stop: StopBody | None = None
    sequenceNumber: Counter = None


Event = Start | Media | Dtmf | PlayedStream | Played | ClearedAudio | Stop
EVENT_TAGS = frozenset({"start", "media", "dtmf", "playedStream", "played", "clearedAudio", "stop"})


# --- us -> Plivo ------------------------------------------------------------------------------


class PlayMedia(msgspec.Struct, kw_only=True):
    contentType: str
    sampleRate: int
    payload: bytes


class PlayAudio(Frame, tag="playAudio"):
    media: PlayMedia
    streamId: str = ""  # optional on the wire


class Checkpoint(Frame, tag="checkpoint"):
    streamId: str
    name: str


class ClearAudio(Frame, tag="clearAudio"):
    streamId: str


Command = PlayAudio | Checkpoint | ClearAudio
COMMAND_TAGS = frozenset({"playAudio", "checkpoint", "clearAudio"})
