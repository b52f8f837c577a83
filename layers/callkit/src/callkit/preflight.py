"""Startup checks: what each interface's calls will need, checked before the phone rings.

A missing key found at startup is one line with its fix; found mid-call it is dead air. Each
process checks what its own part of a call needs (``Component``):

* ``runtime``: ``AgentRuntime``, everything in one process (and ``callkit doctor``);
* ``webhook``: the webhook function answers calls: auth tokens, the relay or media URL, the
  stream-token key;
* ``relay``: the relay function holds managed calls: auth tokens, the relay URL, the model key;
* ``media``: the media server holds stream calls: auth tokens, account ids (REST hang-ups and
  transfers), the model, STT, TTS or Realtime keys, the voice, the media URL, the token key.

Pure: interfaces, settings and an environment mapping in, ``Problem``s out; no network (a key is
checked for presence, not validity). ``require`` raises ``PreflightError`` with all of them at
once. ``carrier_console`` says what to paste into the carrier's console.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from callkit.errors import PreflightError
from callkit.interface import (
    ENV_PLIVO_AUTH_ID,
    ENV_PLIVO_AUTH_TOKEN,
    ENV_TWILIO_ACCOUNT_SID,
    ENV_TWILIO_AUTH_TOKEN,
    CallInterface,
)
from callkit.settings import (
    ENV_MEDIA_URL,
    ENV_OPENAI_API_KEY_PARAM,
    ENV_PLIVO_AUTH_TOKEN_PARAM,
    ENV_PUBLIC_URL,
    ENV_RELAY_URL,
    ENV_TOKEN_KEY,
    ENV_TOKEN_KEY_SECRET,
    ENV_TWILIO_AUTH_TOKEN_PARAM,
    Settings,
)

__all__ = ["Component", "Problem", "carrier_console", "check", "is_local", "require"]

Component = Literal["runtime", "webhook", "relay", "media"]

ENV_OPENAI_API_KEY: Final = "OPENAI_API_KEY"
ENV_OPENAI_BASE_URL: Final = "OPENAI_BASE_URL"
#: Names no carrier can reach (RFC 6761 ``localhost``, RFC 2606 ``test``, ``invalid``, ``example``):
#: a URL on them is for local runs and tests, where plain ``http``/``ws`` is fine.
_LOCAL_SUFFIXES: Final = (".localhost", ".test", ".invalid", ".example")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing a call would lack: where, which setting (``name``), what is wrong and the fix."""

    subject: str
    name: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}. Fix: {self.fix}"


def is_local(url: str) -> bool:
    """Whether ``url``'s host is this machine or a reserved name only local clients use."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _label(interface: CallInterface) -> str:
    # No phone number: these lines are logged (STYLE 15); the path tells interfaces apart.
    return f"{interface.provider} {interface.pipeline} interface ({interface.webhook_path})"


def check(
    interfaces: Sequence[CallInterface],
    settings: Settings,
    *,
    component: Component = "runtime",
    default_model: bool = True,
    default_streams: bool = True,
    environ: Mapping[str, str] | None = None,
) -> list[Problem]:
    """Everything ``component`` lacks for the calls of ``interfaces``, in a stable order.

    ``default_model=False``: the chat model was given (a fake, a local server), so no model key is
    needed here. ``default_streams=False``: something else holds the media streams (tests), so
    the pipelines' providers and REST credentials are not this process's concern.
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    for interface in interfaces:
        problems += _carrier(interface, settings, component, default_streams)
        problems += _voice(interface, settings, component, default_model, default_streams, env)
    problems += _urls(interfaces, settings, component)
    unique: dict[tuple[str, str], Problem] = {}
    for problem in problems:  # the same missing key for two interfaces is one line per interface
        unique.setdefault((problem.subject, problem.problem), problem)
    return list(unique.values())


def require(problems: Sequence[Problem]) -> None:
    """Raise ``PreflightError`` listing every problem, if there are any."""
    if problems:
        raise PreflightError(problems)


