"""The CLI shell: --help and --version are fast because heavy rooms load lazily."""

from __future__ import annotations

import os
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
    assert result.exit_code == 4  # a bug: not "some tasks failed" (1)
    line = _one_line(result.stderr, "CLX-E000")
    assert "RuntimeError: disk exploded" in line and "CLISONIX_DEBUG=1" in line
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(
        app, ["verify", str(tmp_path)], env={"CLISONIX_DEBUG": "1"}
    )
    assert isinstance(debug.exception, RuntimeError)  # the traceback, for a bug report


def test_internal_error_exit_code_in_a_real_process(tmp_path: Path) -> None:
    """A forced internal error in ``python -m clisonix_cli`` exits 4 with one CLX-E000 line."""
    code = (
        "import sys\n"
        "from clisonix_cli.taskarray import verify\n"
        "def boom(out_dir):\n"
        "    raise ZeroDivisionError('forced')\n"
        "verify.verify = boom\n"
        "from clisonix_cli.cli.app import main\n"
        "sys.argv = ['clisonix', 'verify', sys.argv[1]]\n"
        "main()\n"
    )
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CLISONIX_DEBUG"},
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith(
        "CLX-E000: unexpected internal error (ZeroDivisionError"
    )
    assert "Traceback" not in proc.stderr


def test_abort_is_not_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clisonix_cli.taskarray import verify

    def input_ended(out_dir: Path) -> None:
        raise EOFError

    monkeypatch.setattr(verify, "verify", input_ended)
    result = CliRunner().invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 1
    line = _one_line(result.stderr, "CLX-E002")
    assert "aborted" in line and "CLX-E000" not in result.stderr
