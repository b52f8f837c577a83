"""Reading configuration: explicit argument, then environment variable, then default (STYLE 7)."""

from __future__ import annotations

import os


def resolve(explicit: str | None, env_name: str, default: str = "") -> str:
    """The explicit value if given (non-empty), else the environment variable, else ``default``."""
    if explicit:
        return explicit
    return os.environ.get(env_name, "") or default


def masked(secret: str) -> str:
    """How a secret appears in a repr: never its value."""
    return "'***'" if secret else "''"
