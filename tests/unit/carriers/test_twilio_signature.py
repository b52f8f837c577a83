"""X-Twilio-Signature: the vectors of docs/protocols/twilio.md §2 and an oracle test against twilio-python."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from callkit.carriers._types import SignedRequest
from callkit.carriers.twilio import (
    SIGNATURE_HEADERS,
    compute_signature,
    signature_headers,
    verify_request,
    verify_websocket_handshake,
)
from callkit.errors import ConfigurationError, InvalidSignatureError, MissingSignatureError

FORM = "application/x-www-form-urlencoded"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Caller": ["+14158675309"],
    "Digits": ["1234"],
    "From": ["+14158675309"],
    "To": ["+18005551212"],
}
VOICE_PARAMS = {
    "AccountSid": ["AC" + "a" * 32],
    "ApiVersion": ["2010-04-01"],
    "CallSid": ["CA" + "b" * 32],
    "CallStatus": ["ringing"],
    "Direction": ["inbound"],
    "From": ["+14155550100"],
    "To": ["+14155550199"],
}
JSON_BODY = b'{"property": "value", "boolean": true}'
JSON_URL = (
    "https://mycompany.com/myapp.php?foo=1&bar=2"
    "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
)


def form_post(url: str, params: dict[str, list[str]], signature: str | None) -> SignedRequest:
    headers = {"content-type": FORM}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return SignedRequest("POST", url, headers, urlencode(params, doseq=True).encode())


# --- docs/protocols/twilio.md §2 vectors, verbatim ---------------------------------------------------------------


def test_vector_form_post() -> None:
    assert compute_signature("12345", VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    verify_request(form_post(VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), "12345")


def test_vector_with_default_port() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert compute_signature("12345", with_port, VECTOR_PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    # Twilio is inconsistent about the port: either signature passes for either URL.
    for url in (VECTOR_URL, with_port):
        for signature in ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", "kvajT1Ptam85bY51eRf/AJRuM3w="):
            verify_request(form_post(url, VECTOR_PARAMS, signature), "12345")


def test_vector_voice_webhook() -> None:
    url = "https://voice.example.com/twilio/voice"
    assert compute_signature("test_auth_token", url, VOICE_PARAMS) == "B+aeKrueEo36m/LMLTL6rzL/tag="
    verify_request(form_post(url, VOICE_PARAMS, "B+aeKrueEo36m/LMLTL6rzL/tag="), "test_auth_token")


def test_vector_body_sha256() -> None:
    headers = {"content-type": "application/json", "x-twilio-signature": "a9nBmqA0ju/hNViExpshrM61xv4="}
    verify_request(SignedRequest("POST", JSON_URL, headers, JSON_BODY), "12345")
    with pytest.raises(InvalidSignatureError):
        verify_request(SignedRequest("POST", JSON_URL, headers, JSON_BODY + b" "), "12345")


def test_vector_websocket_handshake() -> None:
    url = "wss://voice.example.com/twilio/relay"
    assert compute_signature("test_auth_token", url, None) == "aH+L624J0FH8VOBXJ/E4v/6UWcs="
    verify_websocket_handshake(url, {"x-twilio-signature": "aH+L624J0FH8VOBXJ/E4v/6UWcs="}, "test_auth_token")
    # Header case does not matter, and the default wss port may be in the URL.
    with_port = "wss://voice.example.com:443/twilio/relay"
    verify_websocket_handshake(
        with_port, {"X-Twilio-Signature": "aH+L624J0FH8VOBXJ/E4v/6UWcs="}, "test_auth_token"
    )


# --- behaviour --------------------------------------------------------------------------------------


def test_signature_headers_identify_the_carrier() -> None:
    assert SIGNATURE_HEADERS == ("x-twilio-signature",)


def test_missing_or_empty_header() -> None:
    with pytest.raises(MissingSignatureError):
        verify_request(form_post(VECTOR_URL, VECTOR_PARAMS, None), "12345")
    with pytest.raises(MissingSignatureError):
        verify_request(form_post(VECTOR_URL, VECTOR_PARAMS, ""), "12345")
    with pytest.raises(MissingSignatureError):
        verify_websocket_handshake("wss://a.example/x", {}, "t")


def test_get_signs_the_url_only() -> None:
    url = "https://voice.example.com/twilio/voice?CallSid=CA1&From=%2B1415"
    headers = {k.lower(): v for k, v in signature_headers("tok", "GET", url, None).items()}
    assert headers == {"x-twilio-signature": compute_signature("tok", url, None)}
    verify_request(SignedRequest("GET", url, headers), "tok")
    with pytest.raises(InvalidSignatureError):
        verify_request(SignedRequest("GET", url + "&x=1", headers), "tok")


def test_signature_headers_sign_a_post_like_twilio() -> None:
    url = "https://voice.example.com/twilio/voice"
    headers = signature_headers("test_auth_token", "POST", url, VOICE_PARAMS)
    assert headers == {"X-Twilio-Signature": "B+aeKrueEo36m/LMLTL6rzL/tag="}


def test_signature_headers_json_body_needs_matching_hash() -> None:
    assert signature_headers("12345", "POST", JSON_URL, None, JSON_BODY) == {
        "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="
    }
    with pytest.raises(ConfigurationError):
        signature_headers("12345", "POST", VECTOR_URL, None, JSON_BODY)


def test_repeated_names_sort_their_values() -> None:
    params = {"b": ["2", "1"], "a": ["x"]}
    assert compute_signature("t", "https://h/p", params) == compute_signature(
        "t", "https://h/pax", {"b": ["1", "2"]}
    )


def test_form_body_that_is_not_utf8_is_invalid() -> None:
    request = SignedRequest(
        "POST", VECTOR_URL, {"x-twilio-signature": "abc=", "content-type": FORM}, b"a=\xff"
    )
    with pytest.raises(InvalidSignatureError):
        verify_request(request, "12345")


def test_non_ascii_signature_is_rejected_not_crashing() -> None:
    with pytest.raises(InvalidSignatureError):
        verify_request(form_post(VECTOR_URL, VECTOR_PARAMS, "ßignature"), "12345")


def test_websocket_query_signed_either_way() -> None:
    token, bare, query = "tok", "wss://relay.example.com/twilio/relay", "tenant=acme&x=a%20b"
    full = f"{bare}?{query}"
    as_url = compute_signature(token, full, None)
    as_params = compute_signature(token, bare, {"tenant": ["acme"], "x": ["a b"]})
    for signature in (as_url, as_params):
        verify_websocket_handshake(full, {"x-twilio-signature": signature}, token)
    with pytest.raises(InvalidSignatureError):
        verify_websocket_handshake(full, {"x-twilio-signature": compute_signature(token, bare, None)}, token)
    with pytest.raises(InvalidSignatureError):
        verify_websocket_handshake(full, {"x-twilio-signature": as_url}, "other")


# --- oracle: twilio-python's RequestValidator ---------------------------------------------------------


class _ListParams(dict[str, list[str]]):
    """What RequestValidator reads repeated names from (it calls ``getlist``, like Django's QueryDict)."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


_CHARS = "aZ09 +&=%?#/é中😀-_.~\t"
_HOSTS = ("voice.example.com", "mycompany.com", "h.example.org")
_PORTS = ("", ":443", ":80", ":8443")
_QUERIES = ("", "?foo=1&bar=2", "?a=b+c&d=%20e&e=", "?x=%2B1&x=2", "?", "?only")


@dataclass
class _Case:
    method: str
    url: str
    params: dict[str, list[str]]
    json_body: str | None
    signature: str
    token: str


def _text(rng: random.Random, min_size: int = 0) -> str:
    return "".join(rng.choice(_CHARS) for _ in range(rng.randint(min_size, 8)))


def _url(rng: random.Random) -> str:
    path = rng.choice(("/", "/twilio/voice", "/a b/ü", "/x;y"))
    return f"{rng.choice(('http', 'https'))}://{rng.choice(_HOSTS)}{rng.choice(_PORTS)}{path}{rng.choice(_QUERIES)}"


def _params(rng: random.Random) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for _ in range(rng.randint(0, 6)):
        name = _text(rng, min_size=1).strip() or "N"
        values = params.setdefault(name, [])
        values.extend(rng.choice(("", _text(rng), "1")) for _ in range(rng.randint(1, 3)))
    return params


def _toggle_port(url: str) -> str:
    scheme, rest = url.split("://", 1)
    host, slash, tail = rest.partition("/")
    if ":" in host:
        return f"{scheme}://{host.split(':')[0]}{slash}{tail}"
    return f"{scheme}://{host}:{443 if scheme == 'https' else 80}{slash}{tail}"


def _case(rng: random.Random) -> _Case:
    token = "tok-" + _text(rng)
    method = rng.choice(("GET", "POST", "POST"))
    url, params, json_body = _url(rng), _params(rng), None
    if method == "POST" and rng.random() < 0.15:
        json_body = '{"k": "' + _text(rng) + '"}'
        digest = hashlib.sha256(json_body.encode()).hexdigest()
        if rng.random() < 0.2:
            digest = digest[::-1]
        sep = "&" if "?" in url and not url.endswith("?") else ("" if url.endswith("?") else "?")
        url, params = f"{url}{sep}bodySHA256={digest}", {}
    signed_params = params if method == "POST" else {}
    sign_url, sign_token = url, token
    tamper = rng.choice(("none", "none", "port", "value", "url", "token", "truncate", "other-url"))
    if tamper == "port":
        sign_url = _toggle_port(url)
    elif tamper == "value" and signed_params:
        name = rng.choice(sorted(signed_params))
        signed_params = {**signed_params, name: [*signed_params[name][:-1], signed_params[name][-1] + "x"]}
    elif tamper == "url":
        sign_url = url.replace("://", "://x", 1)
    elif tamper == "token":
        sign_token = token + "x"
    elif tamper == "other-url":
        sign_url = _url(rng)
    signature = RequestValidator(sign_token).compute_signature(sign_url, _ListParams(signed_params))
    if tamper == "truncate":
        signature = signature[: rng.randint(0, len(signature) - 1)]
    return _Case(method, url, params, json_body, signature, token)


def test_verify_request_agrees_with_twilio_request_validator() -> None:
    rng = random.Random(20240531)
    outcomes = {True: 0, False: 0}
    for _ in range(300):
        case = _case(rng)
        validator = RequestValidator(case.token)
        headers = {"x-twilio-signature": case.signature}
        if case.json_body is not None:
            headers["content-type"] = "application/json"
            request = SignedRequest("POST", case.url, headers, case.json_body.encode())
            expected = validator.validate(case.url, case.json_body, case.signature)
        elif case.method == "POST":
            headers["content-type"] = FORM
            request = SignedRequest("POST", case.url, headers, urlencode(case.params, doseq=True).encode())
            expected = validator.validate(case.url, _ListParams(case.params), case.signature)
        else:
            request = SignedRequest("GET", case.url, headers)
            expected = validator.validate(case.url, {}, case.signature)
        try:
            verify_request(request, case.token)
            accepted = True
        except InvalidSignatureError:
            accepted = False
        except MissingSignatureError:
            assert case.signature == ""  # a truncation to nothing; the oracle rejects it too
            accepted = False
        assert accepted == expected, case
        outcomes[accepted] += 1
    # Every case reached the comparison; both outcomes are well represented.
    assert sum(outcomes.values()) == 300
    assert outcomes[True] >= 60
    assert outcomes[False] >= 60
