"""The CLI shell: --help and --version are fast because heavy rooms load lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
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


# --- every error is one CLX-E line, never a Click usage block or a traceback -------------


def _one_line(stderr: str, code: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{code}: "), stderr
    return lines[0]


def test_command_line_errors_are_one_clx_line_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (
        ["transform", str(tmp_path), str(tmp_path / "o"), "--jobs", "abc"],
        ["transform", str(tmp_path), str(tmp_path / "o"), "--no-such-option"],
        ["transform", str(tmp_path)],
        ["no-such-command"],
        ["synth", str(tmp_path / "s"), "--modality", "PET"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == ""
        line = _one_line(result.stderr, "CLX-E001")
        assert "--help" in line and "Usage:" not in result.stderr
    missing = runner.invoke(app, ["transform", str(tmp_path)])
    assert "'OUT_DIR'" in missing.stderr  # arguments named as the help shows them


def test_unexpected_exception_is_one_line_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clisonix_cli.taskarray import verify

    def boom(out_dir: Path) -> None:
        raise RuntimeError("disk\nexploded")

    monkeypatch.setattr(verify, "verify", boom)
    monkeypatch.delenv("CLISONIX_DEBUG", raising=False)
    result = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 1
    line = _one_line(result.stderr, "CLX-E000")
    assert "RuntimeError: disk exploded" in line and "CLISONIX_DEBUG=1" in line
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(
        app, ["verify", str(tmp_path)], env={"CLISONIX_DEBUG": "1"}
    )
    assert isinstance(debug.exception, RuntimeError)  # the traceback, for a bug report
