"""``callkit.net.HTTPClient`` against real servers on loopback.

uvicorn (a real HTTP/1.1 server, run in a thread) serves well-formed answers: streamed chunked
bodies, keep-alive, large bodies, slow answers. Raw ``asyncio.start_server`` servers send what
uvicorn never would: broken status lines, truncated chunked bodies, a close after the request.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn

from callkit.errors import CallkitError
from callkit.net import (
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    HTTPClient,
    PoolTimeoutError,
    ReadTimeoutError,
    RemoteProtocolError,
    TransportError,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# --- a uvicorn server in a thread --------------------------------------------------------------


@dataclass
class AppState:
    disconnects: list[str] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)


def make_app(state: AppState) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        port = str(scope["client"][1]).encode()

        async def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            base = [(b"x-client-port", port), (b"Content-Type", b"text/plain")]
            await send({"type": "http.response.start", "status": status, "headers": base + (headers or [])})

        if path == "/hello":
            await start(headers=[(b"content-length", b"5")])
            await send({"type": "http.response.body", "body": b"hello"})
        elif path == "/echo":
            payload = json.dumps(
                {
                    "method": scope["method"],
                    "length": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                }
            ).encode()
            await start(headers=[(b"content-length", str(len(payload)).encode())])
            await send({"type": "http.response.body", "body": payload})
        elif path == "/chunks":
            # No Content-Length: uvicorn sends Transfer-Encoding: chunked.
            await start()
            delay = float(query.get("delay", "0"))
            for i in range(int(query.get("n", "3"))):
                if delay:
                    await asyncio.sleep(delay)
                await send({"type": "http.response.body", "body": f"chunk-{i};".encode(), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif path == "/large":
            size = int(query["size"])
            block = bytes(range(256)) * 256
            if query.get("chunked"):
                await start()
            else:
                await start(headers=[(b"content-length", str(size).encode())])
            sent = 0
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                sent += len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": sent < size})
        elif path == "/slow-head":
            await asyncio.sleep(float(query["delay"]))
            await start(headers=[(b"content-length", b"2")])
            await send({"type": "http.response.body", "body": b"ok"})
        elif path == "/stream-until-disconnect":
            await start()
            await send({"type": "http.response.body", "body": b"first;", "more_body": True})
            watcher = asyncio.ensure_future(receive())
            for _ in range(200):
                if watcher.done():
                    break
                await asyncio.sleep(0.01)
                await send({"type": "http.response.body", "body": b"more;", "more_body": True})
            if watcher.done() and watcher.result()["type"] == "http.disconnect":
                state.disconnects.append(query.get("tag", ""))
                state.disconnected.set()
            else:
                watcher.cancel()
            await send({"type": "http.response.body", "body": b""})
        elif path == "/status":
            code = int(query["code"])
            await start(code, headers=[(b"content-length", b"0")])
            await send({"type": "http.response.body", "body": b""})
        elif path == "/close":
            await start(headers=[(b"content-length", b"3"), (b"connection", b"close")])
            await send({"type": "http.response.body", "body": b"bye"})
        else:
            await start(404, headers=[(b"content-length", b"0")])
            await send({"type": "http.response.body", "body": b""})

    return app


@dataclass
class ThreadServer:
    url: str
    state: AppState


def serve_in_thread(state: AppState, **config: Any) -> Iterator[ThreadServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(state),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            **config,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield ThreadServer(f"http://127.0.0.1:{port}", state)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadServer]:
    yield from serve_in_thread(AppState())


@pytest.fixture(scope="module")
def short_keepalive_server() -> Iterator[ThreadServer]:
    # uvicorn closes a connection idle for this long (it reads the value as seconds, float is fine).
    yield from serve_in_thread(AppState(), timeout_keep_alive=0.2)


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


async def get(client: HTTPClient, url: str) -> tuple[int, bytes, str]:
    async with client.stream("GET", url) as response:
        body = await response.aread()
        return response.status, body, response.headers.get("x-client-port", "")


# --- well-formed servers ---------------------------------------------------------------------------


def test_content_length_body_and_case_insensitive_headers(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client, client.stream("GET", f"{server.url}/hello") as response:
            assert (response.status, response.reason, response.http_version) == (200, "OK", "HTTP/1.1")
            assert response.headers["CONTENT-LENGTH"] == "5"
            assert "Content-Type" in response.headers
            assert await response.aread() == b"hello"

    run(main)


def test_chunked_body_streams_piece_by_piece(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            async with client.stream("GET", f"{server.url}/chunks?n=4&delay=0.02") as response:
                assert response.headers["transfer-encoding"] == "chunked"
                pieces = [chunk async for chunk in response.aiter_bytes()]
            # The server pauses between chunks, so each arrives on its own.
            assert pieces == [b"chunk-0;", b"chunk-1;", b"chunk-2;", b"chunk-3;"]

    run(main)


def test_keep_alive_reuses_one_connection(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            ports = {(await get(client, f"{server.url}/hello"))[2] for _ in range(3)}
            ports.add((await get(client, f"{server.url}/chunks?n=2"))[2])
            ports.add((await get(client, f"{server.url}/hello"))[2])
            assert len(ports) == 1

    run(main)


def test_connection_close_is_not_reused(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            first = await get(client, f"{server.url}/close")
            second = await get(client, f"{server.url}/hello")
            assert first[:2] == (200, b"bye")
            assert first[2] != second[2]

    run(main)


def test_server_closed_keep_alive_connection_is_replaced(short_keepalive_server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            first = await get(client, f"{short_keepalive_server.url}/hello")
            await asyncio.sleep(0.5)  # uvicorn closes the idle connection after 0.2 s
            second = await get(client, f"{short_keepalive_server.url}/hello")
            assert first[:2] == second[:2] == (200, b"hello")
            assert first[2] != second[2]

    run(main)


def test_unread_body_closes_the_connection(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            async with client.stream("GET", f"{server.url}/large?size=1000000") as response:
                first_port = response.headers["x-client-port"]
                async for _ in response.aiter_bytes():
                    break
            _, _, second_port = await get(client, f"{server.url}/hello")
            assert first_port != second_port
            _, _, third_port = await get(client, f"{server.url}/hello")
            assert third_port == second_port

    run(main)


@pytest.mark.parametrize("chunked", [False, True])
def test_large_response_body(server: ThreadServer, chunked: bool) -> None:
    size = 5 * 1024 * 1024 + 7
    expected = hashlib.sha256((bytes(range(256)) * 256 * 81)[:size]).hexdigest()

    async def main() -> None:
        async with HTTPClient() as client:
            url = f"{server.url}/large?size={size}" + ("&chunked=1" if chunked else "")
            status, body, _ = await get(client, url)
            assert status == 200
            assert len(body) == size
            assert hashlib.sha256(body).hexdigest() == expected

    run(main)


def test_large_request_body_and_request_headers(server: ThreadServer) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB

    async def main() -> None:
        async with (
            HTTPClient() as client,
            client.stream("POST", f"{server.url}/echo", {"X-Test": "yes"}, body) as response,
        ):
            echoed = json.loads(await response.aread())
        assert echoed["method"] == "POST"
        assert echoed["length"] == len(body)
        assert echoed["sha256"] == hashlib.sha256(body).hexdigest()
        assert echoed["headers"]["x-test"] == "yes"
        assert echoed["headers"]["host"] == server.url.removeprefix("http://")
        assert echoed["headers"]["content-length"] == str(len(body))

    run(main)


def test_status_without_body(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient() as client:
            for code in (204, 404, 500):
                status, body, _ = await get(client, f"{server.url}/status?code={code}")
                assert (status, body) == (code, b"")
            async with client.stream("HEAD", f"{server.url}/hello") as response:
                assert response.headers["content-length"] == "5"
                assert await response.aread() == b""

    run(main)


def test_slow_server_read_timeout(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient(read_timeout=0.1) as client:
            with pytest.raises(ReadTimeoutError) as caught:
                await get(client, f"{server.url}/slow-head?delay=0.5")
            assert caught.value.retryable
            assert isinstance(caught.value, TransportError)
            assert isinstance(caught.value, CallkitError)
            # The client stays usable.
            assert (await get(client, f"{server.url}/hello"))[:2] == (200, b"hello")

    run(main)


def test_slow_body_read_timeout(server: ThreadServer) -> None:
    async def main() -> None:
        async with (
            HTTPClient(read_timeout=0.1) as client,
            client.stream("GET", f"{server.url}/chunks?n=2&delay=0.5") as response,
        ):
            assert response.status == 200
            with pytest.raises(ReadTimeoutError):
                await response.aread()

    run(main)


def test_refused_port_is_a_retryable_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        async with HTTPClient() as client:
            with pytest.raises(ConnectError) as caught:
                await get(client, f"http://127.0.0.1:{port}/")
            assert caught.value.retryable
            assert f"127.0.0.1:{port}" in str(caught.value)

    run(main)


def test_cancelling_mid_stream_closes_the_connection(server: ThreadServer) -> None:
    server.state.disconnected.clear()

    async def main() -> None:
        async with HTTPClient() as client:
            received = asyncio.Event()

            async def consume() -> None:
                url = f"{server.url}/stream-until-disconnect?tag=cancel"
                async with client.stream("GET", url) as response:
                    async for _ in response.aiter_bytes():
                        received.set()

            task = asyncio.create_task(consume())
            await received.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.to_thread(server.state.disconnected.wait, 5)
            assert "cancel" in server.state.disconnects

    run(main)


def test_pool_limit_waits_then_times_out(server: ThreadServer) -> None:
    async def main() -> None:
        async with HTTPClient(max_connections_per_host=1, connect_timeout=0.2) as client:
            async with client.stream("GET", f"{server.url}/chunks?n=2&delay=0.05") as held:
                with pytest.raises(PoolTimeoutError):
                    await get(client, f"{server.url}/hello")
                await held.aread()
            # Released: the next request gets the (same) connection.
            assert (await get(client, f"{server.url}/hello"))[:2] == (200, b"hello")

            async def fetch() -> tuple[int, bytes, str]:
                return await get(client, f"{server.url}/chunks?n=2&delay=0.02")

            results = await asyncio.gather(fetch(), fetch(), fetch())
            assert {r[1] for r in results} == {b"chunk-0;chunk-1;"}
            assert len({r[2] for r in results}) == 1  # one connection, taken in turn

    run(main)


def test_client_survives_a_new_event_loop(server: ThreadServer) -> None:
    client = HTTPClient()

    async def main() -> int:
        status, _, _ = await get(client, f"{server.url}/hello")
        return status

    # Two asyncio.run calls (two loops, as two Lambda invocations might): idle connections of the
    # first loop are closed when its tasks are cancelled, the second loop opens its own.
    assert run(main) == 200
    assert run(main) == 200


def test_keep_alive_across_run_until_complete_on_a_kept_loop(server: ThreadServer) -> None:
    # The relay Lambda keeps one loop for the life of the execution environment and runs one
    # invocation at a time on it: the connection must survive between invocations.
    client = HTTPClient()
    loop = asyncio.new_event_loop()
    try:
        ports = {loop.run_until_complete(get(client, f"{server.url}/hello"))[2] for _ in range(3)}
        assert len(ports) == 1
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def test_bad_arguments() -> None:
    client = HTTPClient()
    with pytest.raises(ValueError, match="http"):
        client.stream("GET", "ftp://example.com/")
    with pytest.raises(ValueError, match="header"):
        client.stream("GET", "http://example.com/", {"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="Content-Length"):
        client.stream("POST", "http://example.com/", {"Content-Length": "3"}, b"abc")
    with pytest.raises(ValueError, match="positive"):
        HTTPClient(read_timeout=0)


# --- raw servers for what uvicorn never sends ------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Serve ``handler(reader, writer, connection_number)`` on loopback; yields the base URL."""
    counter = 0
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        counter += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer, counter)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def answer(reply: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    return handler


async def raw_get(url: str, method: str = "GET") -> bytes:
    async with HTTPClient(read_timeout=2) as client, client.stream(method, f"{url}/x") as response:
        return await response.aread()


@pytest.mark.parametrize(
    "status_line",
    [b"HTPT/1.1 200 OK", b"HTTP/1.1 2000 OK", b"HTTP/2 200 OK", b"garbage", b"HTTP/1.1 20 OK"],
)
def test_bad_status_line(status_line: bytes) -> None:
    async def main() -> None:
        async with raw_server(answer(status_line + b"\r\nContent-Length: 0\r\n\r\n")) as url:
            with pytest.raises(RemoteProtocolError) as caught:
                await raw_get(url)
            assert not caught.value.retryable

    run(main)


def test_bad_header_line() -> None:
    async def main() -> None:
        async with raw_server(answer(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")) as url:
            with pytest.raises(RemoteProtocolError):
                await raw_get(url)

    run(main)


def test_truncated_chunked_body() -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\nwor"

    async def main() -> None:
        got: list[bytes] = []

        async def collect(chunks: AsyncIterator[bytes]) -> None:
            async for chunk in chunks:
                got.append(chunk)

        async with (
            raw_server(answer(reply)) as url,
            HTTPClient() as client,
            client.stream("GET", f"{url}/x") as response,
        ):
            with pytest.raises(ConnectionLostError) as caught:
                await collect(response.aiter_bytes())
            assert b"".join(got) == b"hellowor"
            assert caught.value.retryable

    run(main)


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n"],
)
def test_malformed_chunked_body(body: bytes) -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body

    async def main() -> None:
        async with raw_server(answer(reply)) as url:
            with pytest.raises(RemoteProtocolError):
                await raw_get(url)

    run(main)


def test_chunk_extensions_and_trailers_are_accepted() -> None:
    body = b"5;name=value\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: 1\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body

    async def main() -> None:
        async with raw_server(answer(reply)) as url:
            assert await raw_get(url) == b"hello!"

    run(main)


def test_short_content_length_body() -> None:
    async def main() -> None:
        async with raw_server(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")) as url:
            with pytest.raises(ConnectionLostError):
                await raw_get(url)

    run(main)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"5, 6"])
def test_bad_content_length(length: bytes) -> None:
    async def main() -> None:
        async with raw_server(
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: " + length + b"\r\n\r\nhello")
        ) as url:
            with pytest.raises(RemoteProtocolError):
                await raw_get(url)

    run(main)


def test_body_read_until_close_and_interim_response() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nX-A: 1\r\nx-a: 2\r\n\r\nuntil the end"

    async def main() -> None:
        async with (
            raw_server(answer(reply)) as url,
            HTTPClient() as client,
            client.stream("GET", f"{url}/x") as response,
        ):
            assert response.status == 200
            assert response.http_version == "HTTP/1.0"
            assert response.headers["x-a"] == "1, 2"
            assert response.headers.get_all("X-A") == ["1", "2"]
            assert await response.aread() == b"until the end"

    run(main)


def test_closed_without_answer_on_a_fresh_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)

    async def main() -> None:
        async with raw_server(handler) as url:
            with pytest.raises(ConnectionLostError) as caught:
                await raw_get(url)
            assert caught.value.retryable

    run(main)


