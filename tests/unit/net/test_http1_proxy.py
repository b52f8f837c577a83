"""Proxies: ``ProxyConfig`` from the environment, and ``HTTPClient`` through a loopback forward proxy.

https origins go through a ``CONNECT`` tunnel (a TLS server with a certificate made here, for
``localhost`` only, so the name checked is the origin's, not the proxy's); http origins get the
absolute-form request, shown by streaming a completion from ``ScriptedChatServer``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from callkit.errors import CallkitError, ConfigurationError
from callkit.llm import OpenAIChatModel, TextDelta, UserMessage
from callkit.net import ConnectError, HTTPClient, Proxy, ProxyConfig, ProxyError
from callkit.testing.flaky_chat import FlakyChatServer
from callkit.testing.openai_chat import ScriptedChatServer
from callkit.testing.proxy import ForwardProxy


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


# --- the environment (sans-I/O) --------------------------------------------------------------------


def test_variables_lowercase_first_and_credentials_hidden() -> None:
    config = ProxyConfig.from_env(
        {
            "HTTPS_PROXY": "http://upper:1",
            "https_proxy": "http://user:p%40ss@proxy.internal:3128",
            "HTTP_PROXY": "proxy.internal",
        }
    )
    assert config.https == Proxy("proxy.internal", 3128, "Basic " + base64.b64encode(b"user:p@ss").decode())
    assert config.http == Proxy("proxy.internal", 80)
    assert "p%40ss" not in repr(config)
    assert base64.b64encode(b"user:p@ss").decode() not in repr(config)
    # An empty lowercase variable switches the proxy off, as in urllib.
    assert ProxyConfig.from_env({"HTTPS_PROXY": "http://p:1", "https_proxy": ""}).https is None
    # A CGI process (REQUEST_METHOD set) ignores HTTP_PROXY: a client header could have set it.
    assert ProxyConfig.from_env({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}).http is None
    assert ProxyConfig.from_env({"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}).http == Proxy("p", 1)
    assert ProxyConfig.from_env({}) == ProxyConfig()


@pytest.mark.parametrize(
    "url", ["https://proxy:443", "socks5://proxy:1080", "http://proxy:99999", "http://:80"]
)
def test_unsupported_proxy_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY"):
        ProxyConfig.from_env({"HTTPS_PROXY": url})


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        ("*", "api.openai.com", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "api.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        (".example.com", "api.example.com", 443, True),
        ("*.example.com", "api.example.com", 443, True),
        ("example.com", "badexample.com", 443, False),
        ("example.com", "example.com.evil", 443, False),
        ("EXAMPLE.com", "Api.Example.COM", 443, True),
        ("a.test, example.com ,b.test", "example.com", 443, True),
        ("example.com:8443", "example.com", 8443, True),
        ("example.com:8443", "example.com", 443, False),
        ("10.0.0.0/8", "10.2.3.4", 443, True),
        ("10.0.0.0/8", "11.2.3.4", 443, False),
        ("127.0.0.1", "127.0.0.1", 80, True),
        ("::1", "::1", 80, True),
        ("[::1]:8080", "::1", 8080, True),
        ("[::1]:8080", "::1", 80, False),
        ("fd00::/8", "fd12::1", 443, True),
        ("localhost", "127.0.0.1", 80, False),  # names are not resolved, as in curl
        ("", "example.com", 443, False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    config = ProxyConfig.from_env({"https_proxy": "http://proxy:3128", "no_proxy": no_proxy})
    assert config.bypasses(host, port) is bypass
    assert (config.proxy_for("https", host, port) is None) is bypass


def test_each_scheme_has_its_own_proxy() -> None:
    config = ProxyConfig.from_env({"HTTPS_PROXY": "http://secure:1"})
    assert config.proxy_for("https", "example.com", 443) == Proxy("secure", 1)
    assert config.proxy_for("http", "example.com", 80) is None


def test_proxy_variables_are_read_once_when_the_client_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    client = HTTPClient()
    monkeypatch.delenv("HTTPS_PROXY")
    assert client.proxies.https == Proxy("proxy.internal", 3128)
    assert client.proxies.no_proxy == "localhost"
    assert HTTPClient().proxies == ProxyConfig(no_proxy="localhost")


# --- http origins: absolute form ----------------------------------------------------------------------


def test_completion_streams_through_the_proxy_in_absolute_form() -> None:
    async def main() -> None:
        async with (
            ScriptedChatServer(lambda _: "Hello through the proxy.") as server,
            ForwardProxy() as proxy,
        ):
            config = ProxyConfig.from_env({"http_proxy": f"http://bob:secret@127.0.0.1:{proxy.port}"})
            model = OpenAIChatModel(
                "gpt-4o-mini", base_url=server.base_url, client=HTTPClient(proxies=config)
            )
            for _ in range(2):
                events = [e async for e in model.stream([UserMessage("Hi")], [])]
                assert (
                    "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello through the proxy."
                )
            await model._client.aclose()
            url = f"{server.base_url}/chat/completions"
        first = proxy.requests[0]
        assert first.method == "POST"
        assert first.target == url
        assert first.proxy_authorization == "Basic " + base64.b64encode(b"bob:secret").decode()
        assert len(proxy.requests) == 1  # the second completion reused the proxy connection
        assert len(server.requests) == 2
        assert proxy.connects == []

    run(main)


def test_no_proxy_goes_direct() -> None:
    async def main() -> None:
        async with ScriptedChatServer(lambda _: "Direct.") as server, ForwardProxy() as proxy:
            config = ProxyConfig.from_env(
                {"HTTP_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "example.com,127.0.0.0/8"}
            )
            async with HTTPClient(proxies=config) as client:
                model = OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, client=client)
                events = [e async for e in model.stream([UserMessage("Hi")], [])]
        assert any(isinstance(e, TextDelta) for e in events)
        assert proxy.requests == []
        assert len(server.requests) == 1

    run(main)


# --- https origins: CONNECT then TLS ----------------------------------------------------------------


@dataclass
class LocalhostTLS:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def localhost_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalhostTLS:
    """A self-signed certificate for the name ``localhost`` only (no IP address in it)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("proxy-tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return LocalhostTLS(server, ssl.create_default_context(cafile=str(cert_file)))


def test_completion_streams_through_a_connect_tunnel(localhost_tls: LocalhostTLS) -> None:
    async def main() -> None:
        async with (
            FlakyChatServer(text="Hello over TLS.", ssl_context=localhost_tls.server) as server,
            ForwardProxy() as proxy,
        ):
            config = ProxyConfig.from_env({"HTTPS_PROXY": f"http://carol:pw@127.0.0.1:{proxy.port}"})
            async with HTTPClient(proxies=config, ssl_context=localhost_tls.client) as client:
                # The certificate names localhost, the proxy is 127.0.0.1: TLS checks the origin's name.
                model = OpenAIChatModel(
                    "gpt-4o-mini", base_url=f"https://localhost:{server.port}/v1", client=client
                )
                for _ in range(2):
                    events = [e async for e in model.stream([UserMessage("Hi")], [])]
                    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello over TLS."
        assert proxy.connects == [f"localhost:{server.port}"]  # one tunnel, kept alive
        assert proxy.requests[0].proxy_authorization == "Basic " + base64.b64encode(b"carol:pw").decode()
        assert server.requests == 2
        assert server.connections == 1

    run(main)


def test_tunnel_still_verifies_the_origin_certificate(localhost_tls: LocalhostTLS) -> None:
    async def main() -> None:
        async with (
            FlakyChatServer(ssl_context=localhost_tls.server) as server,
            ForwardProxy() as proxy,
            HTTPClient(proxies=ProxyConfig(https=Proxy("127.0.0.1", proxy.port))) as client,
        ):
            with pytest.raises(ConnectError) as caught:
                async with client.stream("GET", f"https://localhost:{server.port}/"):
                    pass
        assert not caught.value.retryable
        assert "certificate" in str(caught.value)
        assert proxy.connects == [f"localhost:{server.port}"]

    run(main)


@pytest.mark.parametrize(("status", "retryable"), [(407, False), (403, False), (502, True), (503, True)])
def test_proxy_refusing_the_tunnel(status: int, retryable: bool) -> None:
    async def main() -> None:
        async with (
            ForwardProxy(refuse=status) as proxy,
            HTTPClient(proxies=ProxyConfig(https=Proxy("127.0.0.1", proxy.port, "Basic eDp5"))) as client,
        ):
            with pytest.raises(ProxyError) as caught:
                async with client.stream("GET", "https://localhost:9/"):
                    pass
        assert caught.value.status == status
        assert caught.value.retryable is retryable
        assert isinstance(caught.value, ConnectError)
        assert isinstance(caught.value, CallkitError)
        assert "eDp5" not in str(caught.value)

    run(main)


def test_unreachable_proxy_is_a_retryable_connect_error() -> None:
    async def main() -> None:
        async with HTTPClient(proxies=ProxyConfig(https=Proxy("127.0.0.1", 9))) as client:
            with pytest.raises(ConnectError) as caught:
                async with client.stream("GET", "https://localhost:9/"):
                    pass
        assert caught.value.retryable
        assert "proxy" in str(caught.value)

    run(main)
