"""SigV4: the AWS test-suite vectors, and botocore's ``SigV4Auth`` as an oracle for random requests."""

from __future__ import annotations

import calendar
import datetime
import hashlib
import random
import re
import string
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest

from callkit.aws.credentials import Credentials
from callkit.aws.sigv4 import canonical_request, sign

# The AWS SigV4 test suite's credentials and clock (aws-sig-v4-test-suite, "get-vanilla" etc.).
EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
EXAMPLE_TIME = calendar.timegm((2015, 8, 30, 12, 36, 0))
EXAMPLE_SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # get-vanilla
        (
            "https://example.amazonaws.com/",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        # get-vanilla-query-order-key-case: the query is signed sorted.
        (
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
    ],
)
def test_published_vectors(url: str, signature: str) -> None:
    added = sign(
        method="GET",
        url=url,
        headers={},
        body=b"",
        service="service",
        region="us-east-1",
        credentials=EXAMPLE,
        now=EXAMPLE_TIME,
    )
    assert added == {
        "Host": "example.amazonaws.com",
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={EXAMPLE_SCOPE}, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}",
    }


def test_canonical_request_of_get_vanilla() -> None:
    request, signed = canonical_request(
        "GET",
        "https://example.amazonaws.com/",
        {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"},
        hashlib.sha256(b"").hexdigest(),
    )
    assert signed == "host;x-amz-date"
    assert request == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_token_and_payload_hash_headers_are_signed() -> None:
    added = sign(
        method="POST",
        url="https://dynamodb.eu-west-1.amazonaws.com/",
        headers={"Content-Type": "application/x-amz-json-1.0"},
        body=b"{}",
        service="dynamodb",
        region="eu-west-1",
        credentials=Credentials("AKID", "secret", "session-token"),
        now=EXAMPLE_TIME,
        content_sha256_header=True,
    )
    assert added["X-Amz-Security-Token"] == "session-token"
    assert added["X-Amz-Content-Sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert (
        "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"
        in (added["Authorization"])
    )


def test_credentials_repr_hides_secrets() -> None:
    text = repr(Credentials("AKID", "the-secret", "the-token"))
    assert "AKID" in text
    assert "the-secret" not in text
    assert "the-token" not in text


# --- botocore as the oracle -------------------------------------------------------------------

CASES = 200
HOSTS = [
    "dynamodb.us-east-1.amazonaws.com",
    "abc123xyz.execute-api.eu-west-1.amazonaws.com",
    "localhost:8000",
    "127.0.0.1:4566",
    "Example.AmazonAWS.com",
    "example.com:443",
    "[::1]:8443",
]
SERVICES = ["dynamodb", "execute-api"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
#: Path and query text: unreserved, reserved, spaces, percent signs, non-ASCII.
TEXT = string.ascii_letters + string.digits + "-_.~ !$&'()*+,;=:@%/?#[]é✓" + "\u00a0"
HEADER_NAMES = ["Content-Type", "X-Amz-Target", "X-Custom", "x-amz-meta-Thing", "Accept", "Range"]
UNSIGNED_NAMES = ["User-Agent", "X-Amzn-Trace-Id", "Expect"]


def _text(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(low, high)))


def _path(rng: random.Random) -> str:
    segments = []
    for _ in range(rng.randint(0, 5)):
        kind = rng.random()
        if kind < 0.1:
            segments.append(rng.choice([".", "..", ""]))
        elif kind < 0.2:
            segments.append("@connections")
        else:
            # As a serializer would put it on the wire: percent-encoded, some sub-delims left raw.
            segments.append(quote(_text(rng, 1, 8), safe=rng.choice(["", "@=:+$!", "-_.~"])))
    path = "/" + "/".join(segments)
    return path + "/" if rng.random() < 0.2 else path


def _header_value(rng: random.Random) -> str:
    words = ["".join(rng.choice(string.ascii_letters + "=/;,.") for _ in range(rng.randint(1, 6)))]
    words += ["".join(rng.choice(string.printable[:62]) for _ in range(3)) for _ in range(rng.randint(0, 3))]
    spaces = [rng.choice([" ", "  ", "\t", " \t "]) for _ in words]
    return rng.choice(["", " ", "  "]) + "".join(w + s for w, s in zip(words, spaces, strict=True))


@dataclass(frozen=True)
class Case:
    method: str
    base: str  # scheme, host and path, no query
    params: list[tuple[str, str]]  # raw (name, value) pairs
    headers: dict[str, str]
    body: bytes
    service: str
    region: str
    access_key: str
    secret_key: str
    token: str | None
    now: float
    spelling: str  # how our URL spells the query: canonical, quote() or lower-case hex escapes

    def url(self) -> str:
        if self.spelling == "canonical":
            query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in self.params)
        else:
            query = urlencode(self.params, quote_via=quote)
            if self.spelling == "lower":
                query = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), query)
        return f"{self.base}?{query}" if query else self.base


