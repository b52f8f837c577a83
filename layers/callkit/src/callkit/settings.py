"""Deployment settings: the public URLs, the table and where the secrets live.

Read once from the environment (the template sets these names) or given explicitly by
``AgentRuntime`` and tests. Public URLs are configuration, never read from ``Host``: they are what
the carrier signs (docs/architecture.md §2.2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Final, Literal, cast, get_args
from urllib.parse import urlsplit, urlunsplit

from callkit._env import masked
from callkit.errors import ConfigurationError
from callkit.store._base import DEFAULT_RETENTION_SECONDS
from callkit.tokens import DEFAULT_TTL_SECONDS

ENV_APP: Final = "CALLKIT_APP"
ENV_PUBLIC_URL: Final = "CALLKIT_PUBLIC_URL"
ENV_MEDIA_URL: Final = "CALLKIT_MEDIA_URL"
ENV_RELAY_URL: Final = "CALLKIT_RELAY_URL"
ENV_TABLE: Final = "CALLKIT_TABLE"
ENV_TOKEN_KEY: Final = "CALLKIT_TOKEN_KEY"
ENV_TOKEN_KEY_SECRET: Final = "CALLKIT_TOKEN_KEY_SECRET"
ENV_TOKEN_TTL: Final = "CALLKIT_TOKEN_TTL_SECONDS"
ENV_RETENTION_DAYS: Final = "CALLKIT_RETENTION_DAYS"
ENV_TWILIO_AUTH_TOKEN_PARAM: Final = "TWILIO_AUTH_TOKEN_PARAM"
ENV_PLIVO_AUTH_TOKEN_PARAM: Final = "PLIVO_AUTH_TOKEN_PARAM"
ENV_OPENAI_API_KEY_PARAM: Final = "OPENAI_API_KEY_PARAM"
ENV_SCHEDULER_GROUP: Final = "CALLKIT_SCHEDULER_GROUP"
ENV_SCHEDULER_ROLE_ARN: Final = "CALLKIT_SCHEDULER_ROLE_ARN"
ENV_RELAY_FUNCTION_ARN: Final = "CALLKIT_RELAY_FUNCTION_ARN"
#: The carriers' REST API base URLs; set only to point at a local fake (tests, the demo).
#: The caller's speech detector on the media server: silero (default), energy or confirmed
#: (bench/README.md, "Voice activity").
ENV_VOICE_ACTIVITY: Final = "CALLKIT_VOICE_ACTIVITY"
VoiceActivity = Literal["silero", "energy", "confirmed"]
VOICE_ACTIVITIES: Final = get_args(VoiceActivity)
ENV_TWILIO_API_URL: Final = "CALLKIT_TWILIO_API_URL"
ENV_PLIVO_API_URL: Final = "CALLKIT_PLIVO_API_URL"
DEFAULT_APP: Final = "callkit_app:interfaces"
#: Where ``AgentRuntime`` serves ConversationRelay when the relay URL is derived from the public URL.
LOCAL_RELAY_PATH: Final = "/relay"
#: Fields whose values are secrets: shown as ``'***'`` (set) or ``''`` in ``repr``.
_SECRET_FIELDS: Final = frozenset({"token_key"})


def _base_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    """Validate a base URL: an allowed scheme, a host, no query or fragment, no trailing slash."""
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{name}={value!r} must be a {' or '.join(schemes)} URL with a host and no query, e.g. "
            f"'{schemes[0]}://voice.example.com' (add the API stage path if it has one)"
        )
    return value.rstrip("/")


def websocket_url(http_url: str, path: str = "") -> str:
    """The WebSocket URL on the same host as a public base URL: ``https`` → ``wss``, ``http`` → ``ws``.

    ``websocket_url("https://abcd.ngrok.app", "/relay") == "wss://abcd.ngrok.app/relay"``; a base
    path (an API stage) is kept, the way a reverse proxy in front of the runtime maps it.
    """
    parts = urlsplit(http_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ConfigurationError(f"{http_url!r} is not an http or https URL with a host")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    """Where callkit is reachable and what it uses.

    Attributes:
        public_url: https base URL of the webhook routes as the carrier calls them (with the API
            stage or custom-domain base path if any). Empty: rebuilt from the API Gateway event.
        media_url: wss base URL of the media server (stream pipelines).
        relay_url: wss URL of the ConversationRelay WebSocket API (managed pipeline).
        table: DynamoDB table name; empty means the in-memory store.
        token_key: HMAC key for stream tokens, given directly (local runs, tests).
        token_key_secret: Secrets Manager id of the key (deployments).
        twilio_auth_token_param / plivo_auth_token_param: SSM SecureString names of the auth tokens.
        openai_api_key_param: SSM SecureString name of the model API key (when ``OPENAI_API_KEY`` is unset).
        scheduler_group / scheduler_role_arn / relay_function_arn: where the max-duration schedules
            go, the role EventBridge Scheduler assumes, and the function it invokes.
        twilio_api_url / plivo_api_url: the carriers' REST API base URLs (default: the real ones;
            a local fake in tests and the demo).
        voice_activity: the speech detector of cascading calls (``silero``, ``energy`` or
            ``confirmed``; ``callkit.audio.vad``).
    """

    public_url: str = ""
    media_url: str = ""
    relay_url: str = ""
    table: str = ""
    token_key: str = ""
    token_key_secret: str = ""
    token_ttl_seconds: int = DEFAULT_TTL_SECONDS
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    twilio_auth_token_param: str = ""
    plivo_auth_token_param: str = ""
    openai_api_key_param: str = ""
    scheduler_group: str = ""
    scheduler_role_arn: str = ""
    relay_function_arn: str = ""
    app: str = DEFAULT_APP
    twilio_api_url: str = ""
    plivo_api_url: str = ""
    voice_activity: VoiceActivity = "silero"

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_url", _base_url("public_url", self.public_url, ("https", "http")))
        object.__setattr__(self, "media_url", _base_url("media_url", self.media_url, ("wss", "ws")))
        object.__setattr__(self, "relay_url", _base_url("relay_url", self.relay_url, ("wss", "ws")))
        if self.voice_activity not in VOICE_ACTIVITIES:
            raise ConfigurationError(
                f"{ENV_VOICE_ACTIVITY}={self.voice_activity!r}: use one of {', '.join(VOICE_ACTIVITIES)}"
            )
        if self.token_ttl_seconds <= 0 or self.retention_seconds <= 0:
            raise ConfigurationError("token TTL and retention must be positive")

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: the stream-token key never does.
        shown = (
            f"{f.name}={masked(value) if f.name in _SECRET_FIELDS else repr(value)}"
            for f in fields(self)
            if (value := getattr(self, f.name)) or f.name in _SECRET_FIELDS
        )
        return f"Settings({', '.join(shown)})"

    @property
    def base_path(self) -> str:
        """The path prefix of ``public_url`` (an API stage or base-path mapping), e.g. ``/prod``."""
        return urlsplit(self.public_url).path.rstrip("/") if self.public_url else ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def integer(name: str, default: int) -> int:
            raw = env.get(name, "")
            try:
                return int(raw) if raw else default
            except ValueError as exc:
                raise ConfigurationError(f"{name}={raw!r} must be an integer") from exc

        return cls(
            public_url=env.get(ENV_PUBLIC_URL, ""),
            twilio_api_url=env.get(ENV_TWILIO_API_URL, ""),
            plivo_api_url=env.get(ENV_PLIVO_API_URL, ""),
            voice_activity=cast("VoiceActivity", env.get(ENV_VOICE_ACTIVITY, "") or "silero"),
            media_url=env.get(ENV_MEDIA_URL, ""),
            relay_url=env.get(ENV_RELAY_URL, ""),
            table=env.get(ENV_TABLE, ""),
            token_key=env.get(ENV_TOKEN_KEY, ""),
            token_key_secret=env.get(ENV_TOKEN_KEY_SECRET, ""),
            token_ttl_seconds=integer(ENV_TOKEN_TTL, DEFAULT_TTL_SECONDS),
            retention_seconds=integer(ENV_RETENTION_DAYS, DEFAULT_RETENTION_SECONDS // 86400) * 86400,
            twilio_auth_token_param=env.get(ENV_TWILIO_AUTH_TOKEN_PARAM, ""),
            plivo_auth_token_param=env.get(ENV_PLIVO_AUTH_TOKEN_PARAM, ""),
            openai_api_key_param=env.get(ENV_OPENAI_API_KEY_PARAM, ""),
            scheduler_group=env.get(ENV_SCHEDULER_GROUP, ""),
            scheduler_role_arn=env.get(ENV_SCHEDULER_ROLE_ARN, ""),
            relay_function_arn=env.get(ENV_RELAY_FUNCTION_ARN, ""),
            app=env.get(ENV_APP, "") or DEFAULT_APP,
        )


def served_from(base: Settings, public_url: str) -> Settings:
    """The settings of one process that serves everything at ``public_url`` (``AgentRuntime``).

    The relay URL becomes ``wss://…/relay`` and the media URL ``wss://…`` on the same host
    (``ws://`` for ``http://``) unless ``base`` sets them (``CALLKIT_RELAY_URL`` / ``CALLKIT_MEDIA_URL``).
    """
    public = replace(base, public_url=public_url)  # validates it first
    return replace(
        public,
        media_url=base.media_url or websocket_url(public.public_url),
        relay_url=base.relay_url or websocket_url(public.public_url, LOCAL_RELAY_PATH),
    )
