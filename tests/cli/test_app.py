"""The CLI shell: --help and --version are fast because heavy rooms load lazily."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from clisonix_cli import __version__
from clisonix_cli.cli.app import app

HEAVY = (
    "numba",
    "pydicom",
    "skimage",
    "scipy",
    "joblib",
    "nibabel",
    "dask",
    "distributed",
)


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"clisonix {__version__}"


def test_help_imports_no_heavy_room() -> None:
    code = (
        "import sys\n"
        "from clisonix_cli.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"`clisonix --help` imported heavy modules: {out}"
