"""Reaping what dies under serve, so a dead PostgreSQL is seen as dead at once.

pg_ctl daemonises the postmaster: its parent exits and it is adopted by the nearest
"subreaper", by default PID 1. A killed postmaster stays a zombie until that process reaps
it, and PostgreSQL's start-up (like our own pid check) takes a zombie named in
postmaster.pid for a running postmaster: measured under a container's PID 1, 1.5 s before
a restart could even begin. serve therefore declares itself a subreaper (Linux
PR_SET_CHILD_SUBREAPER), adopting the postmaster and, should it die first, its backends,
and reaps them each round; its own children are left to their Popen objects, which need
their exit status. (Under a container runtime where serve is PID 1 this is needed anyway.)
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_adopted(own: Callable[[int], bool]) -> int:
    """Reap exited processes this one adopted; stops at an exited child of its own (`own`),
    which its Popen reaps. Returns how many were reaped."""
    reaped = 0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped
        if info is None or own(info.si_pid):
            return reaped
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return reaped
        reaped += 1