def _case(seed: int) -> Case:
    rng = random.Random(seed)
    host = rng.choice(HOSTS)
    scheme = rng.choice(["https", "http"])
    params = [(_text(rng, 1, 5), _text(rng, 0, 6)) for _ in range(rng.randint(0, 4))]
    if params and rng.random() < 0.5:
        params.append((params[0][0], _text(rng, 0, 4)))  # a repeated name: sorted by value too
    headers = {rng.choice(HEADER_NAMES): _header_value(rng) for _ in range(rng.randint(0, 4))}
    if rng.random() < 0.3:
        headers[rng.choice(UNSIGNED_NAMES)] = _header_value(rng)
    return Case(
        method=rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
        base=f"{scheme}://{host}{_path(rng)}",
        params=params,
        headers=headers,
        body=bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 1, 17, 300]))),
        service=rng.choice(SERVICES),
        region=rng.choice(REGIONS),
        access_key="AKIA" + "".join(rng.choice(string.ascii_uppercase) for _ in range(16)),
        secret_key="".join(rng.choice(string.ascii_letters + "+/") for _ in range(40)),
        token=rng.choice([None, "".join(rng.choice(string.ascii_letters + "+/=") for _ in range(80))]),
        now=rng.randint(1_400_000_000, 2_100_000_000) + rng.random(),
        spelling=rng.choice(["canonical", "quote", "lower"]),
    )


@pytest.mark.parametrize("seed", range(CASES))
def test_matches_botocore(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    case = _case(seed)

    ours = sign(
        method=case.method,
        url=case.url(),
        headers=case.headers,
        body=case.body,
        service=case.service,
        region=case.region,
        credentials=Credentials(case.access_key, case.secret_key, case.token),
        now=case.now,
    )

    # botocore gets the query as raw pairs and encodes them itself; its clock is pinned to ours.
    request = AWSRequest(
        method=case.method, url=case.base, headers=case.headers, data=case.body, params=case.params
    )
    fixed = datetime.datetime.fromtimestamp(case.now, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    credentials = botocore.credentials.Credentials(case.access_key, case.secret_key, case.token)
    botocore.auth.SigV4Auth(credentials, case.service, case.region).add_auth(request)

    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")
    assert ours["Host"] == botocore.auth._host_from_url(case.base)


def test_oracle_cases_cover_what_they_claim() -> None:
    """The random cases reach the rules under test (else agreeing with botocore proves little)."""
    cases = [_case(seed) for seed in range(CASES)]
    paths = [urlsplit(c.base).path for c in cases]
    assert any("%25" in p for p in paths)  # a percent sign, encoded twice when signed
    assert any("%C3%A9" in p for p in paths)  # non-ASCII
    assert any("@" in p and "=" in p for p in paths)  # sub-delimiters left raw
    assert any("/./" in p or "/../" in p or "//" in p for p in paths)
    assert any(len({k for k, _ in c.params}) < len(c.params) for c in cases)
    assert any(c.spelling == "lower" and "%" in c.url() for c in cases)
    assert any(c.token is None for c in cases)
    assert any(c.token is not None for c in cases)
    assert {c.service for c in cases} == set(SERVICES)
    assert {c.method for c in cases} >= {"GET", "POST"}
    assert any("  " in v or "\t" in v for c in cases for v in c.headers.values())
    assert any(name in c.headers for c in cases for name in UNSIGNED_NAMES)
    assert any(urlsplit(c.base).port == 443 for c in cases)  # a default port, left out of host
