"""Alerts: the Flag + Task shape, opening, updating and closing them, and the escalation,
resolution and missing-data timers."""
