"""The switchboard without a web framework: routing, answers, failures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callkit import CallInterface, CartesiaTTS, DeepgramSTT, OpenAIRealtimeProvider
from callkit.carriers._types import SignedRequest
from callkit.errors import StoreError
from callkit.settings import Settings
from callkit.store.memory import MemoryCallStore
from callkit.switchboard import APOLOGY, Switchboard
from callkit.telemetry import StdlibTelemetry
from callkit.testing import TEST_PLIVO_AUTH_TOKEN, TEST_TWILIO_AUTH_TOKEN, SimulatedCarrier, parse_answer
from callkit.testing.carrier import CarrierRequest
from callkit.tokens import StreamTokens

BASE = "https://voice.example.com"
KEY = "k" * 64
SETTINGS = Settings(
    public_url=BASE,
    relay_url="wss://relay.example.com/prod",
    media_url="wss://media.example.com",
    token_key=KEY,
)


def twilio(number: str = "+15550000001", **kwargs: object) -> CallInterface:
    return CallInterface(provider="twilio", phone_number=number, auth_token=TEST_TWILIO_AUTH_TOKEN, **kwargs)  # type: ignore[arg-type]


def plivo(number: str = "+15550000002", **kwargs: object) -> CallInterface:
    kwargs.setdefault("pipeline", "realtime")
    kwargs.setdefault("realtime", OpenAIRealtimeProvider(api_key="k"))
    return CallInterface(provider="plivo", phone_number=number, auth_token=TEST_PLIVO_AUTH_TOKEN, **kwargs)  # type: ignore[arg-type]


def board(*interfaces: CallInterface, store: object = None, settings: Settings = SETTINGS) -> Switchboard:
    return Switchboard(
        interfaces,
        settings=settings,
        store=store if store is not None else MemoryCallStore(),
        telemetry=StdlibTelemetry(),  # type: ignore[arg-type]
    )


def send(switchboard: Switchboard, request: CarrierRequest) -> tuple[int, str]:
    reply = switchboard.handle(
        request.path,
        SignedRequest(
            request.method, request.url, {k.lower(): v for k, v in request.headers.items()}, request.body
        ),
    )
    return reply.status, reply.body


def test_every_seed_parameter_reaches_the_twiml_escaped() -> None:
    tricky = 'Hi & "welcome" <to> Acme\'s line'
    interface = twilio(
        welcome_message=tricky,
        voice='Polly.Joanna&"<x>',
        language="es-MX",
        interruptible="dtmf",
        interrupt_sensitivity="low",
        stt_provider="google",
        tts_provider="elevenlabs",
    )
    status, body = send(
        board(interface), SimulatedCarrier("twilio", base_url=BASE).incoming_call(to=interface.phone_number)
    )
    assert status == 200
    assert "&amp;" in body and "&quot;" in body and "&lt;to&gt;" in body
    attributes = parse_answer(body).attributes
    assert attributes["welcomeGreeting"] == tricky
    assert attributes["voice"] == 'Polly.Joanna&"<x>'
    assert attributes["language"] == "es-MX"
    assert attributes["interruptible"] == "dtmf" and attributes["welcomeGreetingInterruptible"] == "dtmf"
    assert attributes["interruptSensitivity"] == "low"
    assert attributes["transcriptionProvider"] == "Google" and attributes["ttsProvider"] == "ElevenLabs"
    assert attributes["dtmfDetection"] == "true"


def test_stream_path_and_media_url_make_the_stream_url() -> None:
    interface = twilio(
        pipeline="cascading",
        stt=DeepgramSTT(api_key="k"),
        tts=CartesiaTTS(api_key="k"),
        webhook_path="/t/in",
        stream_path="/t/audio",
    )
    request = SimulatedCarrier("twilio", base_url=BASE).incoming_call(to=interface.phone_number, path="/t/in")
    answer = parse_answer(send(board(interface), request)[1])
    assert answer.url == "wss://media.example.com/t/audio"
    StreamTokens(KEY).verify(answer.token, call_id=request.form["CallSid"][0], pipeline="cascading")


def test_several_numbers_and_both_carriers_share_one_path() -> None:
    first, second, third = (
        twilio("+15550000001"),
        twilio("+15550000003", welcome_message="second line"),
        plivo("+15550000002"),
    )
    switchboard = board(first, second, third)
    twilio_carrier, plivo_carrier = (
        SimulatedCarrier("twilio", base_url=BASE),
        SimulatedCarrier("plivo", base_url=BASE),
    )
    _, body = send(switchboard, twilio_carrier.incoming_call(to="+15550000003"))
    assert parse_answer(body).attributes["welcomeGreeting"] == "second line"
    _, body = send(switchboard, plivo_carrier.incoming_call(to="+15550000002"))
    assert parse_answer(body).kind == "stream"


def test_separate_twilio_accounts_each_verify_with_their_own_token() -> None:
    other = CallInterface(provider="twilio", phone_number="+15550000009", auth_token="another-account-token")
    switchboard = board(twilio(), other)
    own = SimulatedCarrier("twilio", base_url=BASE, auth_token="another-account-token").incoming_call(
        to="+15550000009"
    )
    assert send(switchboard, own)[0] == 200
    wrong = SimulatedCarrier("twilio", base_url=BASE, auth_token="nobody's token").incoming_call(
        to="+15550000009"
    )
    assert send(switchboard, wrong)[0] == 403


def test_no_auth_token_configured_refuses_rather_than_trusts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    store = MemoryCallStore()
    interface = CallInterface(provider="twilio", phone_number="+15550000001")
    request = SimulatedCarrier("twilio", base_url=BASE).incoming_call(to="+15550000001")
    assert send(board(interface, store=store), request)[0] == 403
    assert len(store) == 0


def test_missing_relay_or_media_url_answers_with_an_apology() -> None:
    interface = twilio()
    switchboard = board(interface, settings=Settings(public_url=BASE, token_key=KEY))
    answer = parse_answer(
        send(switchboard, SimulatedCarrier("twilio", base_url=BASE).incoming_call(to=interface.phone_number))[
            1
        ]
    )
    assert answer.kind == "say-and-hangup" and answer.spoken == APOLOGY


class BrokenStore(MemoryCallStore):
    def create_call(self, record: object) -> object:  # type: ignore[override]
        raise StoreError("DynamoDB unavailable")


def test_store_failure_is_a_spoken_apology_not_silence() -> None:
    interface = plivo()
    status, body = send(
        board(interface, store=BrokenStore()),
        SimulatedCarrier("plivo", base_url=BASE).incoming_call(to=interface.phone_number),
    )
    assert status == 200
    assert parse_answer(body).kind == "say-and-hangup"


def test_unknown_path_is_404() -> None:
    request = SimulatedCarrier("twilio", base_url=BASE).incoming_call(to="+15550000001", path="/elsewhere")
    assert send(board(twilio()), request)[0] == 404


def test_status_path_refuses_unsigned_and_records_signed() -> None:
    store = MemoryCallStore()
    interface = twilio()
    switchboard = board(interface, store=store)
    carrier = SimulatedCarrier("twilio", base_url=BASE)
    call = carrier.incoming_call(to=interface.phone_number)
    send(switchboard, call)
    call_id = call.form["CallSid"][0]
    assert send(switchboard, carrier.status_callback(call_id, "busy").unsigned())[0] == 403
    assert send(switchboard, carrier.status_callback(call_id, "busy"))[0] == 200
    record = store.get_call(call_id)
    assert record is not None and record.status == "busy"


# --- signed but wrong: refused with a 4xx, nothing written ------------------------------------------

TWILIO_CALL = "CA" + "c" * 32
PLIVO_CALL = "5a1f2c3d-4b5e-4f60-8a7b-9c0d1e2f3a4b"


def twilio_incoming(**changes: str | None) -> list[tuple[str, str]]:
    """The Voice URL parameters ``SimulatedCarrier`` sends, with some changed (``None``: left out)."""
    form = (
        SimulatedCarrier("twilio", base_url=BASE).incoming_call(to="+15550000001", call_id=TWILIO_CALL).form
    )
    params = {name: values[0] for name, values in form.items()} | changes
    return [(name, value) for name, value in params.items() if value is not None]


def plivo_incoming(**changes: str | None) -> list[tuple[str, str]]:
    form = SimulatedCarrier("plivo", base_url=BASE).incoming_call(to="+15550000002", call_id=PLIVO_CALL).form
    params = {name: values[0] for name, values in form.items()} | changes
    return [(name, value) for name, value in params.items() if value is not None]


def signed(provider: str, params: list[tuple[str, str]], path: str = "/call/incoming") -> CarrierRequest:
    return SimulatedCarrier(provider, base_url=BASE).sign("POST", path, params)  # type: ignore[arg-type]


BAD_CALL_SIDS = [
    "CA" + "c" * 31 + "|",
    "CA" + "c" * 16 + "|" + "c" * 15,
    "CA|cascading|9999999999",
    "CA" + "c" * 31,
    "CA" + "c" * 33,
    "CA" + "g" * 32,
    "AC" + "c" * 32,
    "CA" + "c" * 32 + "\n",
    "CA" + "c" * 5_000,
    " CA" + "c" * 32,
]


@pytest.mark.parametrize("call_sid", BAD_CALL_SIDS)
@pytest.mark.parametrize("pipeline", ["managed", "cascading"])
def test_a_call_sid_that_is_not_one_is_400_and_writes_nothing(call_sid: str, pipeline: str) -> None:
    store = MemoryCallStore()
    kwargs: dict[str, object] = {"pipeline": pipeline}
    if pipeline == "cascading":
        kwargs |= {"stt": DeepgramSTT(api_key="k"), "tts": CartesiaTTS(api_key="k")}
    switchboard = board(twilio(**kwargs), store=store)
    status, body = send(switchboard, signed("twilio", twilio_incoming(CallSid=call_sid)))
    assert (status, body) == (400, "malformed request")
    assert len(store) == 0
    status, _ = send(
        switchboard,
        signed("twilio", twilio_incoming(CallSid=call_sid, CallStatus="busy"), "/call/incoming/status"),
    )
    assert status == 400


@pytest.mark.parametrize("account_sid", ["AC" + "0" * 31, "CA" + "0" * 32, "AC" + "0" * 31 + "|", "x"])
def test_an_account_sid_that_is_not_one_is_400(account_sid: str) -> None:
    store = MemoryCallStore()
    status, _ = send(board(twilio(), store=store), signed("twilio", twilio_incoming(AccountSid=account_sid)))
    assert status == 400 and len(store) == 0


@pytest.mark.parametrize(
    "call_uuid",
    ["abc|def", "not-a-uuid", PLIVO_CALL + "|realtime", PLIVO_CALL[:-1], PLIVO_CALL + "0", "x" * 5_000],
)
def test_a_call_uuid_that_is_not_a_uuid_is_400_and_writes_nothing(call_uuid: str) -> None:
    store = MemoryCallStore()
    switchboard = board(plivo(), store=store)
    status, _ = send(switchboard, signed("plivo", plivo_incoming(CallUUID=call_uuid)))
    assert status == 400 and len(store) == 0
    hangup = [("CallUUID", call_uuid), ("CallStatus", "completed")]
    assert send(switchboard, signed("plivo", hangup, "/call/incoming/status"))[0] == 400


@pytest.mark.parametrize("missing", ["From", "To"])
@pytest.mark.parametrize("provider", ["twilio", "plivo"])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_an_answer_webhook_without_from_or_to_is_400(missing: str, provider: str, how: str) -> None:
    store = MemoryCallStore()
    change = {missing: None if how == "absent" else ""}
    params = twilio_incoming(**change) if provider == "twilio" else plivo_incoming(**change)
    status, _ = send(board(twilio(), plivo(), store=store), signed(provider, params))
    assert status == 400 and len(store) == 0


@pytest.mark.parametrize("to", ["+15550009999", "anonymous", "sip:bot@example.com", "+1555000000"])
@pytest.mark.parametrize("provider", ["twilio", "plivo"])
def test_a_call_to_a_number_no_interface_serves_is_404_and_writes_nothing(provider: str, to: str) -> None:
    store = MemoryCallStore()
    switchboard = board(twilio("+15550000001"), twilio("+15550000003"), plivo("+15550000002"), store=store)
    params = twilio_incoming(To=to) if provider == "twilio" else plivo_incoming(To=to.lstrip("+"))
    status, body = send(switchboard, signed(provider, params))
    assert (status, body) == (404, "this number is not served here")
    assert len(store) == 0


def test_a_number_served_with_another_accounts_token_is_404() -> None:
    """The dialled number's interface is on another account: the request verifies with ours, but
    the number is not ours to answer."""
    store = MemoryCallStore()
    other = CallInterface(provider="twilio", phone_number="+15550000009", auth_token="another-account-token")
    status, _ = send(
        board(twilio(), other, store=store), signed("twilio", twilio_incoming(To="+15550000009"))
    )
    assert status == 404 and len(store) == 0


def test_a_relay_ended_callback_with_a_bad_call_sid_is_400() -> None:
    interface = twilio()
    params = [("AccountSid", "AC" + "0" * 31 + "1"), ("CallSid", "CA|x"), ("SessionStatus", "ended")]
    assert send(board(interface), signed("twilio", params, interface.relay_ended_path))[0] == 400


@settings(max_examples=60, deadline=None)
@given(call_sid=st.text(max_size=40) | st.sampled_from(BAD_CALL_SIDS), to=st.text(max_size=16))
def test_signed_garbage_never_gets_a_5xx(call_sid: str, to: str) -> None:
    store = MemoryCallStore()
    interface = twilio(pipeline="cascading", stt=DeepgramSTT(api_key="k"), tts=CartesiaTTS(api_key="k"))
    status, _ = send(
        board(interface, store=store), signed("twilio", twilio_incoming(CallSid=call_sid, To=to))
    )
    assert status in (400, 404)
    assert len(store) == 0
