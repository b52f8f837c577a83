"""End-to-end fixtures: DynamoDB on a moto server, reached over loopback HTTP by a botocore client;
and a scan of every log record each end-to-end test makes (issue 14; README.md: "Phone numbers,
transcripts and DTMF digits are never logged").
"""

from __future__ import annotations

import logging
import re
import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from callkit.aws_clients import AwsClients
from callkit.store import DynamoDBCallStore, create_table
from callkit.store._base import CallStore
from callkit.testing.carrier import TEST_PLIVO_AUTH_TOKEN, TEST_TWILIO_AUTH_TOKEN
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY
from callkit.testing.openai_realtime import TEST_OPENAI_API_KEY


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallStore]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    # moto's backends are process-wide, shared by every server in it: start from empty ones.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=5
    ).close()
    client = AwsClients().client("dynamodb", endpoint_url=f"http://{host}:{port}")
    create_table(client, "calls")
    yield DynamoDBCallStore("calls", client)
    server.stop()


# --- the log scan -------------------------------------------------------------------------------

#: What no log record may carry, in its message, its fields or its exception text: the secrets the
#: tests use (carrier auth tokens, the fakes' keys, the stream token key of test_media_server.py),
#: phone numbers, what callers say in the tests' scripts, and the keypad phrase a DTMF digit becomes
#: (callkit/call/phrases.py).
SECRETS = (
    TEST_TWILIO_AUTH_TOKEN,
    TEST_PLIVO_AUTH_TOKEN,
    "carrier-token",
    TEST_DEEPGRAM_API_KEY,
    TEST_OPENAI_API_KEY,
    "cartesia-key",
    "sk_car_test",
    "k" * 32,
)
FORBIDDEN = re.compile(
    "|".join(
        [
            *(re.escape(secret) for secret in SECRETS),
            r"\+\d{10,15}",  # a number in E.164 form
            r"(?<![\w])1?(?:415555\d{4}|555\d{7})(?![\w])",  # the tests' numbers without the '+'
            r"76317c[0-9a-f]{16,}",  # a stream token: hex("v1|" + call id ...), callkit/tokens.py
            r"where is my order",
            r"order 100\d",
            r"talk to a person",
            r"caller pressed",
        ]
    ),
    re.IGNORECASE,
)
#: Structured fields that would carry a keypad digit.
DIGIT_FIELDS = frozenset({"digit", "digits", "dtmf"})
#: Loggers of the test side (the fakes, the simulated carrier, moto), not of what is deployed.
TEST_SIDE = ("callkit.testing", "werkzeug", "moto")
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class _Scan(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.leaks: list[str] = []
        self.records = 0
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(TEST_SIDE):
            return
        self.records += 1
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        fields = extra.get("callkit")
        nested: dict[str, object] = fields if isinstance(fields, dict) else {}
        text = " ".join(
            [
                record.getMessage(),
                repr(extra),
                self._formatter.formatException(record.exc_info) if record.exc_info else "",
                record.stack_info or "",
            ]
        )
        found = FORBIDDEN.findall(text)
        keys = DIGIT_FIELDS & {str(k).lower() for k in (*extra, *nested)}
        if found or keys:
            self.leaks.append(
                f"{record.name} {record.levelname} {record.getMessage()[:200]!r}: {found or keys}"
            )


@pytest.fixture(autouse=True)
def log_scan() -> Iterator[None]:
    """Every record logged during the test at the production level (INFO) and above: none may
    carry a number, a caller's words, a digit, a token or a key."""
    scan = _Scan()
    root, ours = logging.getLogger(), logging.getLogger("callkit")
    saved = ours.level
    ours.setLevel(min(logging.INFO, ours.getEffectiveLevel()))
    root.addHandler(scan)
    try:
        yield
    finally:
        root.removeHandler(scan)
        ours.setLevel(saved)
    assert not scan.leaks, "\n".join(scan.leaks)
