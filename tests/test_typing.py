"""Our code is mypy clean (STYLE §7), so CI keeps it so.

mypy reads its settings and the packages it checks from pyproject.toml's
[tool.mypy]: strict, over bot, tasks, models, cli, sandbox and settings.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_our_packages_are_mypy_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
