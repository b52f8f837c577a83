"""Plivo Signature V3: the docs/protocols/plivo.md §4 vectors, an oracle test against plivo-python, edge cases."""

from __future__ import annotations

import copy
import random
from urllib.parse import urlencode

import pytest
from plivo.utils import validate_v3_signature

from callkit.carriers._types import SignedRequest, parse_form
from callkit.carriers.plivo import (
    SIGNATURE_HEADERS,
    compute_signature,
    signature_headers,
    verify_request,
    verify_websocket_handshake,
)
from callkit.carriers.plivo.signature import canonical_string
from callkit.errors import InvalidSignatureError, MissingSignatureError

TOKEN = "my_auth_token"
NONCE = "05429567804466091622"
CALL = {
    "CallUUID": ["abc-123"],
    "From": ["14155550100"],
    "To": ["14155550199"],
    "Direction": ["inbound"],
    "CallStatus": ["ringing"],
}
SHORT = {"CallUUID": ["abc-123"], "From": ["14155550100"]}

# docs/protocols/plivo.md §4, verbatim: method, URL, params, signed string (without ".nonce"), signature.
VECTORS = [
    (
        "POST",
        "https://example.com/answer",
        CALL,
        "https://example.com/answer?CallStatusringingCallUUIDabc-123DirectioninboundFrom14155550100To14155550199",
        "iGkBWLsoCDm4P3qBhorTpuLs9m+2aAOBxcMjfM7koa0=",
    ),
    (
        "POST",
        "https://example.com/answer?x=1&a=2",
        SHORT,
        "https://example.com/answer?a=2&x=1.CallUUIDabc-123From14155550100",
        "A6+m0puTL+3hPg38uvMXbKvmt5DhM4jJ1cIj3L8pOvM=",
    ),
    (
        "GET",
        "https://example.com/answer?x=1",
        SHORT,
        "https://example.com/answer?CallUUID=abc-123&From=14155550100&x=1",
        "y6mQVoN44bg0Xk5mTcKd8qHo17aH6Z7Jo1KsxH6Mrqs=",
    ),
    (
        "GET",
        "https://example.com/stream",
        None,
        "https://example.com/stream",
        "XvVpKKvVBmLF2ckvq4wrYsMqkFoTABx0ryRqQgF6xVE=",
    ),
    (
        "POST",
        "https://example.com/answer",
        None,
        "https://example.com/answer",
        "pT2ohZ0edZd668UxiYAFn+K8aG5paMBnH/XDztzZrx4=",
    ),
]


def _request(
    method: str, url: str, params: dict[str, list[str]] | None, headers: dict[str, str]
) -> SignedRequest:
    """The request Plivo would send: POST fields in the body, GET fields in the query string."""
    if method == "GET" and params:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, doseq=True)}"
    body = urlencode(params or {}, doseq=True).encode() if method == "POST" else b""
    headers = {"content-type": "application/x-www-form-urlencoded", **headers}
    return SignedRequest(method=method, url=url, headers=headers, body=body)


def _accepted(request: SignedRequest, token: str) -> bool:
    try:
        verify_request(request, token)
    except InvalidSignatureError:
        return False
    return True


@pytest.mark.parametrize(("method", "url", "params", "signed", "signature"), VECTORS)
def test_vectors(
    method: str, url: str, params: dict[str, list[str]] | None, signed: str, signature: str
) -> None:
    assert canonical_string(method, url, params) == signed
    assert compute_signature(TOKEN, method, url, params, NONCE) == signature
    headers = {"x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": NONCE}
    verify_request(_request(method, url, params, headers), TOKEN)


@pytest.mark.parametrize(("method", "url", "params", "signed", "signature"), VECTORS)
def test_vectors_in_a_list_of_signatures_and_in_the_main_account_header(
    method: str, url: str, params: dict[str, list[str]] | None, signed: str, signature: str
) -> None:
    rotated = f"bm90IGl0Cg==,{signature},c3RpbGwgbm90Cg=="
    for name in SIGNATURE_HEADERS:
        verify_request(
            _request(method, url, params, {name: rotated, "x-plivo-signature-v3-nonce": NONCE}), TOKEN
        )
    both = {"x-plivo-signature-v3": "bm90IGl0Cg==", "x-plivo-signature-ma-v3": signature}
    verify_request(_request(method, url, params, {**both, "x-plivo-signature-v3-nonce": NONCE}), TOKEN)


def test_missing_headers() -> None:
    signature = VECTORS[0][4]
    with pytest.raises(MissingSignatureError):
        verify_request(_request("POST", VECTORS[0][1], CALL, {"x-plivo-signature-v3-nonce": NONCE}), TOKEN)
    with pytest.raises(MissingSignatureError):
        verify_request(_request("POST", VECTORS[0][1], CALL, {"x-plivo-signature-v3": signature}), TOKEN)
    # A V2 signature alone proves nothing here (docs/protocols/plivo.md §4: V3 is on every callback).
    v2 = {"x-plivo-signature-v2": signature, "x-plivo-signature-v2-nonce": NONCE}
    with pytest.raises(MissingSignatureError):
        verify_request(_request("POST", VECTORS[0][1], CALL, v2), TOKEN)


