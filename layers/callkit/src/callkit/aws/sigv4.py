"""AWS Signature Version 4, sans-I/O: a request in, the headers that sign it out.

https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html. The rules follow
botocore's ``SigV4Auth`` for every service except S3, and a test checks every signature against it:

* Canonical URI: the URL's path (as sent, percent-encoded) with dot segments and repeated slashes
  removed, then percent-encoded again except ``/`` and unreserved characters. Encoding the wire
  path a second time is the rule for every service but S3 (``%20`` is signed as ``%2520``).
* Canonical query: each ``name=value`` pair decoded and re-encoded (unreserved characters kept,
  everything else ``%XX``, so ``+`` is a literal plus), sorted by encoded name, then value.
* Canonical headers: names lower-cased, values with runs of whitespace collapsed to one space,
  repeated names joined with ``,``, sorted; ``host`` is always signed. Hop-by-hop and tracing
  headers are never signed (a proxy or the runtime may change them), as in botocore.
* Payload: SHA-256 of the body, always (DynamoDB and ``execute-api`` never take unsigned payloads).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote, unquote_to_bytes, urlsplit

from callkit.aws.credentials import Credentials

__all__ = ["ALGORITHM", "canonical_request", "sign", "signing_key", "string_to_sign"]

ALGORITHM = "AWS4-HMAC-SHA256"
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Never signed (botocore's ``SIGNED_HEADERS_BLACKLIST``): set or rewritten below the signer.
_UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
#: Headers this module sets; a caller's own copies are replaced, not signed twice.
_OWN_HEADERS = frozenset({"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"})


def sign(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    service: str,
    region: str,
    credentials: Credentials,
    now: float,
    content_sha256_header: bool = False,
) -> dict[str, str]:
    """The headers to add to the request so that AWS accepts it at ``now`` (epoch seconds).

    Always ``Authorization`` and ``X-Amz-Date``; ``X-Amz-Security-Token`` with temporary
    credentials; ``X-Amz-Content-Sha256`` if asked; ``Host`` if ``headers`` has none (the value
    signed, which the request must carry unchanged). ``headers`` must hold the request's other
    headers that are to be signed (``Content-Type``, ``X-Amz-Target``...), exactly as sent.
    """
    timestamp = time.strftime(_TIMESTAMP, time.gmtime(now))
    payload_hash = hashlib.sha256(body).hexdigest()
    added: dict[str, str] = {}
    if not any(name.lower() == "host" for name in headers):
        added["Host"] = _host(url)
    added["X-Amz-Date"] = timestamp
    if credentials.token:
        added["X-Amz-Security-Token"] = credentials.token
    if content_sha256_header:
        added["X-Amz-Content-Sha256"] = payload_hash
    signed = {name: value for name, value in headers.items() if name.lower() not in _OWN_HEADERS}
    signed.update(added)

    request, signed_names = canonical_request(method, url, signed, payload_hash)
    scope = f"{timestamp[:8]}/{region}/{service}/aws4_request"
    to_sign = string_to_sign(timestamp, scope, request)
    key = signing_key(credentials.secret_key, timestamp[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_names}, Signature={signature}"
    )
    return added


def canonical_request(
    method: str, url: str, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """The canonical request and its signed-headers list (``content-type;host;x-amz-date``)."""
    parts = urlsplit(url)
    grouped: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower not in _UNSIGNED_HEADERS:
            grouped.setdefault(lower, []).append(" ".join(value.split()))
    if "host" not in grouped:
        grouped["host"] = [_host(url)]
    names = sorted(grouped)
    canonical_headers = "".join(f"{name}:{','.join(grouped[name])}\n" for name in names)
    signed_names = ";".join(names)
    request = "\n".join(
        (
            method.upper(),
            quote(_remove_dot_segments(parts.path), safe="/~"),
            _canonical_query(parts.query),
            canonical_headers,
            signed_names,
            payload_hash,
        )
    )
    return request, signed_names


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    """``AWS4-HMAC-SHA256``, the timestamp, the credential scope and the canonical request's hash."""
    return "\n".join((ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()))


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The key derived from the secret for one day (``YYYYMMDD``), region and service."""
    key = f"AWS4{secret_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""  # lower-cased by urlsplit
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and empty segments dropped too (AWS wants ``//`` signed as ``/``)."""
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment and segment != ".":
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def _canonical_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append((_encode(name), _encode(value)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(component: str) -> str:
    # Decoded to bytes, not text: ``%FF`` is not UTF-8 and must stay ``%FF``.
    return quote(unquote_to_bytes(component), safe="-_.~")
