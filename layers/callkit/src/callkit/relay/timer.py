"""Ending a call at ``max_call_duration_seconds``, silent caller included (docs/architecture.md §2.7).

Deployed: an EventBridge Scheduler one-off schedule per call that invokes the relay function with
``{"callkit": "max-duration", "call_id": ...}`` and deletes itself afterwards; no polling server.
Locally: an asyncio timer in the runtime's loop. Either way the relay handler says goodbye and
ends the session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from callkit.errors import ServiceError
from callkit.relay.events import MAX_DURATION

if TYPE_CHECKING:
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient


class CallTimer(Protocol):
    async def schedule_end(self, call_id: str, at: float) -> None:
        """Arrange for the call to be ended at epoch second ``at``; scheduling twice is harmless."""
        ...


def schedule_name(call_id: str) -> str:
    # Scheduler names: 1-64 of [0-9a-zA-Z-_.]; call ids are CA + hex (Twilio) or UUIDs.
    return "callkit-" + "".join(c if c.isalnum() or c in "-_." else "-" for c in call_id)[:56]


class SchedulerCallTimer:
    """EventBridge Scheduler ``CreateSchedule`` through botocore's ``scheduler`` client."""

    def __init__(
        self, client: EventBridgeSchedulerClient, *, group: str, target_arn: str, role_arn: str
    ) -> None:
        self._client = client
        self._group = group
        self._target_arn = target_arn
        self._role_arn = role_arn

    def request(self, call_id: str, at: float) -> dict[str, Any]:
        """``CreateSchedule``'s parameters: a one-off schedule that invokes the relay and deletes itself."""
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
        return {
            "Name": schedule_name(call_id),
            "GroupName": self._group,
            "ScheduleExpression": f"at({moment})",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {
                "Arn": self._target_arn,
                "RoleArn": self._role_arn,
                "Input": json.dumps({"callkit": MAX_DURATION, "call_id": call_id}),
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 300},
            },
        }

    async def schedule_end(self, call_id: str, at: float) -> None:
        try:
            await asyncio.to_thread(lambda: self._client.create_schedule(**self.request(call_id, at)))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConflictException":
                return  # already scheduled by an earlier attempt
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise ServiceError(
                f"CreateSchedule failed: {exc.response.get('Error', {}).get('Code') or status}",
                retryable=status == 429 or status >= 500,
            ) from exc
        except BotoCoreError as exc:
            raise ServiceError(f"CreateSchedule failed: {type(exc).__name__}", retryable=True) from exc


class LoopCallTimer:
    """An asyncio timer per call, for ``AgentRuntime``: calls ``on_due(call_id)`` at the time."""

    def __init__(
        self,
        on_due: Callable[[str], Coroutine[object, object, None]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._on_due = on_due
        self._clock = clock
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def schedule_end(self, call_id: str, at: float) -> None:
        if call_id in self._handles:
            return
        loop = asyncio.get_running_loop()
        self._handles[call_id] = loop.call_later(max(0.0, at - self._clock()), self._fire, call_id)

    def _fire(self, call_id: str) -> None:
        self._handles.pop(call_id, None)
        task = asyncio.get_running_loop().create_task(self._on_due(call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
