"""Network plumbing with stdlib imports only, for provider clients on a Lambda cold path.

``callkit.net.websocket_session`` (the provider WebSocket base; needs ``websockets``) is not
imported here: import it by its module name.
"""

from callkit.net.http1 import (
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    Headers,
    HTTPClient,
    PoolTimeoutError,
    ProxyError,
    ReadTimeoutError,
    RemoteProtocolError,
    Response,
    TransportError,
    TransportTimeoutError,
)
from callkit.net.proxy import Proxy, ProxyConfig
from callkit.net.retry import RETRYABLE_STATUS, RetryPolicy, retry_after

__all__ = [
    "RETRYABLE_STATUS",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "HTTPClient",
    "Headers",
    "PoolTimeoutError",
    "Proxy",
    "ProxyConfig",
    "ProxyError",
    "ReadTimeoutError",
    "RemoteProtocolError",
    "Response",
    "RetryPolicy",
    "TransportError",
    "TransportTimeoutError",
    "retry_after",
]
