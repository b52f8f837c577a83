"""``AudioFormat``: what a run of audio bytes is (encoding and sample rate), as one frozen value.

Pure and numpy-free, so carrier modules and the Lambda functions may use it. The formats in play
(docs/protocols/ai-providers.md §5, docs/protocols/twilio.md §4, docs/protocols/plivo.md §5):

* ``mulaw`` 8 kHz: G.711 μ-law, one byte a sample, 8 bytes a millisecond, 160 bytes per 20-ms
  frame. What Twilio always sends and what every pipeline here consumes end to end.
* ``pcm16`` 8/16/24 kHz: 16-bit signed linear PCM, mono, **little-endian** (Plivo ``audio/x-l16``,
  Cartesia ``pcm_s16le``, OpenAI Realtime ``audio/pcm`` at 24 kHz).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from callkit.errors import ConfigurationError, ProtocolError

Encoding = Literal["mulaw", "pcm16"]

#: Sample rates the kit converts between (telephony, wideband, OpenAI Realtime).
SAMPLE_RATES: Final = (8000, 16000, 24000)

_SAMPLE_WIDTH: Final[dict[str, int]] = {"mulaw": 1, "pcm16": 2}

# MIME type -> (encoding, rate implied by the type or None when the rate must be given).
# ``audio/x-l16`` is little-endian here as on Plivo (docs/protocols/plivo.md §5); RFC 3551 ``audio/L16`` is
# big-endian, so it is deliberately not accepted. ``audio/pcmu``/``audio/pcm`` are OpenAI Realtime's
# format types (docs/protocols/ai-providers.md §3.2): μ-law 8 kHz and PCM16 24 kHz.
_MIME_TYPES: Final[dict[str, tuple[Encoding, int | None]]] = {
    "audio/x-mulaw": ("mulaw", 8000),
    "audio/pcmu": ("mulaw", 8000),
    "audio/x-l16": ("pcm16", None),
    "audio/pcm": ("pcm16", 24000),
}
_CONTENT_TYPE_NAMES: Final[dict[str, str]] = {"mulaw": "audio/x-mulaw", "pcm16": "audio/x-l16"}
_MAX_CONTENT_TYPE_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """The encoding and sample rate of mono audio bytes."""

    encoding: Encoding
    sample_rate: int

    def __post_init__(self) -> None:
        if self.encoding not in _SAMPLE_WIDTH:
            raise ConfigurationError(f"audio encoding must be 'mulaw' or 'pcm16', not {self.encoding!r}")
        if self.sample_rate not in SAMPLE_RATES:
            raise ConfigurationError(f"sample rate must be one of {SAMPLE_RATES}, not {self.sample_rate!r}")

    @property
    def sample_width(self) -> int:
        """Bytes per sample: 1 for μ-law, 2 for PCM16."""
        return _SAMPLE_WIDTH[self.encoding]

    @property
    def samples_per_ms(self) -> int:
        return self.sample_rate // 1000

    @property
    def bytes_per_ms(self) -> int:
        """8 for μ-law 8 kHz, 32 for PCM16 16 kHz, 48 for PCM16 24 kHz."""
        return self.samples_per_ms * self.sample_width

    def frame_samples(self, ms: int) -> int:
        """Samples in ``ms`` milliseconds (160 for 20 ms at 8 kHz)."""
        return self.samples_per_ms * ms

    def frame_bytes(self, ms: int) -> int:
        """Bytes in ``ms`` milliseconds (160 for 20 ms of μ-law 8 kHz)."""
        return self.bytes_per_ms * ms

    def duration_ms(self, n_bytes: int) -> float:
        """How long ``n_bytes`` of this format play (e.g. Realtime ``audio_end_ms``)."""
        return n_bytes / self.bytes_per_ms

    @property
    def content_type(self) -> str:
        """The carrier spelling, as in ``<Stream contentType>``: ``audio/x-mulaw;rate=8000``."""
        return f"{_CONTENT_TYPE_NAMES[self.encoding]};rate={self.sample_rate}"

    @property
    def mime_type(self) -> str:
        """The type without the rate, as Plivo's ``playAudio`` wants it (docs/protocols/plivo.md §5)."""
        return _CONTENT_TYPE_NAMES[self.encoding]

    @classmethod
    def from_content_type(cls, content_type: str, sample_rate: int | None = None) -> AudioFormat:
        """Parse a carrier's content type: ``audio/x-mulaw;rate=8000``, ``audio/x-l16;rate=16000``.

        The rate may come from the string's ``rate`` parameter or from ``sample_rate`` (Twilio's
        and Plivo's ``mediaFormat`` carry ``encoding`` and ``sampleRate`` apart); both given must
        agree. μ-law defaults to 8 kHz; ``audio/x-l16`` needs a rate. Raises ``ProtocolError`` for
        anything else.
        """
        if len(content_type) > _MAX_CONTENT_TYPE_CHARS:
            raise ProtocolError("audio content type is too long")
        mime, *params = (part.strip() for part in content_type.split(";"))
        try:
            encoding, implied_rate = _MIME_TYPES[mime.lower()]
        except KeyError:
            raise ProtocolError(f"unsupported audio content type {mime!r}") from None
        rate = sample_rate
        for param in params:
            key, sep, value = param.partition("=")
            key = key.strip().lower()
            value = value.strip().strip('"')
            if not sep:
                raise ProtocolError(f"malformed audio content type parameter {param!r}")
            if key == "rate":
                if not value.isdigit() or len(value) > 6:
                    raise ProtocolError(f"malformed audio rate {value!r}")
                if rate is not None and rate != int(value):
                    raise ProtocolError(f"audio rate {value} disagrees with sample rate {rate}")
                rate = int(value)
            elif key == "channels" and value != "1":
                raise ProtocolError(f"only mono audio is supported, not channels={value}")
        if rate is None:
            rate = implied_rate
        if rate is None:
            raise ProtocolError(f"{mime} needs a rate")
        if implied_rate is not None and mime.lower() != "audio/x-mulaw" and rate != implied_rate:
            # audio/pcmu and audio/pcm have one fixed rate each.
            raise ProtocolError(f"{mime} is always {implied_rate} Hz, not {rate}")
        try:
            return cls(encoding, rate)
        except ConfigurationError as exc:
            raise ProtocolError(str(exc)) from None


MULAW_8K: Final = AudioFormat("mulaw", 8000)
PCM16_8K: Final = AudioFormat("pcm16", 8000)
PCM16_16K: Final = AudioFormat("pcm16", 16000)
PCM16_24K: Final = AudioFormat("pcm16", 24000)
