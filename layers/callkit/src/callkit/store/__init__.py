"""Call state: one ``CallStore`` interface, a DynamoDB implementation and an in-memory one.

``import callkit.store`` stays cheap and works without boto3 installed (it is the ``aws`` extra):
``DynamoDBCallStore`` and ``create_table`` are imported from ``callkit.store.dynamodb`` on first
use. Both stores pass the same contract tests (``tests/unit/store/test_contract.py``, and
``test_relay_contract.py`` for managed-mode connections and turns).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callkit.store._base import (
    DEFAULT_RETENTION_SECONDS,
    CallRecord,
    CallStore,
    CreateResult,
    TransitionResult,
    TurnKind,
    TurnRecord,
)
from callkit.store.memory import MemoryCallStore

if TYPE_CHECKING:
    from callkit.store.dynamodb import DynamoDBCallStore, create_table

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "CallRecord",
    "CallStore",
    "CreateResult",
    "DynamoDBCallStore",
    "MemoryCallStore",
    "TransitionResult",
    "TurnKind",
    "TurnRecord",
    "create_table",
]

_DYNAMODB_NAMES = frozenset({"DynamoDBCallStore", "create_table"})


def __getattr__(name: str) -> object:
    # PEP 562: botocore is imported only by code that asks for the DynamoDB store.
    if name in _DYNAMODB_NAMES:
        from callkit.store import dynamodb

        return getattr(dynamodb, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
