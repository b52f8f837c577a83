"""ConversationRelay wire models (docs/protocols/twilio.md §5): msgspec Structs that mirror the JSON frames."""

from __future__ import annotations

import msgspec

from callkit.carriers._frames import Digit


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    """camelCase names, unknown fields ignored, ``None`` fields omitted.

    Booleans and ``loop`` default to ``None`` rather than their wire default, so an absent field is
    told apart on decode and an explicit ``"last": false`` is still written on encode.
    """


class SetupFrame(_Wire, tag_field="type", tag="setup"):
    session_id: str
    account_sid: str
    call_sid: str
    from_: str = msgspec.field(name="from")
    to: str
    direction: str = ""
    call_status: str = ""
    custom_parameters: dict[str, str] = msgspec.field(default_factory=dict)
    parent_call_sid: str = ""
    forwarded_from: str = ""
    caller_name: str = ""
    call_type: str = ""


class PromptFrame(_Wire, tag_field="type", tag="prompt"):
    voice_prompt: str
    lang: str | None = None
    last: bool | None = None


class DtmfFrame(_Wire, tag_field="type", tag="dtmf"):
    digit: Digit  # one key per frame


class InterruptFrame(_Wire, tag_field="type", tag="interrupt"):
    utterance_until_interrupt: str
    # A number in current docs, a string in older ones (docs/protocols/twilio.md §5): accept both.
    duration_until_interrupt_ms: int | float | str | None = None


class ErrorFrame(_Wire, tag_field="type", tag="error"):
    description: str


class InfoFrame(_Wire, tag_field="type", tag="info"):
    name: str
    value: str | int | float | bool | None = None


class TextFrame(_Wire, tag_field="type", tag="text"):
    token: str
    last: bool | None = None
    lang: str | None = None
    interruptible: bool | None = None
    preemptible: bool | None = None


class PlayFrame(_Wire, tag_field="type", tag="play"):
    source: str
    loop: int | None = None
    preemptible: bool | None = None
    interruptible: bool | None = None


class SendDigitsFrame(_Wire, tag_field="type", tag="sendDigits"):
    digits: str


class LanguageFrame(_Wire, tag_field="type", tag="language"):
    tts_language: str | None = None
    transcription_language: str | None = None


class EndFrame(_Wire, tag_field="type", tag="end"):
    handoff_data: str | None = None


EventFrame = SetupFrame | PromptFrame | DtmfFrame | InterruptFrame | ErrorFrame | InfoFrame
CommandFrame = TextFrame | PlayFrame | SendDigitsFrame | LanguageFrame | EndFrame
EVENTS: msgspec.json.Decoder[EventFrame] = msgspec.json.Decoder(EventFrame)
EVENT_TAGS = frozenset({"setup", "prompt", "dtmf", "interrupt", "error", "info"})
COMMANDS: msgspec.json.Decoder[CommandFrame] = msgspec.json.Decoder(CommandFrame)
COMMAND_TAGS = frozenset({"text", "play", "sendDigits", "language", "end"})
