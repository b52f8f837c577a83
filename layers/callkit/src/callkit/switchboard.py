"""The switchboard: carrier webhooks in, answers out, call items written. No web framework.

``Switchboard.handle(path, request)`` takes a ``SignedRequest`` (what the carrier sent, with the
public URL it signed) and returns a ``Reply``. The FastAPI app (``callkit.http``) and the tests
are thin around it. Order of work for every request:

1. find the interfaces served at ``path`` and, by signature header, the carrier that sent it;
2. verify the signature with the auth token of the interface the call is for (several numbers
   may share a path: the ``To`` number picks, then any interface whose token verifies);
   unsigned or forged: 403, nothing written;
3. parse (identifiers checked against the carrier's format, ``From`` and ``To`` required:
   malformed is 400, nothing written); an incoming call must be for the number of the interface
   that verified it, else 404 and nothing written (``_unserved`` says why 404);
4. answer, and write the call item with a conditional create, so a retried webhook gets the
   stored document back and no second item appears.

Error replies follow one table (``_STATUS_FOR``); a failure after the signature check answers
the caller with a spoken apology rather than silence.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from callkit.call.phrases import Phrases, phrases_for
from callkit.carriers import CarrierFormat, carrier_format
from callkit.carriers._types import (
    MAX_WEBHOOK_BODY_BYTES,
    Answer,
    DialAnswer,
    ErrorAnswer,
    Form,
    HangupAnswer,
    IncomingCall,
    RelayAnswer,
    SignedRequest,
    StreamAnswer,
)
from callkit.errors import (
    CallkitError,
    CallNotFoundError,
    ConfigurationError,
    InvalidSignatureError,
    MessageTooLargeError,
    MissingSignatureError,
    ProtocolError,
    SignatureError,
    StoreError,
    TokenError,
    UnsupportedError,
)
from callkit.interface import RELAY_STT_PROVIDERS, RELAY_TTS_PROVIDERS, CallInterface
from callkit.lifecycle import CallStatus
from callkit.relay.events import relay_url_for
from callkit.secrets import SecretRef, SecretResolver
from callkit.settings import Settings
from callkit.store._base import CallRecord, CallStore
from callkit.telemetry import Telemetry
from callkit.tokens import StreamTokens

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
#: What a caller hears when the call cannot be connected (the English default of ``Phrases``).
APOLOGY = Phrases().unavailable
#: What we return to status callbacks: Twilio ignores the body, Plivo wants an XML document.
EMPTY_ANSWER = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

_STATUS_FOR: tuple[tuple[type[CallkitError], int], ...] = (
    (SignatureError, 403),
    (MessageTooLargeError, 413),
    (ProtocolError, 400),
    (StoreError, 503),
)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


RouteKind = Literal["incoming", "status", "relay-ended", "transfer"]


@dataclass(frozen=True, slots=True)
class _Route:
    kind: RouteKind
    interfaces: tuple[CallInterface, ...]


def _error_reply(error: CallkitError) -> Reply:
    status = next((code for cls, code in _STATUS_FOR if isinstance(error, cls)), 500)
    # Fixed texts per class: the exception message may quote attacker-controlled input.
    text = {403: "forbidden: signature check failed", 413: "request too large", 400: "malformed request"}
    return Reply(status, text.get(status, "temporarily unavailable"))


def _refusal(error: CallkitError) -> str:
    """Why a webhook was refused, for the log: signature errors carry fixed texts written here."""
    if isinstance(error, SignatureError | MessageTooLargeError):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__  # a parse error's message may quote what the client sent


def _digits(number: str) -> str:
    return number.lstrip("+")


class Credentials:
    """Resolves auth tokens and the stream-token key: explicit configuration first, then secrets."""

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        self._settings = settings
        self._secrets = secrets or SecretResolver()
        self._tokens: tuple[str, StreamTokens] | None = None

    def auth_token(self, interface: CallInterface) -> str:
        if interface.credentials.auth_token:
            return interface.credentials.auth_token
        param = (
            self._settings.twilio_auth_token_param
            if interface.provider == "twilio"
            else self._settings.plivo_auth_token_param
        )
        if not param:
            raise ConfigurationError(
                f"no auth token for the {interface.provider} interface: pass auth_token=, set the carrier's "
                "AUTH_TOKEN environment variable, or name an SSM parameter in the *_AUTH_TOKEN_PARAM variable"
            )
        return self._secrets.get(SecretRef("ssm", param))

    def stream_tokens(self) -> StreamTokens:
        key = self._settings.token_key
        if not key:
            if not self._settings.token_key_secret:
                raise ConfigurationError(
                    "no stream token key: set CALLKIT_TOKEN_KEY or CALLKIT_TOKEN_KEY_SECRET (stream pipelines)"
                )
            key = self._secrets.get(SecretRef("secretsmanager", self._settings.token_key_secret))
        if self._tokens is None or self._tokens[0] != key:
            self._tokens = (key, StreamTokens(key, ttl_seconds=self._settings.token_ttl_seconds))
        return self._tokens[1]


class Switchboard:
    """Answers the carriers' webhooks for a set of ``CallInterface``s."""

    def __init__(
        self,
        interfaces: Sequence[CallInterface],
        *,
        settings: Settings,
        store: CallStore,
        telemetry: Telemetry,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not interfaces:
            raise ConfigurationError("a Switchboard needs at least one CallInterface")
        self.settings = settings
        self.store = store
        self.telemetry = telemetry
        self.credentials = credentials if credentials is not None else Credentials(settings)
        self._clock = clock
        routes: dict[str, list[CallInterface]] = {}
        kinds: dict[str, RouteKind] = {}
        for interface in interfaces:
            paths: list[tuple[str, RouteKind]] = [
                (interface.webhook_path, "incoming"),
                (interface.status_path, "status"),
            ]
            if interface.pipeline == "managed":
                paths.append((interface.relay_ended_path, "relay-ended"))
            if interface.provider == "plivo":
                paths.append((interface.transfer_path, "transfer"))
            for path, kind in paths:
                if kinds.setdefault(path, kind) != kind:
                    raise ConfigurationError(f"path {path!r} serves two purposes ({kinds[path]} and {kind})")
                routes.setdefault(path, []).append(interface)
        self._routes = {path: _Route(kinds[path], tuple(group)) for path, group in routes.items()}

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self._routes)

    def handle(self, path: str, request: SignedRequest) -> Reply:
        route = self._routes.get(path)
        if route is None:
            return Reply(404, "not found")
        try:
            if len(request.body) > MAX_WEBHOOK_BODY_BYTES:
                raise MessageTooLargeError("webhook body too large")
            params = self._params(request)
            interface, carrier = self._authenticate(route.interfaces, request, params)
        except CallkitError as error:
            self.telemetry.warning("webhook refused", path=path, reason=_refusal(error))
            self.telemetry.count("WebhooksRefused")
            return _error_reply(error)
        if route.kind == "incoming":
            return self._incoming(interface, carrier, params)
        if route.kind == "relay-ended":
            return self._relay_ended(interface, params)
        if route.kind == "transfer":
            return self._transfer(interface, carrier, request)
        return self._status(carrier, params)

    # --- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _params(request: SignedRequest) -> Form:
        if request.method.upper() == "POST":
            return request.form()
        return parse_qs(urlsplit(request.url).query, keep_blank_values=True)

    def _authenticate(
        self, interfaces: Iterable[CallInterface], request: SignedRequest, params: Form
    ) -> tuple[CallInterface, CarrierFormat]:
        candidates = [(i, carrier_format(i.provider)) for i in interfaces]
        signed = [(i, f) for i, f in candidates if any(h in request.headers for h in f.SIGNATURE_HEADERS)]
        if not signed:
            raise MissingSignatureError("no carrier signature header")
        to = _digits(next(iter(params.get("To", [])), ""))
        signed.sort(key=lambda pair: _digits(pair[0].phone_number) != to)  # the dialled number first
        untokened: list[str] = []  # the providers of the interfaces that have no token to check with
        for interface, carrier in signed:
            try:
                carrier.verify_request(request, self.credentials.auth_token(interface))
            except InvalidSignatureError:
                continue
            except ConfigurationError as error:
                self.telemetry.error("auth token unavailable", provider=interface.provider, reason=str(error))
                untokened.append(interface.provider)
                continue
            return interface, carrier
        if len(untokened) == len(signed):
            names = " / ".join(f"{p.upper()}_AUTH_TOKEN" for p in sorted(set(untokened)))
            raise InvalidSignatureError(f"no auth token to check the signature with: set {names}")
        raise InvalidSignatureError("no interface's auth token verifies this request")

    def _incoming(self, interface: CallInterface, carrier: CarrierFormat, params: Form) -> Reply:
        try:
            call = carrier.parse_incoming_call(params)
        except ProtocolError as error:
            self.telemetry.warning(
                "incoming call malformed", provider=interface.provider, reason=type(error).__name__
            )
            return _error_reply(error)
        if _digits(call.to_number) != _digits(interface.phone_number):
            return self._unserved(interface)
        self.telemetry.bind_call(call.call_id)
        answer = self._answer_for(interface, call)
        document = carrier.render_answer(answer)
        now = self._clock()
        record = CallRecord(
            call_id=call.call_id,
            carrier=interface.provider,
            pipeline=interface.pipeline,
            status=CallStatus.RINGING,
            from_number=call.from_number,
            to_number=call.to_number,
            account_id=call.account_id,
            answer=document,
            created_at=now,
            updated_at=now,
            expires_at=int(now) + self.settings.retention_seconds,
        )
        try:
            result = self.store.create_call(record)
        except StoreError:
            self.telemetry.error("call store unavailable", exc_info=True, provider=interface.provider)
            self.telemetry.count("StoreErrors")
            apology = carrier.render_answer(
                ErrorAnswer(phrases_for(interface).unavailable, interface.language)
            )
            return Reply(200, apology, carrier.ANSWER_CONTENT_TYPE)
        if result.created:
            outcome = "error" if isinstance(answer, ErrorAnswer) else "answered"
            self.telemetry.info(
                "call answered", provider=interface.provider, pipeline=interface.pipeline, outcome=outcome
            )
            self.telemetry.count("CallsAnswered" if outcome == "answered" else "CallsRefused")
        else:
            self.telemetry.info("webhook retried; stored answer returned", provider=interface.provider)
            self.telemetry.count("WebhookRetries")
        return Reply(200, result.record.answer, carrier.ANSWER_CONTENT_TYPE)

    def _unserved(self, interface: CallInterface) -> Reply:
        """A genuine call to a number no interface here serves (or ``anonymous``): 404, nothing written.

        The request is signed, so the carrier account is ours, but the dialled number is not one
        we were configured for: the number points at this deployment by mistake. Answering it
        with whichever interface's token verified (what happened before) would put an agent on a
        line nobody set up and store a call for it. A 404, not a spoken "not configured" answer,
        because both carriers treat a failed answer request as the cue for the number's fallback
        URL (Twilio's "primary handler fails", Plivo's fallback answer URL): the owner's own
        safety net (a human line, voicemail) takes the call, and the carrier's debugger shows an
        HTTP error on that number, which is where a misrouted number gets noticed and fixed. A
        200 answer that hangs up would end a call the fallback could have served and look like
        success on the carrier's side. Without a fallback the carrier ends the call itself
        (Twilio first plays its own application-error message). Not a 5xx: nothing failed here.
        """
        # No numbers in logs (they identify people); the interface's provider says enough.
        self.telemetry.warning("call to a number no interface serves", provider=interface.provider)
        self.telemetry.count("CallsToUnservedNumbers")
        return Reply(404, "this number is not served here")

    def _answer_for(self, interface: CallInterface, call: IncomingCall) -> Answer:
        try:
            if interface.pipeline == "managed":
                if not self.settings.relay_url:
                    raise ConfigurationError("managed pipeline needs the relay URL (CALLKIT_RELAY_URL)")
                return RelayAnswer(
                    url=relay_url_for(self.settings.relay_url, call.call_id),
                    action_url=self._public(interface.relay_ended_path),
                    welcome_greeting=interface.welcome_message,
                    voice=interface.voice or None,
                    language=interface.language,
                    interruptible=interface.interruptible,
                    interrupt_sensitivity=interface.interrupt_sensitivity,
                    tts_provider=RELAY_TTS_PROVIDERS[interface.tts_provider],
                    transcription_provider=RELAY_STT_PROVIDERS[interface.stt_provider],
                )
            if not self.settings.media_url:
                raise ConfigurationError(
                    f"{interface.pipeline} pipeline needs the media URL (CALLKIT_MEDIA_URL)"
                )
            token = self.credentials.stream_tokens().mint(call.call_id, interface.pipeline)
            return StreamAnswer(url=f"{self.settings.media_url}{interface.stream_path}", token=token)
        except (ConfigurationError, UnsupportedError, TokenError) as error:
            # TokenError: a call id no token can carry; the parsers refuse those first (400).
            self.telemetry.error("cannot connect call", provider=interface.provider, reason=str(error))
            return ErrorAnswer(phrases_for(interface).unavailable, interface.language)

    def _public(self, path: str) -> str | None:
        return f"{self.settings.public_url}{path}" if self.settings.public_url else None

    def _relay_ended(self, interface: CallInterface, params: Form) -> Reply:
        """``<Connect action>``: what happens after the agent's session (docs/protocols/twilio.md §3)."""
        from callkit.carriers import twilio

        try:
            ended = twilio.parse_relay_ended(params)
        except ProtocolError as error:
            return _error_reply(error)
        self.telemetry.bind_call(ended.call_id)
        answer: Answer = HangupAnswer()
        reason = "hangup"
        try:
            handoff = json.loads(ended.handoff_data) if ended.handoff_data else {}
        except ValueError:
            handoff = {}
        to = handoff.get("to") if isinstance(handoff, dict) else None
        if isinstance(handoff, dict) and handoff.get("reasonCode") == "transfer" and isinstance(to, str):
            if _E164.match(to):
                answer, reason = DialAnswer(to), "transfer"
            else:
                answer, reason = (
                    ErrorAnswer(phrases_for(interface).unavailable, interface.language),
                    "bad-transfer-number",
                )
        elif ended.session_status == "failed":
            answer, reason = (
                ErrorAnswer(phrases_for(interface).unavailable, interface.language),
                "session-failed",
            )
        self.telemetry.info("relay session ended", session_status=ended.session_status, next=reason)
        self.telemetry.count("Transfers" if reason == "transfer" else "RelaySessionsEnded")
        return Reply(200, twilio.render_answer(answer), twilio.ANSWER_CONTENT_TYPE)

    def _transfer(self, interface: CallInterface, carrier: CarrierFormat, request: SignedRequest) -> Reply:
        """Plivo fetches the new XML of a call we transferred (``aleg_url``, docs/protocols/plivo.md §6): a ``<Dial>``.

        The number is in the URL we gave Plivo; Plivo's signature covers that URL, so it is ours. With
        no number, the stream call failed and asked Plivo to speak the apology and hang up.
        """
        to = next(iter(parse_qs(urlsplit(request.url).query).get("to", [])), "")
        if not _E164.match(to):  # no number: the stream call failed and we asked Plivo to apologise
            if to:
                self.telemetry.warning("transfer to a malformed number refused")
            return Reply(
                200,
                carrier.render_answer(ErrorAnswer(phrases_for(interface).apology, interface.language)),
                carrier.ANSWER_CONTENT_TYPE,
            )
        self.telemetry.count("Transfers")
        return Reply(200, carrier.render_answer(DialAnswer(to)), carrier.ANSWER_CONTENT_TYPE)

    def _status(self, carrier: CarrierFormat, params: Form) -> Reply:
        try:
            update = carrier.parse_status_update(params)
        except ProtocolError as error:
            self.telemetry.warning("status callback malformed", reason=type(error).__name__)
            return _error_reply(error)
        self.telemetry.bind_call(update.call_id)
        try:
            result = self.store.transition(
                update.call_id,
                update.status,
                now=self._clock(),
                sequence=update.sequence,
                duration_seconds=update.duration_seconds,
                ended_at=update.ended_at,
            )
        except CallNotFoundError:
            # Acknowledge: the carrier would retry forever for a call we never answered.
            self.telemetry.warning("status for unknown call", status=update.status.value)
            self.telemetry.count("StatusUnknownCall")
            return Reply(200, EMPTY_ANSWER, carrier.ANSWER_CONTENT_TYPE)
        except StoreError as error:
            self.telemetry.error("call store unavailable", exc_info=True)
            self.telemetry.count("StoreErrors")
            return _error_reply(error)
        self.telemetry.info(
            "call status" if result.applied else "call status ignored (stale or duplicate)",
            status=update.status.value,
            stored_status=result.record.status.value,
        )
        self.telemetry.count("StatusApplied" if result.applied else "StatusIgnored")
        return Reply(200, EMPTY_ANSWER, carrier.ANSWER_CONTENT_TYPE)
