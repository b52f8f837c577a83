"""The seed's example agent: a support line that checks orders and transfers to a person.

Used by the demo, the tests and ``functions/callkit_app.py``; replace it with your own agent.
"""

from __future__ import annotations

import os
from typing import Annotated

from callkit.actions import Transfer
from callkit.agent import Agent, tool

#: Where ``transfer_call`` sends callers (E.164); unset means nobody to transfer to.
ENV_TRANSFER_NUMBER = "CALLKIT_TRANSFER_NUMBER"

_ORDERS = {
    "1001": "shipped on Monday and arrives tomorrow",
    "1002": "being packed; it ships today",
    "1003": "delivered yesterday to the front desk",
}


@tool
def check_order(order_id: Annotated[str, "The order number the caller gives, digits only"]) -> str:
    """Look up the status of an order."""
    status = _ORDERS.get(order_id.strip())
    return f"Order {order_id} is {status}." if status else f"I could not find order {order_id}."


@tool
def transfer_call(reason: str) -> Transfer | str:
    """Transfer the caller to a human agent.

    Args:
        reason: Why the caller wants a person, in a few words.
    """
    # A real transfer when a number is configured: the relay ends the session with this handoff
    # and the webhook answers Twilio's <Connect action> callback with <Dial>.
    number = os.environ.get(ENV_TRANSFER_NUMBER, "")
    if not number:
        return "No one is available to take the call right now; offer to help or take a message."
    return Transfer(to=number, reason=reason)


support_agent = Agent(
    model="openai/gpt-4o-mini",
    instructions=(
        "You are the phone support agent of Acme Shop. Be brief and friendly: callers hear you, so "
        "answer in one or two short sentences. Use check_order for order questions and transfer_call "
        "when the caller asks for a person."
    ),
    tools=[check_order, transfer_call],
)
