"""``Agent`` and ``@tool``: what the phone agent is (model, instructions, tools).

A tool is a plain function, sync or async, whose JSON schema comes from its type hints and
docstring (Google style ``Args:`` section, or ``Annotated[T, "description"]``). The schema is the
OpenAI function-calling shape (docs/protocols/ai-providers.md §4.1), so it serves Chat Completions and, flattened,
the Realtime API (§3.2).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints, overload

from callkit.errors import ConfigurationError, ToolArgumentsError

JSONSchema = dict[str, Any]
ToolFunction = Callable[..., Any]

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")


def _schema_for(annotation: Any) -> tuple[JSONSchema, bool]:
    """JSON schema of a type hint, and whether ``None`` is allowed."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *meta = get_args(annotation)
        described, nullable = _schema_for(inner)
        text = next((m for m in meta if isinstance(m, str)), None)
        return ({**described, "description": text} if text else described), nullable
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(get_args(annotation))
        if len(members) == 1:
            return _schema_for(members[0])[0], nullable
        return {"anyOf": [_schema_for(m)[0] for m in members]}, nullable
    if origin is Literal:
        values = list(get_args(annotation))
        kinds = {type(v) for v in values}
        schema: JSONSchema = {"enum": values}
        if len(kinds) == 1:
            schema["type"] = _schema_for(kinds.pop())[0].get("type", "string")
        return schema, False
    if origin in (list, tuple, set, frozenset, Sequence):
        args = get_args(annotation)
        items = _schema_for(args[0])[0] if args and args[0] is not Ellipsis else {}
        return {"type": "array", "items": items}, False
    if origin in (dict, Mapping):
        return {"type": "object"}, False
    simple: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}
    if annotation in simple:
        return {"type": simple[annotation]}, False
    if annotation is list:
        return {"type": "array"}, False
    if annotation is type(None):
        return {"type": "null"}, True
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {}, False
    raise ConfigurationError(
        f"tool parameter type {annotation!r} has no JSON schema; use str, int, float, bool, "
        "Literal, list[...], dict or Optional of these"
    )


def _docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and ``Args:`` entries."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    arg_indent: int | None = None
    in_args = False
    for line in lines:
        if _ARGS_HEADER.match(line):
            in_args, current, arg_indent = True, None, None
            continue
        if in_args:
            indent = len(line) - len(line.lstrip())
            if _SECTION.match(line) and indent == 0:
                in_args, current = False, None
                continue
            match = _ARG_LINE.match(line)
            if match and (arg_indent is None or indent <= arg_indent):
                arg_indent = indent
                current = match.group(1).lstrip("*")
                params[current] = match.group(3).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}"
            continue
        if not _SECTION.match(line):
            description.append(line)
    return " ".join(" ".join(description).split()), params


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call, with its JSON schema."""

    name: str
    description: str
    parameters: JSONSchema
    function: ToolFunction = field(repr=False)
    is_async: bool = field(repr=False, default=False)

    def openai_schema(self) -> JSONSchema:
        """Chat Completions ``tools[]`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def realtime_schema(self) -> JSONSchema:
        """OpenAI Realtime ``session.tools[]`` entry (flat shape)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    def bind_arguments(self, arguments: str | Mapping[str, Any]) -> inspect.BoundArguments:
        """Parse the model's JSON arguments and bind them to the function's signature."""
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise ToolArgumentsError(f"arguments for {self.name} are not JSON: {exc.msg}") from exc
        else:
            parsed = dict(arguments)
        if not isinstance(parsed, dict):
            raise ToolArgumentsError(f"arguments for {self.name} must be a JSON object")
        try:
            return inspect.signature(self.function).bind(**parsed)
        except TypeError as exc:
            raise ToolArgumentsError(f"arguments for {self.name} do not fit: {exc}") from exc

    async def invoke(self, arguments: str | Mapping[str, Any]) -> Any:
        """Run the tool. Sync functions run in a worker thread so they never block the event loop."""
        bound = self.bind_arguments(arguments)
        if self.is_async:
            result = self.function(*bound.args, **bound.kwargs)
            return await result if inspect.isawaitable(result) else result
        return await asyncio.to_thread(self.function, *bound.args, **bound.kwargs)


def _make_tool(function: ToolFunction, name: str | None, description: str | None) -> Tool:
    tool_name = name or function.__name__
    if not _TOOL_NAME.match(tool_name):
        raise ConfigurationError(f"tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-'")
    doc_description, doc_params = _docstring_parts(function.__doc__)
    try:
        hints = get_type_hints(function, include_extras=True)
    except NameError as exc:
        raise ConfigurationError(
            f"tool {tool_name}: a type hint cannot be resolved ({exc}); define it at module level"
        ) from exc
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigurationError(f"tool {tool_name}: *args/**kwargs cannot be described to a model")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigurationError(f"tool {tool_name}: positional-only parameters cannot be passed by name")
        schema, nullable = _schema_for(hints.get(param.name, Any))
        if param.name in doc_params and "description" not in schema:
            schema = {**schema, "description": doc_params[param.name]}
        if param.default is inspect.Parameter.empty and not nullable:
            required.append(param.name)
        elif param.default is not inspect.Parameter.empty and param.default is not None:
            schema = {**schema, "default": param.default}
        properties[param.name] = schema
    parameters: JSONSchema = {"type": "object", "properties": properties, "required": required}
    return Tool(
        name=tool_name,
        description=description or doc_description or tool_name.replace("_", " "),
        parameters=parameters,
        function=function,
        is_async=inspect.iscoroutinefunction(function),
    )


@overload
def tool(function: ToolFunction, /) -> Tool: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[ToolFunction], Tool]: ...
def tool(
    function: ToolFunction | None = None, /, *, name: str | None = None, description: str | None = None
) -> Tool | Callable[[ToolFunction], Tool]:
    """Make a function callable by the agent: ``@tool`` or ``@tool(name=..., description=...)``."""
    if function is not None:
        return _make_tool(function, name, description)
    return lambda f: _make_tool(f, name, description)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """``"openai/gpt-4o-mini"`` split into provider and model name."""

    provider: str
    name: str

    @classmethod
    def parse(cls, model: str) -> ModelRef:
        provider, sep, name = model.partition("/")
        if not sep:
            return cls("openai", model)
        if not provider or not name:
            raise ConfigurationError(f"model={model!r} must look like 'openai/gpt-4o-mini'")
        return cls(provider, name)


class Agent:
    """The agent on the line: a model, its instructions and its tools.

    ``model`` is ``"provider/name"``; any OpenAI-compatible Chat Completions endpoint serves it
    (``OPENAI_BASE_URL``). ``tools`` may be ``Tool`` objects or plain functions (wrapped with ``tool``).
    """

    __slots__ = ("instructions", "model", "tools")

    def __init__(
        self,
        model: str = "openai/gpt-4o-mini",
        instructions: str = "",
        tools: Sequence[Tool | ToolFunction] = (),
    ) -> None:
        self.model = ModelRef.parse(model)
        self.instructions = instructions
        wrapped = [t if isinstance(t, Tool) else tool(t) for t in tools]
        names = [t.name for t in wrapped]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"tool names must be unique; repeated: {', '.join(duplicates)}")
        self.tools: Mapping[str, Tool] = types.MappingProxyType({t.name: t for t in wrapped})

    def __repr__(self) -> str:
        return f"Agent(model='{self.model.provider}/{self.model.name}', tools={list(self.tools)})"
