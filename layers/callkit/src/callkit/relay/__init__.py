"""Managed mode: Twilio ConversationRelay sessions on API Gateway WebSocket + Lambda (or locally).

``RelayHandler`` takes API Gateway WebSocket events and answers through ``Connections``
(``@connections`` when deployed, the real socket when local). The session's state is in the call
store; see ``handler`` for the turn fencing.
"""
