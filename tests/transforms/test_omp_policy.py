"""OpenMP threads wait passively unless the user says otherwise (see _declare.py)."""

from __future__ import annotations

import os
import subprocess
import sys


def _policy(env: dict[str, str]) -> str:
    code = (
        "import os, clisonix_cli.transforms._declare\n"
        "print(os.environ['OMP_WAIT_POLICY'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_passive_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"


def test_user_setting_wins() -> None:
    assert _policy({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
