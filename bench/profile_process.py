"""Run a `closeout` command under yappi and write its profile when it exits.

    python bench/profile_process.py OUT.pstats bot [--redis-namespace …]

Every thread is profiled (the bot's database work runs in worker threads,
which cProfile would miss), on the CPU clock, so waiting on I/O costs nothing.
Stop the command with SIGINT (Ctrl-C) so it returns and the stats are written;
read them with `python -m pstats OUT.pstats`. Needs `pip install yappi`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import yappi

    from cli import app

    out, arguments = sys.argv[1], sys.argv[2:]
    yappi.set_clock_type("cpu")
    yappi.start()
    try:
        app(arguments, standalone_mode=False)
    finally:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")
        with open(out + ".threads.txt", "w") as handle:
            yappi.get_thread_stats().print_all(out=handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
