"""The API Gateway events in ``events/``, made reproducibly and signed with the test credentials.

``python -m callkit.testing.events [DIR]`` rewrites them; a test checks the files on disk still
equal what this makes. Every event is signed for ``EVENTS_PUBLIC_URL`` with the documented test
auth tokens, so ``sam local invoke WebhookFunction -e events/<file> --env-vars events/env.json``
verifies them (README, "Try the Lambda locally"); ``EVENT_ENV`` says which env file goes with which event.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from callkit.testing.aws import http_api_event
from callkit.testing.carrier import CarrierRequest, SimulatedCarrier

#: The public URL the events are signed for (an API Gateway HTTP API, $default stage).
EVENTS_PUBLIC_URL = "https://abc123xyz9.execute-api.us-east-1.amazonaws.com"
#: The relay (API Gateway WebSocket API, stage prod) the relay events come from.
EVENTS_RELAY_DOMAIN = "relay456uvw.execute-api.us-east-1.amazonaws.com"
EVENTS_RELAY_URL = f"wss://{EVENTS_RELAY_DOMAIN}/prod"
EVENTS_CONNECTION_ID = "ZmFrZUNvbm4xPQ="
EVENTS_PHONE_NUMBER = "+15551234567"
TWILIO_MANAGED_CALL = "CA" + "1" * 32
TWILIO_STREAM_CALL = "CA" + "2" * 32
PLIVO_CALL = "3f6c1c8e-2b1a-4c3e-9d2e-1f0a7b6c5d4e"
_NONCE = "05429567804466091622"
_TIMESTAMP = "Thu, 01 Jan 2026 10:05:00 +0000"


def _twilio(path: str, params: list[tuple[str, str]]) -> CarrierRequest:
    return SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL).sign("POST", path, params)


def _plivo(path: str, params: list[tuple[str, str]]) -> CarrierRequest:
    return SimulatedCarrier("plivo", base_url=EVENTS_PUBLIC_URL).sign("POST", path, params, nonce=_NONCE)


def build_events() -> dict[str, dict[str, Any]]:
    twilio = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    plivo = SimulatedCarrier("plivo", base_url=EVENTS_PUBLIC_URL)
    twilio_status = [
        ("AccountSid", twilio.account_id),
        ("ApiVersion", "2010-04-01"),
        ("CallDuration", "37"),
        ("CallSid", TWILIO_MANAGED_CALL),
        ("CallStatus", "completed"),
        ("CallbackSource", "call-progress-events"),
        ("Direction", "inbound"),
        ("SequenceNumber", "3"),
        ("Timestamp", _TIMESTAMP),
    ]
    plivo_hangup = [
        ("BillDuration", "37"),
        ("CallStatus", "completed"),
        ("CallUUID", PLIVO_CALL),
        ("Direction", "inbound"),
        ("Duration", "37"),
        ("EndTime", "2026-01-01 10:05:00"),
        ("Event", "Hangup"),
        ("From", "14155550100"),
        ("HangupCause", "NORMAL_CLEARING"),
        ("To", EVENTS_PHONE_NUMBER.lstrip("+")),
    ]
    plivo_answer = plivo.incoming_call(to=EVENTS_PHONE_NUMBER, call_id=PLIVO_CALL)
    requests = {
        "twilio-incoming-managed.json": twilio.incoming_call(
            to=EVENTS_PHONE_NUMBER, call_id=TWILIO_MANAGED_CALL
        ),
        "twilio-incoming-stream.json": twilio.incoming_call(
            to=EVENTS_PHONE_NUMBER, call_id=TWILIO_STREAM_CALL
        ),
        "twilio-status-completed.json": _twilio("/call/incoming/status", twilio_status),
        "plivo-answer.json": _plivo("/call/incoming", [(k, v[0]) for k, v in plivo_answer.form.items()]),
        "plivo-hangup.json": _plivo("/call/incoming/status", plivo_hangup),
    }
    return {
        name: http_api_event(request, request_id=f"evt{index:02d}ABCDEFG=")
        for index, (name, request) in enumerate(requests.items())
    }


def build_env_files() -> dict[str, dict[str, dict[str, str]]]:
    """``sam local invoke --env-vars`` files: one per deployed configuration the events exercise."""
    from callkit.testing.carrier import TEST_PLIVO_AUTH_TOKEN, TEST_TWILIO_AUTH_TOKEN

    common = {
        "CALLKIT_PUBLIC_URL": EVENTS_PUBLIC_URL,
        "CALLKIT_TABLE": "",  # the in-memory store: sam local has no table
        "CALLKIT_MEDIA_URL": "wss://media.example.com",
        "CALLKIT_RELAY_URL": "wss://relay.example.com/prod",
        "CALLKIT_PHONE_NUMBER": EVENTS_PHONE_NUMBER,
        "CALLKIT_TOKEN_KEY": "0123456789abcdef" * 4,
        "TWILIO_AUTH_TOKEN": TEST_TWILIO_AUTH_TOKEN,
        "PLIVO_AUTH_TOKEN": TEST_PLIVO_AUTH_TOKEN,
    }
    configs = {
        "env.json": {"CALLKIT_PROVIDER": "twilio", "CALLKIT_PIPELINE": "managed"},
        "env-stream.json": {"CALLKIT_PROVIDER": "twilio", "CALLKIT_PIPELINE": "cascading"},
        "env-plivo.json": {"CALLKIT_PROVIDER": "plivo", "CALLKIT_PIPELINE": "realtime"},
    }
    files = {name: {"WebhookFunction": common | config} for name, config in configs.items()}
    # The relay's own file: fill in OPENAI_API_KEY to let the prompt event reach a real model.
    relay = common | configs["env.json"] | {"CALLKIT_RELAY_URL": EVENTS_RELAY_URL, "OPENAI_API_KEY": ""}
    files["env-relay.json"] = {"RelayFunction": relay, "WebhookFunction": relay}
    return files


#: Which env file each event is meant to be invoked with.
EVENT_ENV = {
    "twilio-incoming-managed.json": "env.json",
    "twilio-incoming-stream.json": "env-stream.json",
    "twilio-status-completed.json": "env.json",
    "plivo-answer.json": "env-plivo.json",
    "plivo-hangup.json": "env-plivo.json",
}


def _socket_event(route: str, *, body: str | None = None, **extra: Any) -> dict[str, Any]:
    """An API Gateway WebSocket proxy event (docs/aws.md §1.2)."""
    context: dict[str, Any] = {
        "routeKey": route,
        "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
        "extendedRequestId": "Xy1aBcDeFgHiJk=",
        "requestTime": "01/Jan/2026:10:00:01 +0000",
        "messageDirection": "IN",
        "stage": "prod",
        "connectedAt": 1767261601000,
        "requestTimeEpoch": 1767261601010,
        "identity": {"sourceIp": "54.172.60.1"},
        "requestId": "Xy1aBcDeFgHiJk=",
        "domainName": EVENTS_RELAY_DOMAIN,
        "connectionId": EVENTS_CONNECTION_ID,
        "apiId": EVENTS_RELAY_DOMAIN.split(".")[0],
    }
    if route == "$default":
        context["messageId"] = "Ymsg0001AAA="
    context |= extra.pop("context", {})
    event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False, **extra}
    if body is not None:
        event["body"] = body
    return event


def build_relay_events() -> dict[str, dict[str, Any]]:
    """``$connect`` (signed like Twilio's upgrade), the ConversationRelay messages, ``$disconnect``."""
    from callkit.carriers import twilio
    from callkit.relay.events import relay_url_for

    carrier = SimulatedCarrier("twilio", base_url=EVENTS_PUBLIC_URL)
    url = relay_url_for(EVENTS_RELAY_URL, TWILIO_MANAGED_CALL)
    headers = {
        "Host": EVENTS_RELAY_DOMAIN,
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "X-Forwarded-For": "54.172.60.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **twilio.signature_headers(carrier.auth_token, "GET", url, None),
    }
    setup = twilio.RelaySetup(
        session_id="VX" + "4" * 32,
        call_id=TWILIO_MANAGED_CALL,
        account_id=carrier.account_id,
        from_number="+14155550100",
        to_number=EVENTS_PHONE_NUMBER,
        direction="inbound",
        call_status="IN-PROGRESS",
        custom_parameters={},
        call_type="PSTN",
    )
    return {
        "relay-connect.json": _socket_event(
            "$connect",
            headers=headers,
            multiValueHeaders={k: [v] for k, v in headers.items()},
            queryStringParameters={"call": TWILIO_MANAGED_CALL},
            multiValueQueryStringParameters={"call": [TWILIO_MANAGED_CALL]},
        ),
        "relay-setup.json": _socket_event("$default", body=twilio.encode_relay_event(setup)),
        "relay-prompt.json": _socket_event(
            "$default",
            body=twilio.encode_relay_event(twilio.RelayPrompt("Where is my order 1001?", "en-US", True)),
        ),
        "relay-interrupt.json": _socket_event(
            "$default",
            body=twilio.encode_relay_event(
                twilio.RelayInterrupt(
                    utterance_until_interrupt="Order 1001 shipped", duration_until_interrupt_ms=1240
                )
            ),
        ),
        "relay-dtmf.json": _socket_event("$default", body=twilio.encode_relay_event(twilio.RelayDtmf("1"))),
        "relay-disconnect.json": _socket_event(
            "$disconnect", context={"disconnectStatusCode": 1000, "disconnectReason": "Client closed"}
        ),
    }


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> None:
    target = Path((argv or sys.argv[1:] or ["events"])[0])
    target.mkdir(parents=True, exist_ok=True)
    files = {**build_events(), **build_relay_events(), **build_env_files()}
    for name, content in files.items():
        (target / name).write_text(render(content))
        print(f"wrote {target / name}")


if __name__ == "__main__":
    main()
