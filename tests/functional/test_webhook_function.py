"""The webhook Lambda handler on the events in events/, with DynamoDB through moto."""

from __future__ import annotations

import base64
import copy
import json
import xml.etree.ElementTree as ET
from typing import Any

import boto3
import pytest
from conftest import EVENTS, TOKEN_KEY, WebhookFactory, items, load_event

from callkit.store import DynamoDBCallStore
from callkit.testing import LambdaContext, SimulatedCarrier, http_api_event, parse_answer
from callkit.testing.events import (
    EVENT_ENV,
    EVENTS_PHONE_NUMBER,
    EVENTS_PUBLIC_URL,
    PLIVO_CALL,
    TWILIO_MANAGED_CALL,
    TWILIO_STREAM_CALL,
)
from callkit.tokens import StreamTokens


def invoke(module: Any, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = module.handler(event, LambdaContext())
    return response


def store() -> DynamoDBCallStore:
    return DynamoDBCallStore("callkit-calls", boto3.client("dynamodb"))


def test_twilio_managed_call_answered_with_conversation_relay(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    response = invoke(module, load_event("twilio-incoming-managed.json"))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/xml")
    answer = parse_answer(response["body"])
    assert answer.kind == "relay"
    assert answer.url == f"wss://relay.example.com/prod?call={TWILIO_MANAGED_CALL}"
    assert answer.attributes["Connect.action"] == f"{EVENTS_PUBLIC_URL}/call/incoming/relay-ended"
    assert answer.attributes["welcomeGreeting"].startswith("Hello! Thanks for calling Acme Shop.")
    assert (
        answer.attributes["ttsProvider"] == "Google"
        and answer.attributes["transcriptionProvider"] == "Deepgram"
    )
    record = store().get_call(TWILIO_MANAGED_CALL)
    assert record is not None and record.status == "ringing" and record.pipeline == "managed"
    assert record.answer == response["body"]


def test_twilio_stream_call_gets_a_token_bound_to_the_call(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="cascading")
    response = invoke(module, load_event("twilio-incoming-stream.json"))
    answer = parse_answer(response["body"])
    assert (answer.kind, answer.url) == ("stream", "wss://media.example.com/call/stream")
    grant = StreamTokens(TOKEN_KEY).verify(answer.token, call_id=TWILIO_STREAM_CALL, pipeline="cascading")
    assert grant.call_id == TWILIO_STREAM_CALL


def test_retried_webhook_returns_the_same_document_and_one_item(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="cascading")
    first = invoke(module, load_event("twilio-incoming-stream.json"))
    # A retry arrives after the token TTL would have changed a freshly minted one: still identical.
    second = invoke(module, load_event("twilio-incoming-stream.json"))
    assert first["body"] == second["body"]
    assert len(items()) == 1


def _tampered(event: dict[str, Any], old: bytes, new: bytes) -> dict[str, Any]:
    forged = copy.deepcopy(event)
    body = base64.b64decode(forged["body"]).replace(old, new)
    forged["body"] = base64.b64encode(body).decode()
    return forged


@pytest.mark.parametrize("kind", ["tampered", "unsigned", "wrong-url"])
def test_forged_or_missing_signature_is_403_and_writes_nothing(webhook: WebhookFactory, kind: str) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    event = load_event("twilio-incoming-managed.json")
    if kind == "tampered":
        event = _tampered(event, b"From=%2B14155550100", b"From=%2B19005550100")
    elif kind == "unsigned":
        del event["headers"]["x-twilio-signature"]
    else:  # signed for another host: replayed from elsewhere
        module = webhook(CALLKIT_PUBLIC_URL="https://other.example.com")
    response = invoke(module, event)
    assert response["statusCode"] == 403
    assert TWILIO_MANAGED_CALL not in response["body"]
    assert items() == []


def test_status_callback_records_status_duration_and_end(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    invoke(module, load_event("twilio-incoming-managed.json"))
    response = invoke(module, load_event("twilio-status-completed.json"))
    assert response["statusCode"] == 200
    record = store().get_call(TWILIO_MANAGED_CALL)
    assert record is not None
    assert (record.status, record.duration_seconds, record.status_sequence) == ("completed", 37, 3)
    assert record.ended_at == 1767261900.0  # Thu, 01 Jan 2026 10:05:00 +0000


def test_status_callbacks_are_safe_against_retries_and_reordering(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    invoke(module, load_event("twilio-incoming-managed.json"))
    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    completed = carrier.status_callback(TWILIO_MANAGED_CALL, "completed", sequence=3, duration_seconds=37)
    late_progress = carrier.status_callback(TWILIO_MANAGED_CALL, "in-progress", sequence=1)
    for request in (completed, completed, late_progress):  # a retry, then an older callback arriving late
        assert invoke(module, http_api_event(request))["statusCode"] == 200
    record = store().get_call(TWILIO_MANAGED_CALL)
    assert record is not None and (record.status, record.duration_seconds) == ("completed", 37)


def test_status_for_an_unknown_call_is_acknowledged(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    assert invoke(module, load_event("twilio-status-completed.json"))["statusCode"] == 200
    assert items() == []


def test_plivo_answer_and_hangup(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="plivo", CALLKIT_PIPELINE="realtime")
    response = invoke(module, load_event("plivo-answer.json"))
    assert response["statusCode"] == 200 and response["headers"]["content-type"].startswith("application/xml")
    answer = parse_answer(response["body"])
    assert answer.kind == "stream" and answer.url == "wss://media.example.com/call/stream"
    assert answer.attributes["bidirectional"] == "true" and answer.attributes["keepCallAlive"] == "true"
    assert answer.attributes["contentType"] == "audio/x-mulaw;rate=8000"
    StreamTokens(TOKEN_KEY).verify(answer.token, call_id=PLIVO_CALL, pipeline="realtime")
    record = store().get_call(PLIVO_CALL)
    assert (
        record is not None
        and record.from_number == "+14155550100"
        and record.to_number == EVENTS_PHONE_NUMBER
    )
    assert invoke(module, load_event("plivo-hangup.json"))["statusCode"] == 200
    ended = store().get_call(PLIVO_CALL)
    assert ended is not None and (ended.status, ended.duration_seconds) == ("completed", 37)


def test_named_stage_in_the_public_url(webhook: WebhookFactory) -> None:
    """A named HTTP API stage appears in rawPath; the public URL carries it and Mangum strips it."""
    base = f"{EVENTS_PUBLIC_URL}/prod"
    module = webhook(CALLKIT_PUBLIC_URL=base, CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    request = SimulatedCarrier("twilio", base_url=base).incoming_call(to=EVENTS_PHONE_NUMBER)
    event = http_api_event(request)  # rawPath and http.path are /prod/call/incoming
    event["requestContext"]["stage"] = "prod"
    response = invoke(module, event)
    assert response["statusCode"] == 200, response["body"]
    assert parse_answer(response["body"]).kind == "relay"


def test_public_url_rebuilt_from_the_event_when_not_configured(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PUBLIC_URL=None, CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    response = invoke(module, load_event("twilio-incoming-managed.json"))
    assert response["statusCode"] == 200


def test_changing_webhook_path_changes_the_routes(webhook: WebhookFactory) -> None:
    module = webhook(
        CALLKIT_WEBHOOK_PATH="/voice/in", CALLKIT_STREAM_PATH="/voice/media", CALLKIT_PIPELINE="realtime"
    )
    assert invoke(module, load_event("twilio-incoming-managed.json"))["statusCode"] == 404
    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    response = invoke(module, http_api_event(carrier.incoming_call(to=EVENTS_PHONE_NUMBER, path="/voice/in")))
    answer = parse_answer(response["body"])
    assert answer.url == "wss://media.example.com/voice/media"
    status = carrier.status_callback(
        carrier.incoming_call(to=EVENTS_PHONE_NUMBER).form["CallSid"][0], path="/voice/in/status"
    )
    assert invoke(module, http_api_event(status))["statusCode"] == 200


def test_malformed_body_is_400_and_oversized_is_413(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    no_call_sid = carrier.sign(
        "POST", "/call/incoming", [("To", EVENTS_PHONE_NUMBER), ("From", "+14155550100")]
    )
    assert invoke(module, http_api_event(no_call_sid))["statusCode"] == 400
    huge = carrier.sign("POST", "/call/incoming", [("To", EVENTS_PHONE_NUMBER), ("Junk", "x" * 70_000)])
    assert invoke(module, http_api_event(huge))["statusCode"] == 413
    assert items() == []


def test_logs_carry_the_call_id_but_no_phone_numbers(
    webhook: WebhookFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    invoke(module, load_event("twilio-incoming-managed.json"))
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    logs = [line for line in lines if "message" in line]
    assert any(line.get("correlation_id") == TWILIO_MANAGED_CALL for line in logs)
    assert "4155550100" not in output and "5551234567" not in output
    metrics = [line for line in lines if "_aws" in line]
    assert metrics and metrics[-1]["CallsAnswered"] in (1.0, [1.0])


def test_xml_is_well_formed_for_every_event(webhook: WebhookFactory) -> None:
    module = webhook(CALLKIT_PROVIDER="twilio", CALLKIT_PIPELINE="managed")
    ET.fromstring(invoke(module, load_event("twilio-incoming-managed.json"))["body"])


def test_events_on_disk_are_what_the_generator_makes() -> None:
    from callkit.testing.events import build_env_files, build_events, build_relay_events, render

    for name, content in {**build_events(), **build_relay_events(), **build_env_files()}.items():
        assert (EVENTS / name).read_text() == render(content), f"events/{name} is stale: make events"


@pytest.mark.parametrize("event_name", sorted(EVENT_ENV))
def test_every_event_works_with_its_sam_local_env_file(webhook: WebhookFactory, event_name: str) -> None:
    """What `sam local invoke WebhookFunction -e events/X --env-vars events/Y` does, without Docker."""
    env = json.loads((EVENTS / EVENT_ENV[event_name]).read_text())["WebhookFunction"]
    module = webhook(**env)
    if event_name.endswith(("status-completed.json", "hangup.json")):  # the call it ends must exist
        answer = "twilio-incoming-managed.json" if event_name.startswith("twilio") else "plivo-answer.json"
        assert invoke(module, load_event(answer))["statusCode"] == 200
    response = invoke(module, load_event(event_name))
    assert response["statusCode"] == 200, response["body"]
    ET.fromstring(response["body"])


# --- signed but wrong: a 4xx from the Lambda, nothing in the table -----------------------------------


def _twilio_params(**changes: str | None) -> list[tuple[str, str]]:
    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    form = carrier.incoming_call(to=EVENTS_PHONE_NUMBER, call_id=TWILIO_STREAM_CALL).form
    params = {name: values[0] for name, values in form.items()} | changes
    return [(name, value) for name, value in params.items() if value is not None]


@pytest.mark.parametrize(
    ("provider", "params", "status"),
    [
        ("twilio", _twilio_params(CallSid="CA" + "2" * 31 + "|"), 400),
        ("twilio", _twilio_params(CallSid="CA|cascading|9999999999"), 400),
        ("twilio", _twilio_params(AccountSid="AC-not-a-sid"), 400),
        ("twilio", _twilio_params(From=None), 400),
        ("twilio", _twilio_params(To=None), 400),
        ("twilio", _twilio_params(To="+15550009999"), 404),
        ("twilio", _twilio_params(To="anonymous"), 404),
        (
            "plivo",
            [
                ("CallUUID", "abc|def"),
                ("CallStatus", "ringing"),
                ("From", "14155550100"),
                ("To", "15551234567"),
            ],
            400,
        ),
        ("plivo", [("CallUUID", PLIVO_CALL), ("CallStatus", "ringing"), ("To", "15551234567")], 400),
        ("plivo", [("CallUUID", PLIVO_CALL), ("CallStatus", "ringing"), ("From", "14155550100")], 400),
        (
            "plivo",
            [
                ("CallUUID", PLIVO_CALL),
                ("CallStatus", "ringing"),
                ("From", "14155550100"),
                ("To", "anonymous"),
            ],
            404,
        ),
    ],
    ids=[
        "twilio-call-sid-with-pipe",
        "twilio-call-sid-token-injection",
        "twilio-account-sid",
        "twilio-no-from",
        "twilio-no-to",
        "twilio-unserved-number",
        "twilio-anonymous-to",
        "plivo-call-uuid-with-pipe",
        "plivo-no-from",
        "plivo-no-to",
        "plivo-anonymous-to",
    ],
)
def test_signed_but_wrong_answer_webhooks_are_refused_and_write_nothing(
    webhook: WebhookFactory, provider: str, params: list[tuple[str, str]], status: int
) -> None:
    module = webhook(
        CALLKIT_PROVIDER=provider, CALLKIT_PIPELINE="cascading" if provider == "twilio" else "realtime"
    )
    carrier = SimulatedCarrier(provider, base_url=EVENTS_PUBLIC_URL)  # type: ignore[arg-type]
    response = invoke(module, http_api_event(carrier.sign("POST", "/call/incoming", params)))
    assert response["statusCode"] == status, response["body"]
    assert items() == []
