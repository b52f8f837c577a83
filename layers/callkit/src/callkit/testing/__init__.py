"""Fakes that speak the real wire protocols on loopback, for tests, benchmarks and the demo.

- ``SimulatedCarrier``: places calls and sends status callbacks signed exactly like Twilio or Plivo.
- ``http_api_event``: the same requests as API Gateway HTTP API events (what Lambda receives).
- ``parse_answer``: reads back the TwiML / Plivo XML a carrier gets.
"""

from callkit.testing.answers import ParsedAnswer, parse_answer
from callkit.testing.aws import LambdaContext, http_api_event
from callkit.testing.carrier import (
    TEST_PLIVO_AUTH_ID,
    TEST_PLIVO_AUTH_TOKEN,
    TEST_TWILIO_ACCOUNT_SID,
    TEST_TWILIO_AUTH_TOKEN,
    CarrierRequest,
    CarrierResponse,
    SimulatedCarrier,
    new_call_id,
)

__all__ = [
    "TEST_PLIVO_AUTH_ID",
    "TEST_PLIVO_AUTH_TOKEN",
    "TEST_TWILIO_ACCOUNT_SID",
    "TEST_TWILIO_AUTH_TOKEN",
    "CarrierRequest",
    "CarrierResponse",
    "LambdaContext",
    "ParsedAnswer",
    "SimulatedCarrier",
    "http_api_event",
    "new_call_id",
    "parse_answer",
]
