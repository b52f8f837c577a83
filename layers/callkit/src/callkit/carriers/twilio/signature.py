"""``X-Twilio-Signature``: compute and verify (docs/protocols/twilio.md §2).

base64(HMAC-SHA1(auth token, URL + sorted params as name+value)). Verification mirrors
twilio-python's ``RequestValidator``: the URL is tried without its port and with the default port
added, repeated values are de-duplicated before sorting, and a JSON body is covered by the
``bodySHA256`` query parameter instead of the params.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING
from urllib.parse import ParseResult, parse_qs, urlparse

from callkit.errors import ConfigurationError, InvalidSignatureError, MissingSignatureError, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from callkit.carriers._types import Form, SignedRequest

__all__ = ["compute_signature", "signature_headers", "verify_request", "verify_websocket_handshake"]

HEADER = "X-Twilio-Signature"
_HEADER_LOWER = HEADER.lower()
_BODY_HASH_PARAM = "bodySHA256"
_DEFAULT_PORTS = {"https": 443, "wss": 443}  # everything else: 80, like the official validator


def compute_signature(auth_token: str, url: str, params: Form | None) -> str:
    """The signature Twilio puts on a request to ``url`` with form ``params`` (``None``: no body)."""
    parts = [url]
    if params:
        for name in sorted(params):
            # RequestValidator sorts set(values): a value repeated verbatim counts once.
            parts.extend(name + value for value in sorted(set(params[name])))
    mac = hmac.new(auth_token.encode("utf-8"), "".join(parts).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def signature_headers(
    auth_token: str, method: str, url: str, form: Form | None, body: bytes = b""
) -> dict[str, str]:
    """The headers Twilio attaches to a request (for the simulated carrier).

    A GET signs the URL alone. A POST signs the URL plus ``form``; with ``form=None`` and a
    ``body`` (a JSON webhook), ``url`` must already carry ``bodySHA256`` of that body, as Twilio
    adds it, and only the URL is signed.
    """
    if method.upper() != "POST":
        return {HEADER: compute_signature(auth_token, url, None)}
    if form is None and body:
        hashes = parse_qs(urlparse(url).query).get(_BODY_HASH_PARAM)
        if not hashes or hashes[0] != hashlib.sha256(body).hexdigest():
            raise ConfigurationError(f"a JSON body needs {_BODY_HASH_PARAM}=<hex sha256 of body> in the URL")
    return {HEADER: compute_signature(auth_token, url, form)}


def verify_request(request: SignedRequest, auth_token: str) -> None:
    """Check the ``X-Twilio-Signature`` of an HTTP webhook; returns quietly when it is Twilio's.

    Raises ``MissingSignatureError`` when the header is absent or empty, ``InvalidSignatureError``
    when it does not match (including a body that does not match ``bodySHA256``, or a form body
    that is not UTF-8 and so cannot be what Twilio signed).
    """
    signature = request.headers.get(_HEADER_LOWER)
    if not signature:
        raise MissingSignatureError(f"no {HEADER} header")
    parsed = urlparse(request.url)
    body_hashes = parse_qs(parsed.query).get(_BODY_HASH_PARAM)
    params: Form | None
    if body_hashes:
        # JSON webhook: the body is bound by its hash in the (signed) URL, params are empty.
        if not _equal(hashlib.sha256(request.body).hexdigest(), body_hashes[0]):
            raise InvalidSignatureError(f"body does not match {_BODY_HASH_PARAM}")
        params = None
    else:
        try:
            params = request.form()  # empty for GET: its params are in the URL already
        except ProtocolError:
            raise InvalidSignatureError("form body is not UTF-8") from None
    if not _matches_any(auth_token, _port_variants(parsed), params, signature):
        raise InvalidSignatureError(f"{HEADER} does not match the request")


def verify_websocket_handshake(url: str, headers: Mapping[str, str], auth_token: str) -> None:
    """Check the ``X-Twilio-Signature`` of a Media Streams or ConversationRelay WebSocket upgrade.

    ``url`` is the ``wss://`` URL as written in the TwiML. There is no body, so params are empty.
    When the URL has a query string the signing is undocumented (docs/protocols/twilio.md §2, Uncertain): both the
    full URL with no params and the bare URL with the query parsed as params are accepted.
    ``headers`` may use any case. Raises like ``verify_request``.
    """
    signature = _header(headers)
    if not signature:
        raise MissingSignatureError(f"no {HEADER} header")
    parsed = urlparse(url)
    if _matches_any(auth_token, _port_variants(parsed), None, signature):
        return
    if parsed.query:
        query = parse_qs(parsed.query, keep_blank_values=True)
        bare = parsed._replace(query="")
        if _matches_any(auth_token, _port_variants(bare), query, signature):
            return
    raise InvalidSignatureError(f"{HEADER} does not match the WebSocket URL")


def _header(headers: Mapping[str, str]) -> str | None:
    value = headers.get(_HEADER_LOWER) or headers.get(HEADER)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == _HEADER_LOWER), None)


def _port_variants(url: ParseResult) -> tuple[str, ...]:
    """The URL without its port and with a port (the default one if absent; docs/protocols/twilio.md §2).

    Like ``RequestValidator``, any explicit port is dropped in the first variant, not only the
    default one, and ``geturl()`` normalises both (an empty ``?`` disappears).
    """
    try:
        port = url.port
    except ValueError:  # not a number: no variants to try, sign what we were given
        return (url.geturl(),)
    if port:
        host = url.netloc.rsplit(":", 1)[0]
        return (url._replace(netloc=host).geturl(), url.geturl())
    default = _DEFAULT_PORTS.get(url.scheme, 80)
    return (url.geturl(), url._replace(netloc=f"{url.netloc}:{default}").geturl())


def _matches_any(auth_token: str, urls: tuple[str, ...], params: Form | None, signature: str) -> bool:
    # Evaluate every candidate (no short-circuit), so timing does not tell which one matched.
    results = [_equal(compute_signature(auth_token, url, params), signature) for url in urls]
    return any(results)


def _equal(expected: str, given: str) -> bool:
    # compare_digest refuses non-ASCII str; compare UTF-8 bytes instead.
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", errors="surrogatepass"))
