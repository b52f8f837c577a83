"""Which proxy a request goes through, from ``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY`` (sans-I/O).

The variables mean what they mean to curl and to ``urllib.request`` (``getproxies_environment``,
``proxy_bypass_environment``):

* ``https_proxy`` / ``HTTPS_PROXY`` for https targets, ``http_proxy`` / ``HTTP_PROXY`` for http
  targets. The lowercase name wins when both are set, even when it is empty. When
  ``REQUEST_METHOD`` is set (a CGI process), uppercase ``HTTP_PROXY`` is ignored: a client's
  ``Proxy:`` header would land there ("httpoxy", CVE-2016-1000110).
* A proxy is ``http://[user:password@]host[:port]`` (no scheme means http; the port defaults to
  80). Credentials, percent-decoded, become ``Proxy-Authorization: Basic``. Proxies spoken to over
  TLS (``https://``) and SOCKS are refused at construction.
* ``no_proxy`` / ``NO_PROXY`` is a comma-separated list: ``*`` (no proxy at all), a host name
  (``example.com`` and ``.example.com`` both match the domain and every name under it), an IP
  address or CIDR block (``10.0.0.0/8``, ``::1``), each optionally with ``:port`` to bypass only
  that port.

``ProxyConfig.from_env`` is read once, by whoever builds the client; ``proxy_for`` then only looks
names up.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from callkit.errors import ConfigurationError

__all__ = [
    "ENV_HTTPS_PROXY",
    "ENV_HTTP_PROXY",
    "ENV_NO_PROXY",
    "Proxy",
    "ProxyConfig",
    "connect_request",
]

ENV_HTTPS_PROXY: Final = "HTTPS_PROXY"
ENV_HTTP_PROXY: Final = "HTTP_PROXY"
ENV_NO_PROXY: Final = "NO_PROXY"
#: Set in CGI processes, where ``HTTP_PROXY`` may come from a request header.
ENV_CGI_REQUEST_METHOD: Final = "REQUEST_METHOD"

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True, repr=False)
class Proxy:
    """An HTTP proxy: where it listens and the ``Proxy-Authorization`` value, if it wants one."""

    host: str
    port: int
    authorization: str = ""

    def __repr__(self) -> str:
        # The authorization value is the proxy password, base64-encoded: never shown.
        credentials = ", authorization='***'" if self.authorization else ""
        return f"Proxy({self.host!r}, {self.port}{credentials})"

    @classmethod
    def parse(cls, url: str, *, name: str = "proxy") -> Proxy:
        """``http://[user:password@]host[:port]``; ``name`` (the variable) appears in errors."""
        text = url.strip()
        if "://" not in text:
            text = f"http://{text}"
        parts = urlsplit(text)
        # Never quote the URL back in an error: it may hold the proxy password.
        if parts.scheme.lower() != "http":
            raise ConfigurationError(
                f"{name}: only http:// proxies are supported (CONNECT tunnels carry the TLS), "
                f"not {parts.scheme}://"
            )
        try:
            port = parts.port or 80
        except ValueError:
            raise ConfigurationError(f"{name}: the proxy port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ConfigurationError(f"{name}: the proxy URL has no host")
        authorization = ""
        if parts.username is not None or parts.password is not None:
            user = unquote(parts.username or "")
            password = unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            authorization = f"Basic {token}"
        return cls(parts.hostname, port, authorization)


@dataclass(frozen=True, slots=True)
class _Bypass:
    """One ``NO_PROXY`` entry: a domain (matches itself and names under it) or an IP network."""

    domain: str = ""
    network: _IPNetwork | None = None
    port: int | None = None

    def matches(self, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        return host == self.domain or host.endswith(f".{self.domain}")


def _parse_bypass(entry: str) -> _Bypass | None:
    text = entry.strip().lower()
    if not text:
        return None
    port: int | None = None
    if text.startswith("["):  # [::1] or [::1]:8080
        address, _, rest = text[1:].partition("]")
        text = address
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:  # host:port or 10.0.0.1:8080 (several colons: a bare IPv6 address)
        name, _, number = text.partition(":")
        if number.isdigit():
            text, port = name, int(number)
    try:
        return _Bypass(network=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    domain = text.lstrip(".").removeprefix("*.")  # ".example.com" and "*.example.com" mean the domain
    return _Bypass(domain=domain, port=port) if domain else None


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """The proxies for http and https targets and the hosts that bypass them. Empty: no proxy."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: str = ""

    def __post_init__(self) -> None:
        entries = [e for e in self.no_proxy.split(",") if e.strip()]
        bypass_all = any(e.strip() == "*" for e in entries)
        parsed = tuple(b for e in entries if e.strip() != "*" and (b := _parse_bypass(e)) is not None)
        object.__setattr__(self, "_bypass_all", bypass_all)
        object.__setattr__(self, "_bypass", parsed)

    # Derived from no_proxy in __post_init__; equality and repr follow no_proxy alone.
    _bypass_all: bool = field(default=False, init=False, repr=False, compare=False)
    _bypass: tuple[_Bypass, ...] = field(default=(), init=False, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProxyConfig:
        """Read the proxy variables (lowercase first, as curl and urllib do)."""
        env = os.environ if environ is None else environ

        def variable(upper: str, *, allow_upper: bool = True) -> tuple[str, str]:
            lower = upper.lower()
            if lower in env:
                return lower, env[lower].strip()
            if allow_upper and upper in env:
                return upper, env[upper].strip()
            return upper, ""

        https_name, https_url = variable(ENV_HTTPS_PROXY)
        http_name, http_url = variable(ENV_HTTP_PROXY, allow_upper=ENV_CGI_REQUEST_METHOD not in env)
        return cls(
            http=Proxy.parse(http_url, name=http_name) if http_url else None,
            https=Proxy.parse(https_url, name=https_name) if https_url else None,
            no_proxy=variable(ENV_NO_PROXY)[1],
        )

    def bypasses(self, host: str, port: int) -> bool:
        """Whether ``NO_PROXY`` sends requests to ``host:port`` directly."""
        if self._bypass_all:
            return True
        name = host.lower().strip("[]").rstrip(".")
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
        except ValueError:
            ip = None
        return any(entry.matches(name, ip, port) for entry in self._bypass)

    def proxy_for(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy for a request to ``scheme://host:port``, or ``None`` to connect directly."""
        proxy = self.https if scheme == "https" else self.http if scheme == "http" else None
        if proxy is None or self.bypasses(host, port):
            return None
        return proxy


def connect_request(host: str, port: int, proxy: Proxy) -> bytes:
    """The ``CONNECT host:port`` request that opens a tunnel (RFC 9110 §9.3.6)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
