"""Notification delivery: outbox dispatcher, delivery queues, outbound HTTP (only here)."""
