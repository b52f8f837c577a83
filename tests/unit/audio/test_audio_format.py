"""``AudioFormat``: sizes, carrier content types, and that it stays numpy-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from callkit.audio import MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K, AudioFormat
from callkit.errors import ConfigurationError, ProtocolError


def test_sizes_of_the_formats_in_play() -> None:
    # docs/protocols/ai-providers.md §5: μ-law 8 kHz is 8 bytes a millisecond, 160 bytes per 20-ms frame.
    assert MULAW_8K.bytes_per_ms == 8
    assert MULAW_8K.frame_bytes(20) == 160
    assert MULAW_8K.frame_samples(20) == 160
    assert PCM16_8K.frame_bytes(20) == 320
    assert PCM16_16K.bytes_per_ms == 32
    assert PCM16_16K.frame_samples(20) == 320
    # docs/protocols/ai-providers.md §3.5: pcm 24 kHz 16-bit -> bytes / 48 per millisecond.
    assert PCM16_24K.bytes_per_ms == 48
    assert PCM16_24K.duration_ms(4800) == 100.0
    assert MULAW_8K.duration_ms(800) == 100.0
    assert (MULAW_8K.sample_width, PCM16_16K.sample_width) == (1, 2)


def test_value_semantics() -> None:
    assert AudioFormat("mulaw", 8000) == MULAW_8K
    assert hash(AudioFormat("pcm16", 16000)) == hash(PCM16_16K)
    with pytest.raises(AttributeError):
        MULAW_8K.sample_rate = 16000  # type: ignore[misc]


@pytest.mark.parametrize(
    ("encoding", "rate"), [("mulaw", 44100), ("pcm16", 22050), ("alaw", 8000), ("pcm16", 0)]
)
def test_unsupported_formats_are_refused(encoding: str, rate: int) -> None:
    with pytest.raises(ConfigurationError):
        AudioFormat(encoding, rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content_type", "sample_rate", "expected"),
    [
        # <Stream> in docs/protocols/twilio.md §3 and docs/protocols/plivo.md §3
        ("audio/x-mulaw;rate=8000", None, MULAW_8K),
        ("audio/x-l16;rate=8000", None, PCM16_8K),
        ("audio/x-l16;rate=16000", None, PCM16_16K),
        ("audio/x-mulaw", 8000, MULAW_8K),  # Twilio/Plivo mediaFormat: encoding + sampleRate
        ("audio/x-l16", 16000, PCM16_16K),  # Plivo playAudio: contentType + sampleRate
        ("audio/x-mulaw", None, MULAW_8K),
        ("Audio/X-L16; rate=16000; channels=1", 16000, PCM16_16K),
        ("audio/pcmu", None, MULAW_8K),  # OpenAI Realtime format types
        ("audio/pcm", None, PCM16_24K),
        ("audio/pcm;rate=24000", None, PCM16_24K),
    ],
)
def test_from_content_type(content_type: str, sample_rate: int | None, expected: AudioFormat) -> None:
    assert AudioFormat.from_content_type(content_type, sample_rate) == expected


@pytest.mark.parametrize(
    ("content_type", "sample_rate"),
    [
        ("audio/wav", None),
        ("audio/L16;rate=16000", None),  # RFC 3551 L16 is big-endian: not what carriers send
        ("audio/x-l16", None),  # no rate
        ("audio/x-l16;rate=16000", 8000),  # disagreeing rates
        ("audio/x-l16;rate=44100", None),
        ("audio/x-l16;rate=abc", None),
        ("audio/x-l16;rate=-8000", None),
        ("audio/x-l16;rate", None),
        ("audio/x-mulaw;rate=8000;channels=2", None),
        ("audio/pcmu;rate=16000", None),
        ("audio/x-mulaw;rate=" + "9" * 300, None),
        ("", None),
    ],
)
def test_from_content_type_refuses(content_type: str, sample_rate: int | None) -> None:
    with pytest.raises(ProtocolError):
        AudioFormat.from_content_type(content_type, sample_rate)


@pytest.mark.parametrize("fmt", [MULAW_8K, PCM16_8K, PCM16_16K, PCM16_24K])
def test_content_type_round_trip(fmt: AudioFormat) -> None:
    assert AudioFormat.from_content_type(fmt.content_type) == fmt
    assert AudioFormat.from_content_type(fmt.mime_type, fmt.sample_rate) == fmt


def test_twilio_stream_format_is_what_the_answer_renders() -> None:
    assert MULAW_8K.content_type == "audio/x-mulaw;rate=8000"
    assert PCM16_16K.content_type == "audio/x-l16;rate=16000"
    assert PCM16_16K.mime_type == "audio/x-l16"


@pytest.mark.slow
def test_numpy_stays_out_of_callkit_and_the_lambda_paths() -> None:
    """numpy is the media extra's: ``import callkit``, the relay handler and AudioFormat go without it."""
    code = (
        "import sys, callkit, callkit.relay.handler, callkit.audio, callkit.audio.format\n"
        "from callkit.audio import AudioFormat, MULAW_8K\n"
        "print('numpy' in sys.modules)\n"
        "from callkit.audio import decode_mulaw\n"
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_unknown_attribute() -> None:
    import callkit.audio

    with pytest.raises(AttributeError):
        _ = callkit.audio.nothing_here
