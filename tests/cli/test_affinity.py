"""PIN_CPU: `closeout bot` and `closeout run` keep their threads on one CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cli.affinity import choose_cpu, current_cpu
from settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
linux_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's"
)


def test_auto_takes_the_cpu_the_process_runs_on() -> None:
    assert choose_cpu("auto", {0, 1, 2, 3}, 2) == 2


def test_auto_leaves_a_process_that_may_use_one_cpu_alone() -> None:
    assert choose_cpu("auto", {3}, 3) is None


def test_auto_leaves_the_process_alone_when_its_cpu_is_unknown() -> None:
    assert choose_cpu("auto", {0, 1}, None) is None


def test_off_pins_nothing() -> None:
    assert choose_cpu("off", {0, 1}, 1) is None


def test_a_cpu_number_is_taken_whatever_the_process_runs_on() -> None:
    assert choose_cpu("1", {0, 1}, 0) == 1


def test_a_cpu_the_process_may_not_use_is_refused_with_the_ones_it_may() -> None:
    with pytest.raises(ValueError, match=r"CPU 7 is not one this process may use \(0, 1\)"):
        choose_cpu("7", {0, 1}, 0)


@pytest.mark.parametrize("value", ["fast", "-1", "1.5"])
def test_pin_cpu_other_than_auto_off_or_a_number_is_a_bad_setting(value: str) -> None:
    with pytest.raises(SettingsError, match="bad setting PIN_CPU: must be auto, off or a CPU"):
        load_settings(PIN_CPU=value)


def test_pin_cpu_is_read_without_case_or_spaces() -> None:
    assert load_settings(PIN_CPU=" OFF ").PIN_CPU == "off"


@linux_affinity
def test_the_current_cpu_is_one_the_process_may_use() -> None:
    assert current_cpu() in os.sched_getaffinity(0)


def _python(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@linux_affinity
def test_pinning_moves_the_threads_already_running_and_those_started_later() -> None:
    cpu = max(os.sched_getaffinity(0))
    done = _python(
        "-c",
        textwrap.dedent(
            f"""
        import os, threading
        from cli.affinity import pin_process

        def cpus_of_a_thread(started, results):
            started.set()
            go.wait()
            results.append(os.sched_getaffinity(0))

        go, early, later = threading.Event(), [], []
        started = threading.Event()
        before = threading.Thread(target=cpus_of_a_thread, args=(started, early))
        before.start()
        started.wait()
        print(pin_process("{cpu}"))
        after = threading.Thread(target=cpus_of_a_thread, args=(threading.Event(), later))
        after.start()
        go.set()
        before.join(); after.join()
        print(sorted(os.sched_getaffinity(0)), sorted(early[0]), sorted(later[0]))
        """
        ),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [str(cpu), f"[{cpu}] [{cpu}] [{cpu}]"]


@linux_affinity
def test_closeout_bot_with_a_cpu_it_may_not_use_stops_with_one_line() -> None:
    done = _python(
        "-m",
        "cli",
        "bot",
        PIN_CPU=str(max(os.sched_getaffinity(0)) + 1),
        BOT_TOKEN="123:abc",
        DATABASE_URL="sqlite://",
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("closeout: bad setting PIN_CPU: CPU "), (
        done.stderr
    )
