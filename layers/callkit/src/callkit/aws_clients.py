"""AWS clients: botocore's, made once per process, with callkit's timeouts and retry policy.

Everything about speaking to AWS is botocore's: endpoints (FIPS, dual-stack, every partition,
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``), credentials (Lambda's key variables,
SnapStart's container credentials, profiles), proxies (``HTTPS_PROXY``, ``NO_PROXY``), signing and
the standard retry mode. What callkit adds is the policy, one per place (docs/aws.md §8):

- ``LAMBDA_POLICY`` for the webhook and relay functions: the worst case stays below the webhook
  function's 10 s timeout, so a stuck request fails before the carrier gives up on the webhook;
- ``MEDIA_SERVER_POLICY`` for the media server, where ``AsyncStore`` gives each store call 2 s per
  attempt: botocore's own attempts, timeouts and backoff fit inside that.

The clients come from ``botocore.session`` directly, not ``boto3``: the same clients without
boto3's resource layer, ~50 ms less to import on a cold start (bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from botocore.config import Config
    from botocore.session import Session

__all__ = ["LAMBDA_POLICY", "MEDIA_SERVER_POLICY", "AwsClients", "ClientPolicy"]

#: botocore's standard mode waits at most rand(0, 1) × 2**i seconds before retry i+1 after a
#: throttling error (less after other errors), so this bounds the wait before the second attempt.
_FIRST_BACKOFF_MAX_SECONDS: Final = 1.0
_MAX_BACKOFF_SECONDS: Final = 20.0


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """Connect and read timeouts (seconds, per attempt) and the total attempts in standard mode."""

    connect_timeout: float
    read_timeout: float
    max_attempts: int

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0 or self.read_timeout <= 0 or self.max_attempts < 1:
            raise ValueError("timeouts must be positive and max_attempts at least 1")

    def config(self) -> Config:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
        )

    @property
    def worst_case_seconds(self) -> float:
        """The longest one client call can take: every attempt times out, every backoff is the longest.

        A read timeout bounds each wait for bytes, so a server that trickles its answer could take
        longer; AWS services answer whole. Ignores ``x-amz-retry-after``, which AWS sends rarely.
        """
        attempts = self.max_attempts * (self.connect_timeout + self.read_timeout)
        backoffs = sum(
            min(_FIRST_BACKOFF_MAX_SECONDS * 2.0**i, _MAX_BACKOFF_SECONDS)
            for i in range(self.max_attempts - 1)
        )
        return attempts + backoffs


#: Webhook and relay functions: 3 × (0.5 + 1.5) s + 1 s + 2 s of backoff = 9 s, inside the webhook's
#: 10 s function timeout (template.yaml); a DynamoDB or SSM call normally takes a few milliseconds.
LAMBDA_POLICY: Final = ClientPolicy(connect_timeout=0.5, read_timeout=1.5, max_attempts=3)
#: The media server: 2 × (0.2 + 0.3) s + 1 s of backoff = 2 s, one ``AsyncStore`` attempt
#: (``callkit.store.aio``), which retries on its own with asyncio backoff after that.
MEDIA_SERVER_POLICY: Final = ClientPolicy(connect_timeout=0.2, read_timeout=0.3, max_attempts=2)


class AwsClients:
    """Makes the process's clients from one botocore session and one policy.

    Build one at the edge (a Lambda handler module at import, the media server at start) and
    make each client once from it; clients are thread-safe and keep their connections alive.
    """

    def __init__(
        self,
        policy: ClientPolicy = LAMBDA_POLICY,
        *,
        session: Session | None = None,
        region: str | None = None,
    ) -> None:
        if session is None:
            import botocore.session

            session = botocore.session.get_session()
        self.policy = policy
        self._session = session
        self._config = policy.config()
        self._region = region

    def client(self, service: str, *, endpoint_url: str | None = None) -> Any:
        """A botocore client for ``service`` (``"dynamodb"``, ``"ssm"``, ...); type it at the call site.

        ``endpoint_url`` only for endpoints that are not a service's own (API Gateway's
        ``@connections`` are on the API's host and stage); otherwise botocore resolves it.
        """
        return self._session.create_client(
            service, region_name=self._region, endpoint_url=endpoint_url, config=self._config
        )
