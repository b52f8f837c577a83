from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Literal

import pytest

from callkit import Agent, ConfigurationError, tool
from callkit.agent import ToolArgumentsError


class Custom:
    """A type with no JSON schema."""


@tool
def lookup(order_id: str, include_items: bool = False, limit: int | None = None) -> str:
    """Find an order.

    Args:
        order_id: The order number.
        include_items: Whether to list the items,
            one per line.
    """
    return f"{order_id}:{include_items}:{limit}"


@tool(name="book", description="Book a slot")
async def book_slot(
    day: Literal["mon", "tue"], slots: list[int], note: Annotated[str, "free text"] = ""
) -> dict[str, object]:
    return {"day": day, "slots": slots, "note": note}


def test_schema_from_hints_and_docstring() -> None:
    assert lookup.name == "lookup"
    assert lookup.description == "Find an order."
    assert lookup.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order number."},
            "include_items": {
                "type": "boolean",
                "description": "Whether to list the items, one per line.",
                "default": False,
            },
            "limit": {"type": "integer"},
        },
        "required": ["order_id"],
    }


def test_schema_for_literal_list_annotated_and_overrides() -> None:
    assert book_slot.name == "book" and book_slot.description == "Book a slot"
    props = book_slot.parameters["properties"]
    assert props["day"] == {"enum": ["mon", "tue"], "type": "string"}
    assert props["slots"] == {"type": "array", "items": {"type": "integer"}}
    assert props["note"] == {"type": "string", "description": "free text", "default": ""}
    assert book_slot.parameters["required"] == ["day", "slots"]
    assert book_slot.openai_schema()["function"]["name"] == "book"
    assert book_slot.realtime_schema()["name"] == "book"


def test_sync_tools_run_off_the_event_loop_and_async_tools_on_it() -> None:
    seen: list[str] = []

    @tool
    def where() -> str:
        """Which thread."""
        seen.append(threading.current_thread().name)
        return "ok"

    async def main() -> None:
        assert await where.invoke("{}") == "ok"
        assert await book_slot.invoke('{"day": "mon", "slots": [1, 2]}') == {
            "day": "mon",
            "slots": [1, 2],
            "note": "",
        }

    asyncio.run(main())
    assert seen and seen[0] != threading.main_thread().name


@pytest.mark.parametrize("arguments", ["not json", "[1]", '{"order_id": "1", "bogus": 2}', "{}"])
def test_bad_arguments_are_a_typed_error(arguments: str) -> None:
    with pytest.raises(ToolArgumentsError):
        asyncio.run(lookup.invoke(arguments))


def test_agent_wraps_functions_and_rejects_duplicates() -> None:
    def ping() -> str:
        """Ping."""
        return "pong"

    agent = Agent(model="openai/gpt-4o-mini", instructions="Be brief.", tools=[lookup, ping])
    assert list(agent.tools) == ["lookup", "ping"]
    assert (agent.model.provider, agent.model.name) == ("openai", "gpt-4o-mini")
    assert Agent(model="gpt-4o").model.provider == "openai"
    with pytest.raises(ConfigurationError, match="repeated: lookup"):
        Agent(tools=[lookup, lookup])
    with pytest.raises(ConfigurationError, match="model="):
        Agent(model="openai/")


def test_unsupported_parameters_are_refused() -> None:
    def star(*args: str) -> None: ...

    with pytest.raises(ConfigurationError, match=r"\*args"):
        tool(star)

    def custom(x: Custom) -> None: ...

    with pytest.raises(ConfigurationError, match="no JSON schema"):
        tool(custom)
