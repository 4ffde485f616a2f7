"""Durable timers: jobs due at a time, stored in the database and run by `fhirhub worker`.

A domain package declares a `TimerKind` (its handler and what to do when a job is too late
or gives up) and plans jobs by key through `Timers`; the composition root registers the
kinds; any number of workers run due jobs, each under a lease (fhirhub/timers/runner.py).
No in-memory timers, no cron. See README "Architecture: hub mechanisms".
"""
