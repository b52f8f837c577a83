"""Online checks for ``callkit doctor --online``: read-only calls that prove each credential works.

``callkit.preflight`` checks that keys are there; these checks send them. Each ``Probe`` is one
``GET`` that changes nothing:

* Twilio: the account (``GET /2010-04-01/Accounts/{sid}.json``) and, per interface, the number in
  it (``IncomingPhoneNumbers.json?PhoneNumber=``): is it there, does its voice URL point at our
  webhook (docs/protocols/twilio.md §7);
* Plivo: the account (``GET /v1/Account/{auth_id}/``), the number (``.../Number/{digits}/``) and the
  application it links to, whose ``answer_url`` should be our webhook (docs/protocols/plivo.md §7);
* OpenAI: ``GET {base}/models``, and the agent's model in that list; Deepgram: ``GET /v1/projects``;
  Cartesia: ``GET /voices/{voice_id}``, key and voice id at once (docs/protocols/ai-providers.md §6).

``plan`` (interfaces and settings in, probes out) and ``judge`` (a status and a body in, a
``Finding`` or the next probe out) are pure; ``run`` sends the probes concurrently over
``callkit.net.HTTPClient`` (proxies honoured), all within one deadline. A ``Finding`` names a key
only masked (``mask``), and shows no phone number: interfaces are told apart by path.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import msgspec

from callkit.carriers.plivo.rest import API_URL as PLIVO_API_URL
from callkit.carriers.rest import basic_authorization
from callkit.carriers.twilio.rest import API_URL as TWILIO_API_URL
from callkit.errors import ReadTimeoutError, TransportError
from callkit.interface import CallInterface
from callkit.net.http1 import HTTPClient
from callkit.settings import Settings

__all__ = ["FAILED", "Finding", "Probe", "Status", "judge", "mask", "plan", "run"]

Status = Literal["ok", "warning", "skipped", "refused", "missing", "unreachable", "unexpected"]
#: Outcomes that mean a call would fail: ``callkit doctor`` exits 1.
FAILED: Final = frozenset({"refused", "missing", "unreachable", "unexpected"})
DEFAULT_TIMEOUT: Final = 10.0
#: More than any of these answers needs (a model list is tens of kilobytes).
_BODY_LIMIT: Final = 2 * 1024 * 1024
_PLIVO_APPLICATION: Final = re.compile(r"^/v1/Account/[^/]+/Application/[^/]+/$")


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check: ``service`` and ``check`` say what was tried."""

    service: str
    check: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED


type Answer = Callable[[int, bytes], Finding | Probe | None]


@dataclass(frozen=True, slots=True)
class Probe:
    """One read-only ``GET``. ``answer`` reads the response (``None``: the usual reading, see ``judge``)."""

    service: str
    check: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    credential: str  # masked, for the findings
    refused_fix: str
    answer: Answer | None = field(default=None, repr=False, compare=False)


def mask(secret: str) -> str:
    """How a key or token appears in a finding: its last four characters at most, when it is long."""
    return f"…{secret[-4:]}" if len(secret) >= 16 else "***"


# --- the plan ----------------------------------------------------------------------------------------


def plan(
    interfaces: Sequence[CallInterface], settings: Settings, environ: Mapping[str, str] | None = None
) -> list[Probe | Finding]:
    """The probes for ``interfaces``, one per distinct credential and per number; a ``Finding``
    (``skipped``) where a credential is missing (the offline checks say how to set it)."""
    env = os.environ if environ is None else environ
    planned: dict[tuple[str, ...], Probe | Finding] = {}
    for interface in interfaces:
        account, token = interface.credentials.account_id, interface.credentials.auth_token
        twilio = interface.provider == "twilio"
        if not (account and token):
            service = "Twilio" if twilio else "Plivo"
            planned.setdefault(
                (service, "skip"),
                Finding(service, "account", "skipped", "not tried: no account id or auth token"),
            )
            continue
        webhook = f"{settings.public_url}{interface.webhook_path}" if settings.public_url else ""
        if twilio:
            base = (settings.twilio_api_url or TWILIO_API_URL).rstrip("/")
            planned.setdefault(("twilio", base, account, token), _twilio_account(base, account, token))
            number = _twilio_number(base, account, token, interface, webhook)
        else:
            base = (settings.plivo_api_url or PLIVO_API_URL).rstrip("/")
            planned.setdefault(("plivo", base, account, token), _plivo_account(base, account, token))
            number = _plivo_number(base, account, token, interface, webhook)
        planned.setdefault((interface.provider, base, account, number.url, webhook), number)
    for interface in interfaces:
        for key, item in _providers(interface, env):
            planned.setdefault(key, item)
    return list(planned.values())


