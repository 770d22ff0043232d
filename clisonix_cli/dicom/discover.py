"""Find candidate files under a root folder, or read them from a list, in a stable order.

Nothing here decides what is DICOM: :mod:`clisonix_cli.dicom.index` reads each candidate's
first bytes (the ``DICM`` marker at offset 128, or a dataset that starts without one) and
decides by content, never by file extension.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from clisonix_cli.errors import InputUnreadableError, UsageError

__all__ = [
    "check_input_dir",
    "input_files",
    "list_files",
    "read_file_list",
    "relative_name",
]


def relative_name(path: Path, root: Path) -> str:
    """POSIX path of ``path`` relative to ``root`` (``..`` parts when it lies outside).

    Parameters
    ----------
    path : Path
        A file path, absolute or relative to the current directory.
    root : Path
        The scan root.

    Returns
    -------
    str
        The name used in every record and message (never an absolute path when the file lies
        under ``root``).
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return Path(rel).as_posix()


def check_input_dir(root: Path) -> None:
    """Prove IN_DIR a readable folder (``scan``, ``transform`` and the tree walk ask here).

    Parameters
    ----------
    root : Path
        The input folder.

    Raises
    ------
    InputUnreadableError
        It is missing, not a folder, or cannot be listed (exit 3).
    """
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        raise InputUnreadableError(
            f"{root}: not a readable folder - give the folder that holds the DICOM files"
        )


def input_files(root: Path, files_from: str | Path | None) -> list[Path] | None:
    """The files a command reads from IN_DIR: the ``--files-from`` list, or None for all.

    Parameters
    ----------
    root : Path
        IN_DIR, checked with :func:`check_input_dir`.
    files_from : str, Path or None
        The ``--files-from`` list (``-`` for standard input); None walks the whole folder.

    Returns
    -------
    list of Path or None
        The listed files under ``root``, sorted; None when no list is given.

    Raises
    ------
    InputUnreadableError
        IN_DIR or the list cannot be read (exit 3).
    UsageError
        The list names a file outside IN_DIR (exit 2).
    """
    check_input_dir(root)
    if files_from is None:
        return None
    return [root / name for name in read_file_list(files_from, root)]


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root``, recursively, as sorted relative POSIX paths.

    Hidden files and folders are included (a PACS export may use any name); symbolic links to
    files are followed, links to folders are not (no cycles). Sub-folders that cannot be listed
    are ignored; the root itself must be listable.

    Parameters
    ----------
    root : Path
        The folder to walk.

    Returns
    -------
    list of str
        Relative paths, sorted by their text (the same order on every machine).

    Raises
    ------
    InputUnreadableError
        ``root`` is not a folder or cannot be listed.
    """
    check_input_dir(root)
    out: list[str] = []
    base = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, base)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.isfile(full):  # sockets, fifos, dangling links
                continue
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            out.append(Path(rel).as_posix())
    out.sort()
    return out


def read_file_list(source: str | Path, root: Path) -> list[str]:
    """Read a ``--files-from`` list: one path per line, ``-`` for standard input.

    Blank lines and lines starting with ``#`` are ignored. Relative paths are taken relative
    to ``root`` (as rsync's ``--files-from`` does); absolute paths are used as they are.
    Every listed file must lie under ``root`` (``scan`` and ``transform`` alike: a name in
    the manifest or the scan document is always relative to IN_DIR). Duplicates are dropped
    and the result is sorted.

    Parameters
    ----------
    source : str or Path
        The list file, or ``"-"`` for standard input.
    root : Path
        The scan root.

    Returns
    -------
    list of str
        Paths relative to ``root``, sorted.

    Raises
    ------
    InputUnreadableError
        The list cannot be read (exit 3).
    UsageError
        The list names a file outside ``root`` (exit 2).
    """
    lines: Iterable[str]
    if str(source) == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputUnreadableError(
                f"{source}: cannot read the file list ({exc}) - give a UTF-8 text file "
                "with one path per line"
            ) from None
    names = normalize_files(
        [
            Path(line.strip())
            for line in lines
            if line.strip() and not line.startswith("#")
        ],
        root,
    )
    outside = [n for n in names if n == ".." or n.startswith("../")]
    if outside:
        raise UsageError(
            f"--files-from lists {len(outside)} file(s) outside IN_DIR (e.g. "
            f"{outside[0]}); list only files under {root}"
        )
    return names


def normalize_files(files: Sequence[Path], root: Path) -> list[str]:
    """Turn given paths (absolute, or relative to ``root``) into sorted unique relative names.

    Parameters
    ----------
    files : sequence of Path
        The paths.
    root : Path
        The scan root.

    Returns
    -------
    list of str
        Sorted unique POSIX paths relative to ``root``.
    """
    names = {
        relative_name(f if f.is_absolute() else root / f, root) for f in files if str(f)
    }
    return sorted(names)
