"""The error catalogue: stable, unique codes and exit codes as DESIGN.md defines them."""

from __future__ import annotations

import re

import pytest

from clisonix_cli import errors

#: Codes that once existed must keep their class (codes are documented and never reused).
STABLE = {
    "CLX-E000": "ClisonixError",
    "CLX-E100": "InputError",
    "CLX-E121": "InconsistentStackError",
    "CLX-E122": "DuplicateInstanceError",
    "CLX-E130": "TransformFailedError",
    "CLX-E140": "WriteFailedError",
    "CLX-E150": "WorkerDiedError",
    "CLX-E151": "TaskTimeoutError",
    "CLX-E152": "TaskCancelledError",
    "CLX-E160": "VerifyMismatchError",
}


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
        elif issubclass(cls, errors.TaskError | errors.AbortedError):
            assert cls.exit_code == 1, cls
        else:
            assert cls is errors.ClisonixError, cls
    assert errors.ClisonixError.exit_code == 4  # a bug: its own exit code


def test_task_errors_are_one_family_and_only_reading_is_input() -> None:
    running = (
        errors.WorkerDiedError,
        errors.TaskTimeoutError,
        errors.TaskCancelledError,
        errors.TransformFailedError,
        errors.WriteFailedError,
        errors.VerifyMismatchError,
    )
    for cls in running:
        assert issubclass(cls, errors.TaskError) and not issubclass(
            cls, errors.InputError
        ), cls
    reading = [c for c in errors.all_errors() if issubclass(c, errors.InputError)]
    # 100-129, and the blocks of the object kinds of issue 9 (171-189) and of hostile input
    # (210-229)
    assert all(
        100 <= int(c.code[5:]) < 130
        or 171 <= int(c.code[5:]) < 190
        or 210 <= int(c.code[5:]) < 230
        for c in reading
    ), reading
    assert issubclass(errors.InputError, errors.TaskError)


@pytest.mark.parametrize(("code", "name"), sorted(STABLE.items()))
def test_by_code(code: str, name: str) -> None:
    cls = errors.by_code(code)
    assert cls is not None and cls.__name__ == name and cls.code == code


def test_by_code_unknown_is_none() -> None:
    assert errors.by_code("CLX-E999") is None
    assert errors.by_code("") is None
    assert all(errors.by_code(c.code) is c for c in errors.all_errors())


def test_message_is_one_line() -> None:
    exc = errors.GeometryError("a/b.dcm: spacing\n  missing\t(0028,0030)")
    assert exc.one_line() == "CLX-E120: a/b.dcm: spacing missing (0028,0030)"
    assert "\n" not in exc.one_line()