def _carrier(
    interface: CallInterface, settings: Settings, component: Component, default_streams: bool
) -> list[Problem]:
    subject = _label(interface)
    twilio = interface.provider == "twilio"
    problems: list[Problem] = []
    token_param = settings.twilio_auth_token_param if twilio else settings.plivo_auth_token_param
    if not interface.credentials.auth_token and not token_param:
        env_token = ENV_TWILIO_AUTH_TOKEN if twilio else ENV_PLIVO_AUTH_TOKEN
        where = (
            "Twilio Console → Account info → Auth Token"
            if twilio
            else "Plivo Console → Overview → Account → Auth Token"
        )
        param = ENV_TWILIO_AUTH_TOKEN_PARAM if twilio else ENV_PLIVO_AUTH_TOKEN_PARAM
        problems.append(
            Problem(
                subject,
                env_token,
                f"no auth token ({env_token} is not set): the carrier's signatures cannot be checked, "
                "so every call would be refused",
                f"export {env_token}=… ({where}), pass auth_token=, or name its SSM parameter in {param}",
            )
        )
    rest_calls = interface.pipeline != "managed" and default_streams and component in ("runtime", "media")
    if rest_calls and not interface.credentials.account_id:
        env_id = ENV_TWILIO_ACCOUNT_SID if twilio else ENV_PLIVO_AUTH_ID
        argument = "account_sid" if twilio else "auth_id"
        problems.append(
            Problem(
                subject,
                env_id,
                f"no account id ({env_id} is not set): hang-ups and transfers are REST calls that need it",
                f"export {env_id}=… (next to the auth token in the {interface.provider.title()} Console) "
                f"or pass {argument}=",
            )
        )
    return problems


def _voice(
    interface: CallInterface,
    settings: Settings,
    component: Component,
    default_model: bool,
    default_streams: bool,
    env: Mapping[str, str],
) -> list[Problem]:
    subject = _label(interface)
    problems: list[Problem] = []
    managed = interface.pipeline == "managed"
    holds_call = component in ("runtime", "relay") if managed else component in ("runtime", "media")
    if not holds_call or not (managed or default_streams):
        return problems
    if interface.pipeline in ("managed", "cascading") and default_model:
        problems += _model_key(subject, settings, component, env)
    if interface.stt is not None:
        from callkit.stt.deepgram import DEEPGRAM_LISTEN_URL, ENV_DEEPGRAM_API_KEY, DeepgramSTT

        stt = interface.stt
        if isinstance(stt, DeepgramSTT) and not stt.api_key and stt.base_url == DEEPGRAM_LISTEN_URL:
            problems.append(_key(subject, ENV_DEEPGRAM_API_KEY, "Deepgram (speech to text)", "DeepgramSTT"))
    if interface.tts is not None:
        from callkit.tts.cartesia import CARTESIA_TTS_URL, ENV_CARTESIA_API_KEY, CartesiaTTS

        tts = interface.tts
        if isinstance(tts, CartesiaTTS):
            if not tts.api_key and tts.base_url == CARTESIA_TTS_URL:
                problems.append(
                    _key(subject, ENV_CARTESIA_API_KEY, "Cartesia (text to speech)", "CartesiaTTS")
                )
            if not tts.voice_id:
                problems.append(
                    Problem(
                        subject,
                        "voice_id",
                        "CartesiaTTS has no voice_id: every call would fail when it starts to speak",
                        "pass CartesiaTTS(voice_id='<voice UUID>') (Cartesia playground → a voice → Copy ID)",
                    )
                )
    if interface.realtime is not None:
        from callkit.realtime.openai import ENV_OPENAI_API_KEY as ENV_REALTIME_KEY
        from callkit.realtime.openai import OPENAI_REALTIME_URL, OpenAIRealtimeProvider

        realtime = interface.realtime
        if (
            isinstance(realtime, OpenAIRealtimeProvider)
            and not realtime.api_key
            and realtime.base_url == OPENAI_REALTIME_URL
        ):
            problems.append(
                _key(
                    subject, ENV_REALTIME_KEY, "OpenAI Realtime (speech to speech)", "OpenAIRealtimeProvider"
                )
            )
    return problems


