"""Keep a serving process's threads on one CPU (the PIN_CPU setting).

The bot's event loop and its database threads share one GIL, and every
database call hands it over (sqlite3 and psycopg release it around each
statement and row). When the threads run on different CPUs, each hand-over
wakes a thread on the other CPU: on the benchmark's two-CPU machine that
nearly doubled the CPU each update cost (bench/bot_throughput.py, SQLite:
142 reads/s at 7.4 ms per update, against 249/s at 4.0 ms on one CPU). A
Python process uses one CPU at a time anyway, so one CPU loses little: only
the database's own C work overlapping the Python.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Set

log = logging.getLogger(__name__)

AUTO, OFF = "auto", "off"


def choose_cpu(choice: str, allowed: Set[int], current: int | None) -> int | None:
    """The CPU to pin to, or None to leave the process as it is.

    `choice`: PIN_CPU (`auto`, `off` or a CPU number); `allowed`: the CPUs the
    process may run on; `current`: the one it runs on now (None if unknown).
    `auto` takes the current CPU, where the scheduler has just placed the
    process, when there is more than one to choose from. Raises ValueError for
    a CPU the process may not use.
    """
    if choice == OFF:
        return None
    if choice == AUTO:
        if len(allowed) < 2 or current not in allowed:
            return None
        return current
    cpu = int(choice)
    if cpu not in allowed:
        raise ValueError(
            f"CPU {cpu} is not one this process may use "
            f"({', '.join(str(c) for c in sorted(allowed))})"
        )
    return cpu


def current_cpu() -> int | None:
    """The CPU this thread last ran on (Linux's /proc/thread-self/stat), or None."""
    try:
        with open("/proc/thread-self/stat", encoding="ascii") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Field 39 ("processor"); the command name before it may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[36])


def pin_process(choice: str) -> int | None:
    """Pin every thread of this process, and the threads it starts later, to one CPU.

    Returns the CPU, or None where nothing was pinned (`off`, one CPU, or an
    OS without CPU affinity).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = choose_cpu(choice, os.sched_getaffinity(0), current_cpu())
    if cpu is None:
        return None
    # sched_setaffinity sets one thread's CPUs; new threads inherit their
    # creator's, so the threads already running are pinned one by one.
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except ProcessLookupError:  # a thread that has just ended
            continue
    log.info("pinned to CPU %d (PIN_CPU=%s)", cpu, choice)
    return cpu
