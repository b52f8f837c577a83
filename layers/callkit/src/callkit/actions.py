"""Call-control actions a tool can return: end the call, transfer it to a number.

A tool returns one of these instead of text. The agent turn loop (``callkit.conversation``) gives
the model ``action.describe()`` as the tool's result, lets it say its closing words, and hands the
action to whoever holds the call (the relay answers Twilio with an ``end`` message carrying the
handoff, the media server ends or redirects the call through the carrier's API)::

    @tool
    def transfer_call(reason: str) -> Transfer:
        \"""Transfer the caller to a person.\"""
        return Transfer(to="+15551234567", reason=reason)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from callkit.errors import ConfigurationError

__all__ = ["Action", "EndCall", "Transfer"]

_E164: Final = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass(frozen=True, slots=True)
class EndCall:
    """Hang up once the agent has said goodbye."""

    reason: str = "caller-done"

    def describe(self) -> str:
        """What the model is told the tool did."""
        return "The call will end after your next words. Say a short goodbye and nothing else."


@dataclass(frozen=True, slots=True)
class Transfer:
    """Connect the caller to ``to`` (E.164) once the agent has told them."""

    to: str
    reason: str = ""

    def __post_init__(self) -> None:
        if not _E164.match(self.to):
            # The number is left out of the message: messages end up in logs (STYLE 15).
            raise ConfigurationError(
                "Transfer(to=...) must be an E.164 number: '+', the country code and digits, e.g. '+15551234567'"
            )

    def describe(self) -> str:
        """What the model is told the tool did (without the number: it need not read it out)."""
        return (
            "The caller is being transferred to a person right after your next words. "
            "Tell them so in one short sentence."
        )


Action = EndCall | Transfer
