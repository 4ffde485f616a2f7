"""The R4 Subscription websocket channel."""
