"""Open an input only when it is a regular file: a FIFO, socket or device never blocks a run.

A leaf module (it imports only the error types), so that the readers, :mod:`clisonix_cli.fsio`
and :mod:`clisonix_cli.digest` share one policy.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from clisonix_cli.errors import NotRegularFileError

__all__ = ["open_regular"]

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def open_regular(
    path: Path | str, *, raw: bool = False
) -> io.BufferedReader | io.FileIO:
    """Open an input for reading only when it is a regular file (never blocks on a FIFO).

    The path is checked with ``stat`` first, opened with ``O_NONBLOCK`` (a FIFO swapped in
    meanwhile cannot hang the open) and checked again on the open descriptor. ``raw=True``
    gives the unbuffered file (``open(path, "rb", buffering=0)``).

    Raises
    ------
    NotRegularFileError
        It is a FIFO, socket, device or folder.
    OSError
        It cannot be opened (missing, no permission).
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise _not_regular(path)
    fd = os.open(
        path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC | getattr(os, "O_NOCTTY", 0)
    )
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(path)
        os.set_blocking(fd, True)
        fio = io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    fio.name = os.fspath(path)  # readers name the file in messages (pydicom too)
    return fio if raw else io.BufferedReader(fio)


def _not_regular(path: Path | str) -> NotRegularFileError:
    return NotRegularFileError(
        f"{path}: not a regular file (a FIFO, socket, device or folder) - never opened; "
        "list only DICOM files"
    )
