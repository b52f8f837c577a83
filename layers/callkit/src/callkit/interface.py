"""``CallInterface``: how one phone number reaches one agent.

The parameters and their defaults follow the "Call interface" of the definable agent framework so its
examples port by changing import lines (docs/architecture.md §1). Everything is checked at construction: a
combination that cannot work raises ``ConfigurationError`` with a message that says what to do.
Credentials fall back to the carriers' usual environment variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

from callkit.errors import ConfigurationError

if TYPE_CHECKING:
    from callkit.agent import Agent
    from callkit.call.phrases import Phrases
    from callkit.realtime import RealtimeConfig
    from callkit.stt import STTConfig
    from callkit.tts import TTSConfig

Provider = Literal["twilio", "plivo"]
Pipeline = Literal["managed", "cascading", "realtime"]
Interruptible = Literal["none", "dtmf", "speech", "any"]
Sensitivity = Literal["low", "medium", "high"]

ENV_TWILIO_ACCOUNT_SID: Final = "TWILIO_ACCOUNT_SID"
ENV_TWILIO_AUTH_TOKEN: Final = "TWILIO_AUTH_TOKEN"
ENV_PLIVO_AUTH_ID: Final = "PLIVO_AUTH_ID"
ENV_PLIVO_AUTH_TOKEN: Final = "PLIVO_AUTH_TOKEN"

#: ConversationRelay ``ttsProvider`` / ``transcriptionProvider`` values (docs/protocols/twilio.md §3), keyed by the
#: lower-case names the seed API uses.
RELAY_TTS_PROVIDERS: Final[Mapping[str, str]] = {
    "google": "Google",
    "amazon": "Amazon",
    "elevenlabs": "ElevenLabs",
}
RELAY_STT_PROVIDERS: Final[Mapping[str, str]] = {"deepgram": "Deepgram", "google": "Google"}

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def _choice[T: str](name: str, value: str, allowed: tuple[T, ...]) -> T:
    for option in allowed:
        if value == option:
            return option
    raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(repr(a) for a in allowed)}")


def _credential(explicit: str, env_name: str) -> str:
    return explicit or os.environ.get(env_name, "")


@dataclass(frozen=True, slots=True)
class Credentials:
    """Carrier credentials. ``account_id`` is the Twilio Account SID or the Plivo Auth ID."""

    account_id: str
    auth_token: str = ""

    def __repr__(self) -> str:  # never print the token
        return f"Credentials(account_id={self.account_id!r}, auth_token={'***' if self.auth_token else ''!r})"


class CallInterface:
    """A phone number, the carrier that serves it, and the voice pipeline that connects it to an agent.

    Args:
        agent: the ``Agent`` that answers (may be bound later with ``bind``).
        provider: ``"twilio"`` or ``"plivo"``.
        phone_number: the number callers dial, E.164 (``+15551234567``).
        account_sid / auth_token / auth_id: credentials; default to ``TWILIO_ACCOUNT_SID``,
            ``TWILIO_AUTH_TOKEN``, ``PLIVO_AUTH_ID``, ``PLIVO_AUTH_TOKEN``. The auth token verifies
            the carrier's webhook signatures; without one every webhook is refused.
        pipeline: ``"managed"`` (Twilio ConversationRelay does speech), ``"cascading"`` (``stt`` →
            agent → ``tts``) or ``"realtime"`` (speech-to-speech ``realtime``).
        stt / tts / realtime: provider configurations; every call opens its own connections.
        welcome_message: spoken when the call connects.
        voice / language: TTS voice and BCP-47 language.
        interruptible: when the caller may cut the agent off: none, dtmf, speech or any.
        interrupt_sensitivity: barge-in sensitivity: low, medium or high.
        stt_provider / tts_provider: ConversationRelay providers in managed mode.
        webhook_path / stream_path: HTTP path of the incoming-call webhook and WebSocket path of
            the media stream. The status callback lives at ``webhook_path + "/status"``.
        max_call_duration_seconds: the call ends after this long, whatever happens.
        phrases: the words callkit itself says (goodbye, apology, ...); default: the table for
            ``language`` in ``callkit.call.phrases`` (English when it has none).
    """

    __slots__ = (
        "_agent",
        "credentials",
        "interrupt_sensitivity",
        "interruptible",
        "language",
        "max_call_duration_seconds",
        "phone_number",
        "phrases",
        "pipeline",
        "provider",
        "realtime",
        "stream_path",
        "stt",
        "stt_provider",
        "tts",
        "tts_provider",
        "voice",
        "webhook_path",
        "welcome_message",
    )

    def __init__(
        self,
        *,
        agent: Agent | None = None,
        provider: str = "twilio",
        phone_number: str = "",
        account_sid: str = "",
        auth_token: str = "",
        auth_id: str = "",
        pipeline: str = "managed",
        stt: STTConfig | None = None,
        tts: TTSConfig | None = None,
        realtime: RealtimeConfig | None = None,
        welcome_message: str | None = None,
        voice: str = "en-US-Standard-A",
        language: str = "en-US",
        interruptible: str = "any",
        interrupt_sensitivity: str = "medium",
        stt_provider: str = "deepgram",
        tts_provider: str = "google",
        webhook_path: str = "/call/incoming",
        stream_path: str = "/call/stream",
        max_call_duration_seconds: int = 3600,
        phrases: Phrases | None = None,
    ) -> None:
        self.provider: Provider = _choice("provider", provider, get_args(Provider))
        self.pipeline: Pipeline = _choice("pipeline", pipeline, get_args(Pipeline))
        self.interruptible: Interruptible = _choice("interruptible", interruptible, get_args(Interruptible))
        self.interrupt_sensitivity: Sensitivity = _choice(
            "interrupt_sensitivity", interrupt_sensitivity, get_args(Sensitivity)
        )
        if not _E164.match(phone_number):
            raise ConfigurationError(
                f"phone_number={phone_number!r} is not E.164: write it as '+' followed by the country code "
                "and number, digits only, e.g. '+15551234567'"
            )
        self.phone_number = phone_number
        if self.provider == "plivo" and self.pipeline == "managed":
            raise ConfigurationError(
                "Plivo has no managed mode (no ConversationRelay equivalent): use pipeline='cascading' "
                "with stt= and tts=, or pipeline='realtime' with realtime="
            )
        if self.pipeline == "cascading" and (stt is None or tts is None):
            raise ConfigurationError(
                "pipeline='cascading' needs stt= and tts=, e.g. stt=DeepgramSTT(), tts=CartesiaTTS(voice_id=...)"
            )
        if self.pipeline == "realtime" and realtime is None:
            raise ConfigurationError(
                "pipeline='realtime' needs realtime=, e.g. realtime=OpenAIRealtimeProvider()"
            )
        stt_key, tts_key = stt_provider.lower(), tts_provider.lower()
        if stt_key not in RELAY_STT_PROVIDERS:
            raise ConfigurationError(
                f"stt_provider={stt_provider!r} is not one of {', '.join(map(repr, RELAY_STT_PROVIDERS))}"
            )
        if tts_key not in RELAY_TTS_PROVIDERS:
            raise ConfigurationError(
                f"tts_provider={tts_provider!r} is not one of {', '.join(map(repr, RELAY_TTS_PROVIDERS))}"
            )
        if not _LANGUAGE.match(language):
            raise ConfigurationError(f"language={language!r} is not a BCP-47 tag such as 'en-US'")
        for name, path in (("webhook_path", webhook_path), ("stream_path", stream_path)):
            if not _PATH.match(path):
                raise ConfigurationError(
                    f"{name}={path!r} must be an absolute URL path such as '/call/incoming' "
                    "(letters, digits, '.', '_', '~', '-' between slashes; no trailing slash, no query)"
                )
        if webhook_path == stream_path:
            raise ConfigurationError("webhook_path and stream_path must differ")
        if isinstance(max_call_duration_seconds, bool) or not 1 <= max_call_duration_seconds <= 4 * 3600:
            raise ConfigurationError(
                f"max_call_duration_seconds={max_call_duration_seconds!r} must be between 1 and 14400 (4 hours; "
                "Twilio ends calls at 4 h)"
            )
        self.stt_provider = stt_key
        self.tts_provider = tts_key
        self.stt, self.tts, self.realtime = stt, tts, realtime
        self.welcome_message = welcome_message or None
        self.voice = voice
        self.language = language
        self.webhook_path = webhook_path
        self.stream_path = stream_path
        self.max_call_duration_seconds = max_call_duration_seconds
        self.phrases = phrases
        if self.provider == "twilio":
            self.credentials = Credentials(
                _credential(account_sid, ENV_TWILIO_ACCOUNT_SID),
                _credential(auth_token, ENV_TWILIO_AUTH_TOKEN),
            )
        else:
            self.credentials = Credentials(
                _credential(auth_id, ENV_PLIVO_AUTH_ID), _credential(auth_token, ENV_PLIVO_AUTH_TOKEN)
            )
        self._agent = agent

    @property
    def agent(self) -> Agent | None:
        return self._agent

    def bind(self, agent: Agent) -> CallInterface:
        """Attach the agent that answers this interface's calls; returns ``self``."""
        self._agent = agent
        return self

    @property
    def status_path(self) -> str:
        """Where status callbacks (Twilio statusCallback, Plivo Hangup URL) are received."""
        return f"{self.webhook_path}/status"

    @property
    def relay_ended_path(self) -> str:
        """Where Twilio reports the end of a ConversationRelay session (``<Connect action>``, managed mode)."""
        return f"{self.webhook_path}/relay-ended"

    @property
    def transfer_path(self) -> str:
        """Where Plivo fetches the ``<Dial>`` of a call we transfer (stream pipelines, Plivo only)."""
        return f"{self.webhook_path}/transfer"

    def __repr__(self) -> str:
        return (
            f"CallInterface(provider={self.provider!r}, pipeline={self.pipeline!r}, "
            f"webhook_path={self.webhook_path!r}, stream_path={self.stream_path!r})"
        )