def _model_key(
    subject: str, settings: Settings, component: Component, env: Mapping[str, str]
) -> list[Problem]:
    from callkit.llm.openai_chat import DEFAULT_OPENAI_BASE_URL

    if env.get(ENV_OPENAI_API_KEY):
        return []
    if component == "relay" and settings.openai_api_key_param:
        return []  # the relay function reads it from SSM (callkit.relay.deploy)
    base_url = env.get(ENV_OPENAI_BASE_URL, "").rstrip("/")
    if component != "relay" and base_url and base_url != DEFAULT_OPENAI_BASE_URL:
        return []  # another OpenAI-compatible endpoint, perhaps local: it may need no key
    fix = f"export {ENV_OPENAI_API_KEY}=sk-… (platform.openai.com → API keys)"
    if component == "relay":
        fix += f", or name its SSM parameter in {ENV_OPENAI_API_KEY_PARAM}"
    else:
        fix += f"; for another OpenAI-compatible endpoint set {ENV_OPENAI_BASE_URL}, or pass model= to AgentRuntime"
    return [
        Problem(
            subject,
            ENV_OPENAI_API_KEY,
            f"no model API key ({ENV_OPENAI_API_KEY} is not set): the agent could not answer",
            fix,
        )
    ]


def _key(subject: str, env_name: str, service: str, config: str) -> Problem:
    return Problem(
        subject,
        env_name,
        f"no {service} API key ({env_name} is not set): every call would fail when it connects",
        f"export {env_name}=… or pass {config}(api_key=…)",
    )


def _urls(interfaces: Sequence[CallInterface], settings: Settings, component: Component) -> list[Problem]:
    problems: list[Problem] = []
    managed = any(i.pipeline == "managed" for i in interfaces)
    streams = any(i.pipeline != "managed" for i in interfaces)
    if component in ("runtime", "webhook") and settings.public_url:
        problems += _scheme(settings.public_url, ENV_PUBLIC_URL, "https", "webhook")
    if managed and component in ("runtime", "webhook", "relay"):
        if not settings.relay_url:
            problems.append(_unset(ENV_RELAY_URL, "managed calls connect ConversationRelay to it"))
        else:
            problems += _scheme(settings.relay_url, ENV_RELAY_URL, "wss", "ConversationRelay")
    if streams and component in ("runtime", "webhook", "media"):
        if not settings.media_url:
            problems.append(_unset(ENV_MEDIA_URL, "stream calls open their media stream there"))
        else:
            problems += _scheme(settings.media_url, ENV_MEDIA_URL, "wss", "media stream")
        if component != "runtime" and not (settings.token_key or settings.token_key_secret):
            problems.append(
                Problem(
                    "settings",
                    ENV_TOKEN_KEY_SECRET,
                    f"no stream-token key ({ENV_TOKEN_KEY_SECRET} and {ENV_TOKEN_KEY} are unset): "
                    "stream calls could not be admitted",
                    f"set {ENV_TOKEN_KEY_SECRET} to the stack's token secret (the template does), "
                    f"or {ENV_TOKEN_KEY} to 64 hex digits",
                )
            )
    return problems


def _unset(name: str, why: str) -> Problem:
    return Problem("settings", name, f"{name} is not set: {why}", f"set {name} to the stack's output")


def _scheme(url: str, name: str, secure: str, what: str) -> list[Problem]:
    scheme = urlsplit(url).scheme
    if scheme == secure or is_local(url):
        return []
    return [
        Problem(
            "settings",
            name,
            f"{name} is {scheme}:// on a public host: carriers reach the {what} over {secure}:// only",
            f"use the {secure}:// URL of your tunnel or domain (ngrok gives https://…; "
            "AgentRuntime(public_url=) derives the relay and media URLs from it)",
        )
    ]


def carrier_console(interfaces: Sequence[CallInterface], settings: Settings) -> list[str]:
    """What to paste into each carrier's console, one line per interface (logged: no phone numbers)."""
    lines: list[str] = []
    base = settings.public_url or "https://<your API>"
    for interface in interfaces:
        webhook, status = f"{base}{interface.webhook_path}", f"{base}{interface.status_path}"
        if interface.provider == "twilio":
            lines.append(
                f"Twilio ({interface.pipeline}) phone number → Voice configuration → "
                f'"A call comes in": Webhook {webhook} (HTTP POST); "Call status changes": {status}'
            )
        else:
            lines.append(
                f"Plivo ({interface.pipeline}) Voice → Application → "
                f"Answer URL {webhook} (POST); Hangup URL {status} (POST)"
            )
    return lines
