"""`paraaf` as an operator types it, in a shell whose environment is the test's (tests/conftest.py's ``shell``)."""

import subprocess
import sys
from pathlib import Path

__all__ = ["paraaf"]

ROOT = Path(__file__).resolve().parents[2]


def paraaf(shell: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services", *args], env=shell, capture_output=True, text=True, cwd=ROOT)
