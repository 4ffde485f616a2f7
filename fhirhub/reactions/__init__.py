"""Reactions: handlers `fhirhub worker` runs on committed changes, read from the outbox.

A domain package declares a `Reaction` (the resource types it watches, its handler); the
composition root registers it. The dispatcher, while it fans a committed event out to
subscribers, also plans one timer job per matching reaction, keyed by reaction and event,
so each reaction runs once per event (at least once: handlers are idempotent), never inside
the client's request, and a failing one is retried with backoff by the timer runner without
holding up notifications or other reactions.
"""
