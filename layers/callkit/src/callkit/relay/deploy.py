"""Compose a deployed relay from settings: @connections, the scheduler timer, the secrets and the model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from callkit.errors import ConfigurationError
from callkit.relay.handler import RelayHandler
from callkit.secrets import SecretRef, SecretResolver
from callkit.switchboard import Credentials

if TYPE_CHECKING:
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient

    from callkit.aws_clients import AwsClients
    from callkit.interface import CallInterface
    from callkit.llm import ChatModel
    from callkit.relay.timer import CallTimer
    from callkit.settings import Settings
    from callkit.store._base import CallStore
    from callkit.telemetry import Telemetry

ENV_OPENAI_API_KEY = "OPENAI_API_KEY"


class ModelFactory:
    """One chat model per interface, made on first use (the API key may be a secret to fetch)."""

    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        self._settings = settings
        self._secrets = secrets
        self._models: dict[int, ChatModel] = {}

    def api_key(self) -> str:
        key = os.environ.get(ENV_OPENAI_API_KEY, "")
        if key:
            return key
        if not self._settings.openai_api_key_param:
            raise ConfigurationError("no model API key: set OPENAI_API_KEY or OPENAI_API_KEY_PARAM")
        return self._secrets.get(SecretRef("ssm", self._settings.openai_api_key_param))

    async def aclose(self) -> None:
        """Close the models' HTTP connections (tests; Lambda simply freezes)."""
        for model in self._models.values():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()
        self._models.clear()

    def __call__(self, interface: CallInterface) -> ChatModel:
        from callkit.llm.openai_chat import OpenAIChatModel

        model = self._models.get(id(interface))
        if model is None:
            if interface.agent is None:
                raise ConfigurationError("the interface has no agent")
            model = OpenAIChatModel(interface.agent.model.name, api_key=self.api_key())
            self._models[id(interface)] = model
        return model


def build_relay(
    interfaces: Sequence[CallInterface],
    *,
    settings: Settings,
    store: CallStore,
    telemetry: Telemetry,
    aws: AwsClients,
    secrets: SecretResolver,
) -> RelayHandler:
    """The relay handler with its clients, all made now (at import on Lambda, before a SnapStart snapshot)."""
    from callkit.relay.connections import ApiGatewayConnections

    # @connections lives on the same host and stage as the wss:// URL (docs/aws.md §1.4); botocore
    # still prefers AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI / AWS_ENDPOINT_URL when they are set.
    endpoint = (
        "https" + settings.relay_url.removeprefix("wss") if settings.relay_url.startswith("wss") else ""
    )
    if not endpoint:
        raise ConfigurationError("CALLKIT_RELAY_URL must be the wss:// URL of the WebSocket API stage")
    endpoint = (
        os.environ.get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI")
        or os.environ.get("AWS_ENDPOINT_URL")
        or endpoint
    )
    timer: CallTimer | None = None
    if settings.scheduler_role_arn and settings.relay_function_arn:
        from callkit.relay.timer import SchedulerCallTimer

        timer = SchedulerCallTimer(
            cast("EventBridgeSchedulerClient", aws.client("scheduler")),
            group=settings.scheduler_group or "default",
            target_arn=settings.relay_function_arn,
            role_arn=settings.scheduler_role_arn,
        )
    return RelayHandler(
        interfaces,
        settings=settings,
        store=store,
        connections=ApiGatewayConnections.for_endpoint(endpoint, aws),
        model_for=ModelFactory(settings, secrets),
        credentials=Credentials(settings, secrets),
        telemetry=telemetry,
        timer=timer,
    )