def _label(interface: CallInterface) -> str:
    return f"{interface.provider} {interface.pipeline} interface ({interface.webhook_path})"


def _https(url: str, suffix: str) -> str:
    """A provider's WebSocket URL as the base of its REST API: ``wss://h/v1/listen`` → ``https://h``."""
    parts = urlsplit(url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/").removesuffix(suffix), "", ""))


def _providers(
    interface: CallInterface, env: Mapping[str, str]
) -> list[tuple[tuple[str, ...], Probe | Finding]]:
    from callkit.llm.openai_chat import DEFAULT_OPENAI_BASE_URL, ENV_OPENAI_API_KEY, ENV_OPENAI_BASE_URL
    from callkit.realtime.openai import OpenAIRealtimeProvider
    from callkit.stt.deepgram import ENV_DEEPGRAM_API_KEY, DeepgramSTT
    from callkit.tts.cartesia import ENV_CARTESIA_API_KEY, CartesiaTTS

    found: list[tuple[tuple[str, ...], Probe | Finding]] = []
    if interface.pipeline in ("managed", "cascading") and interface.agent is not None:
        # The model AgentRuntime and the media server make by default (callkit.runtime).
        key = env.get(ENV_OPENAI_API_KEY, "")
        base = (env.get(ENV_OPENAI_BASE_URL, "") or DEFAULT_OPENAI_BASE_URL).rstrip("/")
        model = interface.agent.model.name
        if key or base != DEFAULT_OPENAI_BASE_URL:  # another endpoint may need no key
            found.append((("openai", base, key, model), _openai(base, key, model, ENV_OPENAI_API_KEY)))
        else:
            found.append((("openai", "skip"), _skipped("OpenAI", "models", ENV_OPENAI_API_KEY)))
    stt, tts, realtime = interface.stt, interface.tts, interface.realtime
    if isinstance(realtime, OpenAIRealtimeProvider):
        base, key, model = _https(realtime.base_url, "/realtime"), realtime.api_key, realtime.model
        if key:
            found.append((("openai", base, key, model), _openai(base, key, model, ENV_OPENAI_API_KEY)))
        else:
            found.append((("openai", "skip"), _skipped("OpenAI", "models", ENV_OPENAI_API_KEY)))
    if isinstance(stt, DeepgramSTT):
        base = _https(stt.base_url, "/v1/listen")
        if stt.api_key:
            found.append((("deepgram", base, stt.api_key), _deepgram(base, stt.api_key)))
        else:
            found.append((("deepgram", "skip"), _skipped("Deepgram", "projects", ENV_DEEPGRAM_API_KEY)))
    if isinstance(tts, CartesiaTTS):
        base = _https(tts.base_url, "/tts/websocket")
        if tts.api_key and tts.voice_id:
            found.append(
                (
                    ("cartesia", base, tts.api_key, tts.voice_id),
                    _cartesia(base, tts.api_key, tts.voice_id, tts.cartesia_version),
                )
            )
        else:
            what = ENV_CARTESIA_API_KEY if not tts.api_key else "voice_id"
            found.append((("cartesia", "skip"), _skipped("Cartesia", "voice", what)))
    return found


def _skipped(service: str, check: str, what: str) -> Finding:
    return Finding(service, check, "skipped", f"not tried: no {what}")


# --- Twilio ------------------------------------------------------------------------------------------


class _TwilioAccount(msgspec.Struct):
    status: str = ""


class _TwilioNumber(msgspec.Struct):
    voice_url: str | None = None
    voice_method: str | None = None
    voice_application_sid: str | None = None


class _TwilioNumbers(msgspec.Struct):
    incoming_phone_numbers: list[_TwilioNumber]


def _twilio_refused(account: str) -> str:
    return (
        f"set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to the pair in Twilio Console → Account info "
        f"(the SID {mask(account)} and its token do not match)"
    )


def _twilio_account(base: str, account: str, token: str) -> Probe:
    def answer(status: int, body: bytes) -> Finding | None:
        if status != 200:
            return None
        state = _decode(body, _TwilioAccount)
        if state is None:
            return _not_understood("Twilio", "account")
        if state.status and state.status != "active":
            return Finding(
                "Twilio",
                "account",
                "warning",
                f"the credentials work, but the account is {state.status}",
                "calls to a suspended or closed account are not answered: see Twilio Console → Billing",
            )
        return Finding("Twilio", "account", "ok", f"account {mask(account)} accepts the auth token")

    return Probe(
        "Twilio",
        "account",
        f"{base}/2010-04-01/Accounts/{quote(account, safe='')}.json",
        {"Authorization": basic_authorization(account, token), "Accept": "application/json"},
        mask(token),
        _twilio_refused(account),
        answer,
    )


def _twilio_number(base: str, account: str, token: str, interface: CallInterface, webhook: str) -> Probe:
    check = f"number of the {_label(interface)}"
    console = 'Twilio Console → Phone Numbers → the number → Voice configuration → "A call comes in"'

    def answer(status: int, body: bytes) -> Finding | None:
        if status != 200:
            return None
        numbers = _decode(body, _TwilioNumbers)
        if numbers is None:
            return _not_understood("Twilio", check)
        if not numbers.incoming_phone_numbers:
            return Finding(
                "Twilio",
                check,
                "missing",
                f"the number is not in account {mask(account)}",
                "use a number of this account (Phone Numbers → Active numbers), or the SID and token "
                "of the account that has it",
            )
        number = numbers.incoming_phone_numbers[0]
        if number.voice_application_sid:
            return Finding(
                "Twilio",
                check,
                "warning",
                f"calls go to TwiML App {number.voice_application_sid}, not straight to a webhook",
                f"set that app's Voice Request URL to {webhook or 'our webhook'} (POST), or in {console} "
                f"choose Webhook {webhook or 'our webhook'}",
            )
        return _compare(
            "Twilio", check, number.voice_url, number.voice_method, webhook, f"{console}: Webhook"
        )

    query = urlencode({"PhoneNumber": interface.phone_number})
    return Probe(
        "Twilio",
        check,
        f"{base}/2010-04-01/Accounts/{quote(account, safe='')}/IncomingPhoneNumbers.json?{query}",
        {"Authorization": basic_authorization(account, token), "Accept": "application/json"},
        mask(token),
        _twilio_refused(account),
        answer,
    )


# --- Plivo -------------------------------------------------------------------------------------------


class _PlivoNumber(msgspec.Struct):
    application: str | None = None


class _PlivoApplication(msgspec.Struct):
    answer_url: str | None = None
    answer_method: str | None = None


def _plivo_refused(account: str) -> str:
    return (
        f"set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN to the pair in Plivo Console → Overview → Account "
        f"(the Auth ID {mask(account)} and its token do not match)"
    )


def _plivo_account(base: str, account: str, token: str) -> Probe:
    def answer(status: int, body: bytes) -> Finding | None:
        if status != 200:
            return None
        return Finding("Plivo", "account", "ok", f"account {mask(account)} accepts the auth token")

    return Probe(
        "Plivo",
        "account",
        f"{base}/v1/Account/{quote(account, safe='')}/",
        {"Authorization": basic_authorization(account, token)},
        mask(token),
        _plivo_refused(account),
        answer,
    )


def _plivo_number(base: str, account: str, token: str, interface: CallInterface, webhook: str) -> Probe:
    check = f"number of the {_label(interface)}"
    headers = {"Authorization": basic_authorization(account, token)}
    console = "Plivo Console → Phone Numbers → the number → Application"
    applications = "Plivo Console → Voice → Applications → the number's application"

    def application(status: int, body: bytes) -> Finding | None:
        if status != 200:
            return None
        app = _decode(body, _PlivoApplication)
        if app is None:
            return _not_understood("Plivo", check)
        return _compare(
            "Plivo", check, app.answer_url, app.answer_method, webhook, f"{applications}: Answer URL"
        )

    def answer(status: int, body: bytes) -> Finding | Probe | None:
        if status == 404:
            return Finding(
                "Plivo",
                check,
                "missing",
                f"the number is not in account {mask(account)}",
                "use a number of this account (Phone Numbers → Your Numbers), or the Auth ID and token "
                "of the account that has it",
            )
        if status != 200:
            return None
        number = _decode(body, _PlivoNumber)
        if number is None:
            return _not_understood("Plivo", check)
        if not number.application:
            return Finding(
                "Plivo",
                check,
                "warning",
                "the number has no application: its calls reach no answer URL",
                f"{console}: choose an application whose Answer URL is {webhook or 'our webhook'} (POST)",
            )
        if not _PLIVO_APPLICATION.match(number.application):
            return Finding(
                "Plivo", check, "warning", f"application {number.application!r} not understood", ""
            )
        return Probe(
            "Plivo",
            check,
            f"{base}{number.application}",
            headers,
            mask(token),
            _plivo_refused(account),
            application,
        )

    digits = interface.phone_number.removeprefix("+")
    return Probe(
        "Plivo",
        check,
        f"{base}/v1/Account/{quote(account, safe='')}/Number/{digits}/",
        headers,
        mask(token),
        _plivo_refused(account),
        answer,
    )


def _compare(
    service: str, check: str, url: str | None, method: str | None, webhook: str, where: str
) -> Finding:
    """Whether a number's voice URL is our webhook: a warning if not (calls would go elsewhere)."""
    shown = _shown(url or "")
    if not webhook:
        return Finding(
            service,
            check,
            "ok",
            f"calls go to {shown or '(no URL)'} (give --public-url to compare it with ours)",
        )
    if (url or "").rstrip("/") != webhook.rstrip("/"):
        return Finding(
            service,
            check,
            "warning",
            f"calls go to {shown or '(no URL)'}, not to our webhook {webhook}",
            f"{where} {webhook} (HTTP POST)",
        )
    if method and method.upper() != "POST":
        return Finding(
            service,
            check,
            "warning",
            f"our webhook is asked with {method}, not POST",
            f"{where} {webhook} (HTTP POST)",
        )
    return Finding(service, check, "ok", f"calls go to our webhook {webhook}")


def _shown(url: str) -> str:
    """A URL without its user-info part (it may hold a password) or query."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", "")) if parts.scheme else url.rpartition("@")[2]


# --- AI providers ------------------------------------------------------------------------------------


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model]


class _Voice(msgspec.Struct):
    name: str | None = None


def _openai(base: str, key: str, model: str, env_name: str) -> Probe:
    def answer(status: int, body: bytes) -> Finding | None:
        if status != 200:
            return None
        models = _decode(body, _ModelList)
        if models is None:
            return Finding("OpenAI", "models", "ok", "the key is accepted (no model list in the answer)")
        if model not in {m.id for m in models.data}:
            return Finding(
                "OpenAI",
                "models",
                "missing",
                f"the key is accepted, but the agent's model {model!r} is not in its list",
                "give the Agent a model the key can use (platform.openai.com → Limits → models), or a key "
                "of a project that has it",
            )
        return Finding("OpenAI", "models", "ok", f"the key is accepted and {model!r} is available")

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Probe(
        "OpenAI",
        "models",
        f"{base}/models",
        headers,
        mask(key) if key else "(no key)",
        f"export {env_name}=sk-… with a key from platform.openai.com → API keys",
        answer,
    )


def _deepgram(base: str, key: str) -> Probe:
    return Probe(
        "Deepgram",
        "projects",
        f"{base}/v1/projects",
        {"Authorization": f"Token {key}"},
        mask(key),
        "export DEEPGRAM_API_KEY=… with a key from console.deepgram.com → API Keys, or pass DeepgramSTT(api_key=…)",
    )


def _cartesia(base: str, key: str, voice: str, version: str) -> Probe:
    def answer(status: int, body: bytes) -> Finding | None:
        if status == 404:
            return Finding(
                "Cartesia",
                "voice",
                "missing",
                f"the key is accepted, but there is no voice {voice!r}",
                "pass CartesiaTTS(voice_id='<voice UUID>') (Cartesia playground → a voice → Copy ID)",
            )
        if status != 200:
            return None
        found = _decode(body, _Voice)
        name = f" ({found.name})" if found is not None and found.name else ""
        return Finding("Cartesia", "voice", "ok", f"the key is accepted and voice {voice!r}{name} exists")

    return Probe(
        "Cartesia",
        "voice",
        f"{base}/voices/{quote(voice, safe='')}",
        # As the TTS session sends them (callkit.tts.cartesia_session).
        {"Authorization": f"Bearer {key}", "Cartesia-Version": version},
        mask(key),
        "export CARTESIA_API_KEY=… with a key from play.cartesia.ai → API Keys, or pass CartesiaTTS(api_key=…)",
        answer,
    )


def _decode[T](body: bytes, kind: type[T]) -> T | None:
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _not_understood(service: str, check: str) -> Finding:
    return Finding(service, check, "unexpected", "HTTP 200, but the answer is not the JSON expected", "")


# --- judging and running -----------------------------------------------------------------------------


def judge(probe: Probe, status: int, body: bytes) -> Finding | Probe:
    """What an answer means: the probe's own reading first, then 2xx ok, 401/403 refused, else unexpected."""
    if probe.answer is not None:
        outcome = probe.answer(status, body)
        if outcome is not None:
            return outcome
    if 200 <= status < 300:
        return Finding(probe.service, probe.check, "ok", f"the key {probe.credential} is accepted")
    if status in (401, 403):
        return Finding(
            probe.service,
            probe.check,
            "refused",
            f"HTTP {status}: {probe.credential} was refused",
            probe.refused_fix,
        )
    host = urlsplit(probe.url).netloc
    return Finding(
        probe.service,
        probe.check,
        "unexpected",
        f"HTTP {status} from {host}",
        f"check the base URL ({host}) and the {probe.service} status page, then try again",
    )


async def run(
    planned: Sequence[Probe | Finding], *, within: float = DEFAULT_TIMEOUT, client: HTTPClient | None = None
) -> list[Finding]:
    """Send every probe at once; all answered within ``within`` seconds, or ``unreachable``."""
    http = client or HTTPClient(connect_timeout=min(5.0, within), read_timeout=min(5.0, within))
    deadline = asyncio.get_running_loop().time() + within

    async def one(item: Probe | Finding) -> Finding:
        if isinstance(item, Finding):
            return item
        probe = item
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    status, body = await _get(http, probe)
                    outcome = judge(probe, status, body)
                    if isinstance(outcome, Finding):
                        return outcome
                    probe = outcome  # one more read-only request (Plivo's application)
        except TimeoutError:
            why = f"no answer within {within:g} s"
        except ReadTimeoutError:
            why = f"no answer within {http.read_timeout:g} s"
        except TransportError as error:
            why = str(error)
        host = urlsplit(probe.url).netloc
        return Finding(
            probe.service,
            probe.check,
            "unreachable",
            why,
            f"check the network, a proxy (HTTPS_PROXY) or the base URL ({host})",
        )

    try:
        return list(await asyncio.gather(*(one(item) for item in planned)))
    finally:
        if client is None:
            await http.aclose()


async def _get(client: HTTPClient, probe: Probe) -> tuple[int, bytes]:
    async with client.stream("GET", probe.url, probe.headers) as response:
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _BODY_LIMIT:
                break
        return response.status, body