def test_rejections() -> None:
    method, url, _, _, signature = VECTORS[0]
    params = CALL
    good = {"x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": NONCE}
    spaced = {**good, "x-plivo-signature-v3": f"bm90IGl0Cg==, {signature}"}
    for request, token in [
        (_request(method, url, params, good), "other_token"),
        (_request(method, url, {**params, "To": ["14155550198"]}, good), TOKEN),
        (_request(method, url + "/", params, good), TOKEN),
        (_request(method, url, params, {**good, "x-plivo-signature-v3-nonce": "1"}), TOKEN),
        (_request(method, url, params, {**good, "x-plivo-signature-v3": signature[:-1]}), TOKEN),
        (_request(method, url, params, {**good, "x-plivo-signature-v3": ""}), TOKEN),
        # plivo-python splits on "," and strips nothing; a space before a signature spoils it.
        (_request(method, url, params, spaced), TOKEN),
        (_request(method, url, params, {**good, "x-plivo-signature-v3": "ü" + signature}), TOKEN),
        (SignedRequest("PUT", url, good, b""), TOKEN),
        (SignedRequest("POST", url, good, b"From=\xff"), TOKEN),
    ]:
        with pytest.raises(InvalidSignatureError):
            verify_request(request, token)


def test_method_is_case_insensitive() -> None:
    method, url, params, _, signature = VECTORS[2]
    request = _request(
        method, url, params, {"x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": NONCE}
    )
    verify_request(SignedRequest("get", request.url, request.headers, request.body), TOKEN)


def test_websocket_handshake_tries_the_url_as_written_and_http_variants() -> None:
    url = "wss://media.example.com/plivo"
    for signed_url in (url, "https://media.example.com/plivo", "http://media.example.com/plivo"):
        signature = compute_signature(TOKEN, "GET", signed_url, None, NONCE)
        # Header names arrive in any case from a WebSocket server.
        verify_websocket_handshake(
            url, {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE}, TOKEN
        )
    other = compute_signature(TOKEN, "GET", "https://media.example.com/other", None, NONCE)
    with pytest.raises(InvalidSignatureError):
        verify_websocket_handshake(
            url, {"x-plivo-signature-v3": other, "x-plivo-signature-v3-nonce": NONCE}, TOKEN
        )
    with pytest.raises(MissingSignatureError):
        verify_websocket_handshake(url, {"x-plivo-signature-v3-nonce": NONCE}, TOKEN)


def test_signature_headers_are_what_verify_accepts() -> None:
    url = "https://voice.example.com/plivo/answer"
    body = urlencode(CALL, doseq=True).encode()
    headers = signature_headers(TOKEN, "POST", url, None, body)
    assert set(headers) == {"X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3", "X-Plivo-Signature-V3-Nonce"}
    nonce = headers["X-Plivo-Signature-V3-Nonce"]
    assert len(nonce) == 20
    assert nonce.isdigit()
    assert headers["X-Plivo-Signature-V3"] == headers["X-Plivo-Signature-Ma-V3"]
    lowered = {name.lower(): value for name, value in headers.items()}
    verify_request(SignedRequest("POST", url, lowered, body), TOKEN)
    assert signature_headers(TOKEN, "POST", url, CALL, nonce=nonce) == headers
    assert signature_headers(TOKEN, "GET", url, None, nonce=NONCE)[
        "X-Plivo-Signature-V3"
    ] == compute_signature(TOKEN, "GET", url, None, NONCE)


# --- oracle: plivo-python's validate_v3_signature ------------------------------------------------

# The oracle cannot take everything: its URL validator wants http(s)://, urlparse on bytes wants an
# ASCII URL, and its query parser re-encodes decoded query values as ASCII (it raises on %C3%A9).
# So URL queries hold ASCII only; unicode goes in POST fields and in GET params passed directly.
_ASCII = "abcXYZ019 +&=%?#.,;/-_~"
_UNICODE = _ASCII + "éß日😀\u00a0"
_SAFE_PATH = "abcXYZ019-_.~%20"


