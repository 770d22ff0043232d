"""The error catalogue: stable, unique codes and exit codes as DESIGN.md defines them."""

from __future__ import annotations

import re

from clisonix_cli import errors


def test_codes_unique_and_well_formed() -> None:
    classes = errors.all_errors()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "a CLX-E code is used twice"
    assert all(re.fullmatch(r"CLX-E\d{3}", code) for code in codes)


def test_exit_codes_follow_design() -> None:
    for cls in errors.all_errors():
        if issubclass(cls, errors.UsageError):
            assert cls.exit_code == 2, cls
        elif issubclass(cls, errors.EnvironmentProblem):
            assert cls.exit_code == 3, cls
        else:
            assert cls.exit_code == 1, cls


def test_message_is_one_line() -> None:
    exc = errors.GeometryError("a/b.dcm: spacing\n  missing\t(0028,0030)")
    assert exc.one_line() == "CLX-E120: a/b.dcm: spacing missing (0028,0030)"
    assert "\n" not in exc.one_line()
