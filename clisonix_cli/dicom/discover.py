"""Find candidate files under a root folder, or read them from a list, in a stable order.

Nothing here decides what is DICOM: :mod:`clisonix_cli.dicom.index` reads each candidate's
first bytes (the ``DICM`` marker at offset 128, or a dataset that starts without one) and
decides by content, never by file extension.

This is the one input-path policy of ``scan`` and ``transform``: the same walk
(:func:`discover`), the same ``--files-from`` reading (:func:`input_files`), the same rule
for an input without images (:func:`require_images`). Inputs are opened only when they are
regular files (:func:`clisonix_cli.fsio.open_regular`), so a FIFO never hangs a run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clisonix_cli.dicom.model import ScanResult, Skipped
from clisonix_cli.errors import (
    EmptyInputError,
    InputUnreadableError,
    LinkedFolderNote,
    NoPixelDataError,
    NotRegularFileError,
    UnreadableFolderError,
    UsageError,
)

__all__ = [
    "Discovery",
    "check_input_dir",
    "discover",
    "input_files",
    "list_files",
    "read_file_list",
    "relative_name",
    "require_images",
    "scan_exit_code",
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
    base = Path(
        os.path.abspath(root)
    )  # absolute: a relative IN_DIR is not applied twice
    return [base / name for name in read_file_list(files_from, root)]


@dataclass
class Discovery:
    """What a walk of IN_DIR found: candidate files, and what it could not or would not read.

    ``files`` are relative POSIX names, sorted; ``skipped`` holds one entry per folder that
    cannot be listed (CLX-E216, makes the run's exit code 1) and per symbolic link to a
    folder that was not followed (CLX-E217, informational).
    """

    files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def discover(
    root: Path, *, follow_symlinks: bool = False, outside: bool = False
) -> Discovery:
    """Walk IN_DIR: every file below it, and the folders it cannot or does not enter.

    Hidden files and folders are included (a PACS export may use any name). Links to files
    are followed; FIFOs, sockets and devices are listed too (the index sets them aside
    without opening them); dangling links are ignored. Links to folders are not followed
    unless ``follow_symlinks``, and then only when their target lies inside IN_DIR (or
    anywhere with ``outside``) and was not walked already (loop-safe: each real folder is
    walked once; real paths win over link paths). A folder that cannot be listed is
    reported, never skipped silently.

    Parameters
    ----------
    root : Path
        The folder to walk.
    follow_symlinks : bool
        Follow links to folders whose target lies inside ``root``.
    outside : bool
        With ``follow_symlinks``: follow links whose target lies outside ``root`` too.

    Returns
    -------
    Discovery

    Raises
    ------
    InputUnreadableError
        ``root`` is not a folder or cannot be listed.
    """
    check_input_dir(root)
    base = os.path.abspath(root)
    real_base = os.path.realpath(base)
    out = Discovery()
    seen: set[tuple[int, int]] = set()
    links: list[tuple[str, str]] = []  # (relative name, absolute path) of folder links
    _walk(base, "", out, seen, links)
    done_links: set[str] = set()
    while links:  # links found while walking links are followed in turn, sorted
        links.sort()
        rel, full = links.pop(0)
        if rel in done_links:
            continue
        done_links.add(rel)
        target = os.path.realpath(full)
        inside = target == real_base or target.startswith(real_base + os.sep)
        if not follow_symlinks:
            why = (
                "not followed; --follow-symlinks follows links that stay inside IN_DIR"
                if inside
                else "its target lies outside IN_DIR: not followed (see "
                "--follow-symlinks-outside)"
            )
        elif not (inside or outside):
            why = (
                "its target lies outside IN_DIR: not followed without "
                "--follow-symlinks-outside"
            )
        else:
            st = os.stat(full)
            if (st.st_dev, st.st_ino) not in seen:
                _walk(full, rel, out, seen, links)
                continue
            why = "its target was walked already under another name: not followed again"
        out.skipped.append(
            Skipped(rel, LinkedFolderNote.code, f"symbolic link to a folder: {why}")
        )
    out.files.sort()
    out.skipped.sort(key=lambda s: (s.path, s.code))
    return out


def _walk(
    top: str,
    rel_top: str,
    out: Discovery,
    seen: set[tuple[int, int]],
    links: list[tuple[str, str]],
) -> None:
    """Depth-first walk of one real folder tree (no link to a folder entered)."""
    stack = [(top, rel_top)]
    while stack:
        folder, rel_folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.skipped.append(
                Skipped(
                    rel_folder or ".",
                    UnreadableFolderError.code,
                    f"folder cannot be listed ({exc.strerror or exc}): the files in it "
                    "were not looked at - check its permissions",
                )
            )
            continue
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel))
                elif entry.is_symlink():
                    if entry.is_dir(follow_symlinks=True):
                        links.append((rel, entry.path))
                    elif os.path.exists(entry.path):  # dangling links are ignored
                        out.files.append(rel)
                else:
                    out.files.append(rel)  # regular or not: the index decides, unopened
            except OSError:
                out.files.append(rel)  # the index reports why it cannot be read


def list_files(root: Path) -> list[str]:
    """Every file under ``root`` (see :func:`discover`), as sorted relative POSIX paths.

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
    return discover(root).files


def require_images(result: ScanResult, *, allow_empty: bool) -> None:
    """Refuse an IN_DIR that holds no DICOM image at all (exit 2) unless ``allow_empty``.

    Files that are not images by design (structured reports: CLX-E102) and links to folders
    that were not followed (CLX-E217) do not count as images; a damaged image does (its
    failure is reported, exit 1).

    Raises
    ------
    EmptyInputError
        No stack and nothing but non-images was found.
    """
    if allow_empty or result.stacks:
        return
    require_something(
        result.root,
        "image",
        f"{result.n_files} file(s) looked at: {result.n_dicom} DICOM, "
        f"{result.n_non_dicom} not DICOM",
        result.skipped,
        quiet={NoPixelDataError.code},
    )


def require_something(
    root: Path | str,
    what: str,
    looked_at: str,
    skipped: Sequence[Skipped],
    *,
    quiet: Collection[str] = (),
) -> None:
    """Raise EmptyInputError for an input where nothing of ``what`` was found, unless
    something was reported (a damaged file, a folder not listed: exit 1 says it).

    Links to folders that were not followed (CLX-E217) and the ``quiet`` codes count as
    nothing; the message says how many links were not followed and how to follow them.

    Parameters
    ----------
    root : Path or str
        IN_DIR.
    what : str
        ``"image"`` (transform, scan) or ``"object"`` (deid).
    looked_at : str
        What the walk counted, for the message.
    skipped : sequence of Skipped
        What was set aside.
    quiet : collection of str
        Further codes that are not a problem of the input (CLX-E102: a report, not an
        image).
    """
    if any(s.code not in quiet and s.code != LinkedFolderNote.code for s in skipped):
        return
    links = sum(1 for s in skipped if s.code == LinkedFolderNote.code)
    hint = (
        f"; {links} symbolic link(s) to folders were not followed - add "
        "--follow-symlinks to follow those that stay inside IN_DIR"
        if links
        else ""
    )
    raise EmptyInputError(
        f"{root}: no DICOM {what} found ({looked_at}{hint}); check the folder, or pass "
        f"--allow-empty to accept an input without {what}s"
    )


def scan_exit_code(result: ScanResult) -> int:
    """``clisonix scan``'s exit code: 1 when part of IN_DIR could not be read, else 0.

    Folders that cannot be listed, files that cannot be opened or read, and inputs that
    are not regular files make the scan incomplete: a partial export must not look
    complete. Damaged DICOM files are reported but leave the exit code 0 (the scan ran).
    """
    incomplete = {UnreadableFolderError.code, NotRegularFileError.code}
    for s in result.skipped:
        if s.code in incomplete or s.reason.startswith(
            ("cannot be opened", "read error")
        ):
            return 1
    return 0


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