def first_request_only(number_of_answers: list[int]) -> Handler:
    """Answers the first request on each connection, then reads the next one and closes silently:
    what a server does when it closes a kept-alive connection just as the next request arrives."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int) -> None:
        await read_request(reader)
        body = f"connection {connection}".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        number_of_answers.append(connection)
        await read_request(reader)

    return handler


def test_stale_connection_after_send_is_retried_for_idempotent_requests() -> None:
    answered: list[int] = []

    async def main() -> None:
        async with raw_server(first_request_only(answered)) as url, HTTPClient() as client:
            for expected in (b"connection 1", b"connection 2", b"connection 3"):
                async with client.stream("GET", f"{url}/x") as response:
                    assert await response.aread() == expected
            async with client.stream("POST", f"{url}/x", body=b"{}", idempotent=True) as response:
                assert await response.aread() == b"connection 4"

    run(main)
    assert answered == [1, 2, 3, 4]


def test_stale_connection_after_send_is_not_retried_for_post() -> None:
    async def main() -> None:
        async with raw_server(first_request_only([])) as url, HTTPClient() as client:
            async with client.stream("POST", f"{url}/x", body=b"{}") as response:
                assert await response.aread() == b"connection 1"
            with pytest.raises(ConnectionLostError) as caught:
                async with client.stream("POST", f"{url}/x", body=b"{}") as response:
                    pass
            assert caught.value.retryable

    run(main)


def test_bytes_on_an_idle_connection_retire_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int) -> None:
        while True:
            await read_request(reader)
            body = f"connection {connection}".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")

    async def main() -> None:
        async with raw_server(handler) as url, HTTPClient() as client:
            async with client.stream("GET", f"{url}/x") as response:
                assert await response.aread() == b"connection 1"
            await asyncio.sleep(0.2)
            async with client.stream("GET", f"{url}/x") as response:
                assert response.status == 200
                assert await response.aread() == b"connection 2"

    run(main)


# --- TLS -------------------------------------------------------------------------------------------


@dataclass
class TLSFiles:
    server: ssl.SSLContext
    trusting_client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callkit test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return TLSFiles(server, client)


def keep_answering(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int
) -> Awaitable[None]:
    async def loop() -> None:
        while True:
            await read_request(reader)
            body = f"tls {connection}".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    return loop()


def test_tls_with_verification_and_keep_alive(tls: TLSFiles) -> None:
    async def main() -> None:
        async with (
            raw_server(keep_answering, ssl_context=tls.server) as url,
            HTTPClient(ssl_context=tls.trusting_client) as client,
        ):
            for _ in range(2):
                async with client.stream("GET", f"{url}/x") as response:
                    assert await response.aread() == b"tls 1"

    run(main)


def test_tls_untrusted_certificate_is_not_retryable(tls: TLSFiles) -> None:
    async def main() -> None:
        async with raw_server(keep_answering, ssl_context=tls.server) as url, HTTPClient() as client:
            with pytest.raises(ConnectError) as caught:
                await get(client, f"{url}/x")
            assert not caught.value.retryable
            assert "certificate" in str(caught.value)

    run(main)


def test_tls_handshake_that_never_comes_is_a_connect_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        async with raw_server(silent) as url, HTTPClient(connect_timeout=0.2) as client:
            with pytest.raises(ConnectTimeoutError) as caught:
                await get(client, url.replace("http://", "https://") + "/x")
            assert caught.value.retryable

    run(main)
