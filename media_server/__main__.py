"""``python -m media_server``: serve streams on ``PORT`` (8080) until SIGTERM, then drain."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING

import uvicorn

from callkit import preflight
from callkit.app_loader import build_secrets, build_store, load_interfaces
from callkit.aws_clients import MEDIA_SERVER_POLICY, AwsClients
from callkit.errors import PreflightError
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.net.http1 import HTTPClient
from callkit.settings import Settings
from callkit.store.aio import AsyncStore
from callkit.switchboard import Credentials
from media_server.app import create_media_app
from media_server.scaling import DrainCoordinator, TaskScaling
from media_server.telemetry import ENV_LOG_LEVEL, MediaTelemetry, configure_logging

if TYPE_CHECKING:
    from types import FrameType

    from callkit.interface import CallInterface
    from callkit.llm import ChatModel

log = logging.getLogger("callkit.media")


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM starts a drain instead of stopping at once (ECS sends it)."""

    def __init__(self, config: uvicorn.Config, coordinator: DrainCoordinator) -> None:
        super().__init__(config)
        self._coordinator = coordinator
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        result = await self._coordinator.begin_drain()
        log.warning("drained: %d call(s) still active at the deadline", result.remaining_calls)
        self.should_exit = True


async def serve() -> None:
    settings = Settings.from_env()
    interfaces = load_interfaces(settings.app)
    # Refuse to start rather than hold calls that would fail: ECS shows the task stopping, and the
    # log says what is missing (callkit.preflight).
    preflight.require(preflight.check(interfaces, settings, component="media"))
    # botocore's attempts fit in one AsyncStore attempt (callkit.aws_clients.MEDIA_SERVER_POLICY).
    aws = AwsClients(MEDIA_SERVER_POLICY)
    store = AsyncStore(build_store(settings, aws))  # every store call off the event loop
    telemetry = MediaTelemetry.from_env()
    coordinator = DrainCoordinator.from_env()
    models: dict[int, ChatModel] = {}

    def model_for(interface: CallInterface) -> ChatModel:
        if id(interface) not in models:
            assert interface.agent is not None
            models[id(interface)] = OpenAIChatModel(interface.agent.model)
        return models[id(interface)]

    async with HTTPClient(connect_timeout=3.0, read_timeout=10.0) as http:
        app = create_media_app(
            interfaces,
            settings=settings,
            store=store,
            telemetry=telemetry,
            credentials=Credentials(settings, build_secrets(settings, aws)),
            http=http,
            model_for=model_for,
            coordinator=coordinator,
        )
        # log_config=None: uvicorn's loggers propagate to the root logger's JSON handler.
        config = uvicorn.Config(
            app, host="0.0.0.0", port=int(os.environ.get("PORT", "8080")), lifespan="off", log_config=None
        )
        server = DrainingServer(config, coordinator)
        scaling = asyncio.create_task(TaskScaling.from_env(coordinator).run())
        metrics = asyncio.create_task(telemetry.publish())
        try:
            await server.serve()
        finally:
            scaling.cancel()
            metrics.cancel()
            telemetry.flush()  # the last partial minute


def main() -> None:
    configure_logging(os.environ.get(ENV_LOG_LEVEL, "INFO"))
    try:
        asyncio.run(serve())
    except PreflightError as error:
        log.error("%s", error)
        raise SystemExit(1) from None


main()
