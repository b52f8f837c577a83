"""Network plumbing with stdlib imports only, for provider clients on a Lambda cold path."""

from callkit.net.http1 import (
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    Headers,
    HTTPClient,
    PoolTimeoutError,
    ReadTimeoutError,
    RemoteProtocolError,
    Response,
    TransportError,
    TransportTimeoutError,
)

__all__ = [
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "HTTPClient",
    "Headers",
    "PoolTimeoutError",
    "ReadTimeoutError",
    "RemoteProtocolError",
    "Response",
    "TransportError",
    "TransportTimeoutError",
]
