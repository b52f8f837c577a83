"""``AgentRuntime``: every callkit route in one local process (docs/architecture.md §4).

It serves the webhook routes with uvicorn through the same ``Switchboard`` the Lambda function
uses, and the ConversationRelay WebSocket through the same ``RelayHandler`` the relay function
uses, fed by a local stand-in for API Gateway (``callkit.relay.local``), and the media streams
through the media server's pipelines. Call state goes to DynamoDB when a table is configured
(``CALLKIT_TABLE``; ``AWS_ENDPOINT_URL`` may point at moto or DynamoDB Local), else to memory.
Use it as ``await runtime.start()`` (serve until cancelled) or ``async with runtime:`` (serve in
the background, e.g. for the demo and tests). Either way it first checks what the calls will
need (``callkit.preflight``) and refuses to start with a ``PreflightError`` listing every
problem, then logs where it listens and what to paste into the carrier console.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from callkit import preflight
from callkit.app_loader import build_store
from callkit.errors import ConfigurationError, PreflightError
from callkit.relay.events import MAX_DURATION
from callkit.relay.handler import RelayHandler
from callkit.relay.local import LocalConnections
from callkit.relay.timer import LoopCallTimer
from callkit.settings import LOCAL_RELAY_PATH, Settings, served_from
from callkit.switchboard import Switchboard
from callkit.telemetry import StdlibTelemetry, Telemetry, console_logging

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI
    from starlette.routing import BaseRoute
    from starlette.websockets import WebSocket

    from callkit.agent import Agent
    from callkit.audio.vad import SpeechDetector
    from callkit.interface import CallInterface
    from callkit.llm import ChatModel
    from callkit.preflight import Problem
    from callkit.store._base import CallStore
    from callkit.stream.admission import Admitted
    from callkit.stream.server import Pipeline

log = logging.getLogger("callkit.runtime")


class AgentRuntime:
    """Serve ``interfaces`` on ``host:port``.

    Args:
        agent: bound to every interface that has none.
        interfaces: the ``CallInterface``s to serve.
        host / port: where to listen; ``port=0`` picks a free port (see ``url``).
        public_url: the URL carriers use to reach this process (an ngrok URL, say); default
            ``CALLKIT_PUBLIC_URL``, else ``http://{host}:{port}``. Signatures are checked against
            it, and the relay URL (``wss://…/relay``) and the media URL (``wss://…`` + stream path)
            derive from it unless ``CALLKIT_RELAY_URL`` / ``CALLKIT_MEDIA_URL`` are set.
        settings: overrides for everything else (defaults: ``Settings.from_env()``).
        store / telemetry: injected call store and telemetry (defaults: from settings, stdlib logging).
        model: the chat model for managed calls, or a function of the interface that returns one
            (default: ``OpenAIChatModel`` for the agent's model, ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``).
        stream_pipeline: what holds an admitted media stream (default: the interface's pipeline).
    """

    def __init__(
        self,
        agent: Agent | None = None,
        interfaces: Sequence[CallInterface] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        public_url: str | None = None,
        settings: Settings | None = None,
        store: CallStore | None = None,
        telemetry: Telemetry | None = None,
        model: ChatModel | Callable[[CallInterface], ChatModel] | None = None,
        stream_pipeline: Callable[[Admitted], Pipeline | None] | None = None,
    ) -> None:
        if not interfaces:
            raise ConfigurationError("AgentRuntime needs interfaces=[CallInterface(...)]")
        for interface in interfaces:
            if interface.agent is None:
                if agent is None:
                    raise ConfigurationError(
                        "an interface has no agent: pass AgentRuntime(agent, ...) or CallInterface(agent=...)"
                    )
                interface.bind(agent)
        self.interfaces = tuple(interfaces)
        self.host = host
        self._socket = self._bind(host, port)
        self.port: int = self._socket.getsockname()[1]
        local_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        base = settings or Settings.from_env()
        # One public URL gives all three (docs/architecture.md §2.2): behind a tunnel the carrier
        # must reach the relay and the media stream through it too, never 127.0.0.1.
        self.settings = dataclasses.replace(
            served_from(base, public_url or base.public_url or f"http://{local_host}:{self.port}"),
            # A per-process key is enough when this process both mints and verifies the tokens.
            token_key=base.token_key or (secrets.token_hex(32) if not base.token_key_secret else ""),
        )
        # Where the relay socket is served here: an explicit CALLKIT_RELAY_URL names its path; a
        # derived one is /relay (a base path in public_url is the proxy's, like the webhooks').
        self._relay_path = (urlsplit(base.relay_url).path or "/") if base.relay_url else LOCAL_RELAY_PATH
        from callkit.aws_clients import MEDIA_SERVER_POLICY, AwsClients
        from callkit.store.aio import AsyncStore

        # The stream side's store calls go through AsyncStore, as on the media server: same policy.
        self.store = (
            store if store is not None else build_store(self.settings, AwsClients(MEDIA_SERVER_POLICY))
        )
        self.stream_store = AsyncStore(self.store)  # the stream side reaches the store off the loop
        self.telemetry = telemetry if telemetry is not None else StdlibTelemetry()
        self.switchboard = Switchboard(
            self.interfaces, settings=self.settings, store=self.store, telemetry=self.telemetry
        )
        self._model_for = self._model_factory(model)
        self._default_model = model is None
        self.relay: RelayHandler | None = None
        self.connections = LocalConnections()
        if any(i.provider == "twilio" and i.pipeline == "managed" for i in self.interfaces):
            self.relay = RelayHandler(
                self.interfaces,
                settings=self.settings,
                store=self.store,
                connections=self.connections,
                model_for=self._model_for,
                credentials=self.switchboard.credentials,
                telemetry=self.telemetry,
                timer=LoopCallTimer(self._end_call),
            )
        self._stream_pipeline = stream_pipeline or self._default_pipeline
        self._default_streams = stream_pipeline is None
        self._detectors: Callable[[], SpeechDetector] | None = None
        from callkit.net.http1 import HTTPClient

        self._http = HTTPClient(connect_timeout=3.0, read_timeout=10.0)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _model_factory(
        model: ChatModel | Callable[[CallInterface], ChatModel] | None,
    ) -> Callable[[CallInterface], ChatModel]:
        if model is not None and not callable(getattr(model, "stream", None)):
            return model  # type: ignore[return-value]  # a factory
        if model is not None:
            fixed: ChatModel = model  # type: ignore[assignment]
            return lambda _interface: fixed
        made: dict[int, ChatModel] = {}

        def default(interface: CallInterface) -> ChatModel:
            from callkit.llm.openai_chat import OpenAIChatModel

            if id(interface) not in made:
                assert interface.agent is not None  # bound in __init__
                made[id(interface)] = OpenAIChatModel(interface.agent.model)
            return made[id(interface)]

        return default

    def _default_pipeline(self, admitted: Admitted) -> Pipeline | None:
        from callkit.stream.pipelines import pipeline_for

        return pipeline_for(
            admitted,
            model_for=self._model_for,
            store=self.stream_store,
            telemetry=self.telemetry,
            credentials=self.switchboard.credentials,
            http=self._http,
            settings=self.settings,
            speech_detector=self._speech_detector(admitted),
        )

    def _speech_detector(self, admitted: Admitted) -> Callable[[], SpeechDetector] | None:
        """Made at the first cascading call (it loads Silero's model, ~0.1 s) and kept for the rest."""
        if admitted.interface.pipeline != "cascading":
            return None
        if self._detectors is None:
            from callkit.audio import speech_detectors

            self._detectors = speech_detectors(self.settings.voice_activity)
        return self._detectors

    async def _end_call(self, call_id: str) -> None:
        if self.relay is not None:
            await self.relay.handle({"callkit": MAX_DURATION, "call_id": call_id})

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        sock.set_inheritable(True)
        return sock

    @property
    def url(self) -> str:
        """The public base URL (what carriers call and what signatures cover)."""
        return self.settings.public_url

    def build_app(self) -> FastAPI:
        from callkit.http import create_webhook_app

        app = create_webhook_app(self.switchboard)

        @app.get("/healthz", include_in_schema=False)
        def healthz() -> dict[str, str]:
            return {"status": "ok"}

        relay = self.relay
        if relay is not None:
            from starlette.routing import WebSocketRoute

            from callkit.relay.local import serve_relay_socket

            async def relay_socket(socket: WebSocket) -> None:
                await serve_relay_socket(socket, relay, self.connections)

            # Plain Starlette routes: FastAPI would try to resolve the parameter's annotation.
            app.router.routes.append(WebSocketRoute(self._relay_path, relay_socket))
        for path in sorted({i.stream_path for i in self.interfaces if i.pipeline != "managed"}):
            app.router.routes.append(self._stream_route(path))
        return app

    def _stream_route(self, path: str) -> BaseRoute:
        from starlette.routing import WebSocketRoute

        from callkit.stream.server import serve_stream

        async def stream_socket(socket: WebSocket) -> None:
            await serve_stream(
                socket,
                path=path,
                interfaces=self.interfaces,
                settings=self.settings,
                store=self.stream_store,
                credentials=self.switchboard.credentials,
                telemetry=self.telemetry,
                pipeline_for=self._stream_pipeline,
            )

        return WebSocketRoute(path, stream_socket)

    def preflight(self) -> list[Problem]:
        """What the interfaces' calls would lack here (``callkit.preflight``); ``start`` refuses to serve with any."""
        return preflight.check(
            self.interfaces,
            self.settings,
            component="runtime",
            default_model=self._default_model,
            default_streams=self._default_streams,
        )

    async def start(self) -> None:
        """Check the configuration (``PreflightError`` lists every problem), then serve until cancelled."""
        import uvicorn

        console_logging()
        try:
            preflight.require(self.preflight())
        except PreflightError as error:
            log.error("%s", error)
            self._socket.close()
            raise
        config = uvicorn.Config(self.build_app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._announce()
        await self._server.serve(sockets=[self._socket])

    def _announce(self) -> None:
        """Where this process listens and what the carrier consoles need (no phone numbers: logged)."""
        log.info("callkit listening on http://%s:%d (public URL %s)", self.host, self.port, self.url)
        if self.relay is not None:
            log.info("ConversationRelay WebSocket (managed calls): %s", self.settings.relay_url)
        for path in sorted({i.stream_path for i in self.interfaces if i.pipeline != "managed"}):
            log.info("media streams (cascading, realtime calls): %s%s", self.settings.media_url, path)
        for line in preflight.carrier_console(self.interfaces, self.settings):
            log.info("paste into the carrier console: %s", line)

    async def __aenter__(self) -> AgentRuntime:
        self._task = asyncio.create_task(self.start())
        while self._server is None or not self._server.started:
            if self._task.done():
                try:
                    self._task.result()  # re-raise a startup failure (a PreflightError, say)
                finally:
                    await self._release()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._release()

    async def _release(self) -> None:
        await self._http.aclose()
        self.stream_store.close()
        self._socket.close()