def _text(rng: random.Random, alphabet: str, longest: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


def _params(rng: random.Random, alphabet: str) -> dict[str, list[str]]:
    # Short names from a small pool so GET query and params names collide now and then.
    names = {
        rng.choice(["a", "x", "From", ""]) if rng.random() < 0.3 else _text(rng, alphabet, 6)
        for _ in range(rng.randint(0, 5))
    }
    return {name: [_text(rng, alphabet, 8) for _ in range(rng.randint(1, 3))] for name in names}


def _url(rng: random.Random) -> str:
    host = rng.choice(["example.com", "voice.Example.com", "127.0.0.1", "a.b.example.org"])
    port = rng.choice(["", "", ":443", ":8080"])
    path = "".join("/" + _text(rng, _SAFE_PATH, 5) for _ in range(rng.randint(0, 3)))
    url = f"{rng.choice(['http', 'https'])}://{host}{port}{path}"
    query = _params(rng, _ASCII) if rng.random() < 0.5 else {}
    if query:
        url += "?" + urlencode(query, doseq=True)
    if rng.random() < 0.1:
        url += ("&" if query else "?") + "flag"  # a name without "=": a blank value
    if rng.random() < 0.1:
        url += "#frag"
    return url


def _oracle(method: str, request: SignedRequest, token: str) -> bool:
    """plivo-python's verdict on ``request``: either V3 header may carry the signature."""
    nonce = request.headers["x-plivo-signature-v3-nonce"]
    params = parse_form(request.body) if method == "POST" else {}
    return any(
        # The oracle mutates params on GET (dict.update with the query): hand it a copy.
        validate_v3_signature(method, request.url, nonce, token, request.headers[name], copy.deepcopy(params))
        for name in SIGNATURE_HEADERS
        if name in request.headers
    )


def _variants(
    rng: random.Random, method: str, url: str, params: dict[str, list[str]], token: str
) -> list[tuple[str, SignedRequest, str]]:
    nonce = rng.choice([f"{rng.randrange(10**20):020d}", _text(rng, _UNICODE, 12) or "n"])
    signed_url = _request(method, url, params, {}).url
    signature = compute_signature(token, method, signed_url, params if method == "POST" else None, nonce)
    header = rng.choice([("x-plivo-signature-v3",), ("x-plivo-signature-ma-v3",), SIGNATURE_HEADERS])

    def build(
        *,
        url: str = url,
        params: dict[str, list[str]] = params,
        signature: str = signature,
        nonce: str = nonce,
    ) -> SignedRequest:
        return _request(
            method, url, params, {**dict.fromkeys(header, signature), "x-plivo-signature-v3-nonce": nonce}
        )

    changed = copy.deepcopy(params)
    if changed:
        name = rng.choice(sorted(changed))
        changed[name][0] += rng.choice(["x", " ", "é"] if method == "POST" else ["x", " "])
    else:
        changed["x"] = ["1"]
    other_url = rng.choice(
        [
            url.replace("://", "s://", 1) if url.startswith("http:") else url.replace("https", "http", 1),
            url.replace("://", "://www.", 1),
            url.split("?")[0] + "x" + url[len(url.split("?")[0]) :],
        ]
    )
    return [
        ("genuine", build(), token),
        ("rotated", build(signature=f"{signature[::-1]},{signature}"), token),
        ("changed value", build(params=changed), token),
        ("changed url", build(url=other_url), token),
        ("wrong token", build(), token + "x"),
        ("wrong nonce", build(nonce=nonce + "0"), token),
        ("truncated", build(signature=signature[: rng.randrange(len(signature))]), token),
    ]


def test_oracle_agrees_on_generated_requests() -> None:
    rng = random.Random(20240611)
    verdicts: dict[tuple[str, bool], int] = {}
    cases = 0
    for _ in range(300):
        method = rng.choice(["GET", "POST"])
        url = _url(rng)
        params = _params(rng, _UNICODE if method == "POST" else _ASCII)
        token = rng.choice(["my_auth_token", _text(rng, _UNICODE, 30) or "t"])
        if method == "POST":
            assert parse_form(urlencode(params, doseq=True)) == params
        for kind, request, verify_token in _variants(rng, method, url, params, token):
            expected = _oracle(method, request, verify_token)
            assert _accepted(request, verify_token) is expected, (kind, request)
            verdicts[kind, expected] = verdicts.get((kind, expected), 0) + 1
            cases += 1
    assert cases >= 200
    assert verdicts["genuine", True] == verdicts["rotated", True] == 300
    for kind in ("changed value", "changed url", "wrong token", "wrong nonce", "truncated"):
        assert verdicts.get((kind, False), 0) > 250, kind


def test_oracle_agrees_on_unicode_params_passed_directly() -> None:
    # GET fields with unicode cannot ride in the URL for the oracle (see above), but both accept
    # params alongside a URL: this covers the GET merge rule, where query values win over params.
    rng = random.Random(7)
    for _ in range(300):
        method = rng.choice(["GET", "POST"])
        url = _url(rng)
        params = _params(rng, _UNICODE)
        signature = compute_signature(TOKEN, method, url, params, NONCE)
        assert validate_v3_signature(method, url, NONCE, TOKEN, signature, copy.deepcopy(params))
        assert not validate_v3_signature(method, url, NONCE, TOKEN, signature, {**params, "zz": ["1"]})
