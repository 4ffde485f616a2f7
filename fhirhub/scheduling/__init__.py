"""Scheduling: availability, Appointment $find/$hold/$book without double booking, cancel,
reschedule, no-show, waitlist and reminders (IHE ITI Scheduling, R4 Schedule/Slot/
Appointment). `rules/` is pure; `wiring.register(hub)` plugs the rest into the hub's
mechanisms (operations, write guard, reactions, timers, channels)."""
