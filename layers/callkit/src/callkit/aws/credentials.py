"""AWS credentials: the environment first (what Lambda sets), botocore's full chain only without it.

Lambda puts the execution role's temporary credentials in ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` for the life of the execution environment, so
the cold path reads three variables and imports nothing. Elsewhere (a laptop with a profile, ECS,
EC2) the provider builds botocore's credential chain on first use (about 300 ms of imports, paid
once) and asks it for frozen credentials on every request, so refreshed role credentials are used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import NoCredentialsError, PartialCredentialsError

if TYPE_CHECKING:
    from botocore.credentials import Credentials as BotocoreCredentials

__all__ = [
    "ACCESS_KEY_ENV",
    "SECRET_KEY_ENV",
    "SECURITY_TOKEN_ENV",
    "SESSION_TOKEN_ENV",
    "Credentials",
    "CredentialsProvider",
    "DefaultCredentialsProvider",
    "StaticCredentialsProvider",
]

ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN_ENV = "AWS_SESSION_TOKEN"
#: The session token's older name, still read by botocore after ``AWS_SESSION_TOKEN``.
SECURITY_TOKEN_ENV = "AWS_SECURITY_TOKEN"


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of AWS credentials; ``token`` only for temporary ones. The repr hides the secrets."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


#: Called before every request: returns the credentials to sign it with, or raises ``BotoCoreError``.
CredentialsProvider = Callable[[], Credentials]


class StaticCredentialsProvider:
    """Always the same credentials (tests, or keys the caller manages)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self) -> Credentials:
        return self._credentials


class DefaultCredentialsProvider:
    """Credentials from the environment, else from botocore's default chain (built once, lazily).

    Raises ``PartialCredentialsError`` when only one of the key variables is set (as botocore
    does) and ``NoCredentialsError`` when nothing in the chain has credentials.
    """

    def __init__(self) -> None:
        self._chain: BotocoreCredentials | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Credentials:
        environ = os.environ
        access_key = environ.get(ACCESS_KEY_ENV, "")
        secret_key = environ.get(SECRET_KEY_ENV, "")
        if access_key and secret_key:
            token = environ.get(SESSION_TOKEN_ENV) or environ.get(SECURITY_TOKEN_ENV) or None
            return Credentials(access_key, secret_key, token)
        if access_key or secret_key:
            missing = SECRET_KEY_ENV if access_key else ACCESS_KEY_ENV
            raise PartialCredentialsError(provider="env", cred_var=missing)
        frozen = self._botocore_chain().get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise NoCredentialsError()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)

    def _botocore_chain(self) -> BotocoreCredentials:
        with self._lock:
            if self._chain is None:
                # Imported here: botocore.session costs ~300 ms, only worth it off Lambda.
                import botocore.session

                chain = botocore.session.get_session().get_credentials()
                if chain is None:
                    raise NoCredentialsError()
                self._chain = chain
            return self._chain
