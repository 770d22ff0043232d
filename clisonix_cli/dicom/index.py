"""The header index: find DICOM files by content and group them into stacks.

:func:`read_header` reads the few tags clisonix needs from one file, with the fast reader
(:mod:`~clisonix_cli.dicom.header_fast`) when the encoding allows it, else with pydicom
(:mod:`~clisonix_cli.dicom.header_pydicom`), and classifies what it cannot use.

Each file is parsed once: :func:`scan` turns the headers into
:class:`~clisonix_cli.dicom.model.Stack` records that carry everything conversion needs.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from clisonix_cli.dicom.colour import colour_problem
from clisonix_cli.dicom.discover import discover, normalize_files
from clisonix_cli.dicom.grouping import build_stacks
from clisonix_cli.dicom.header import Fallback, FileHeader, HeaderFailure, NotDicom
from clisonix_cli.dicom.header_fast import HEAD_BYTES, fast_header, looks_like_dataset
from clisonix_cli.dicom.header_pydicom import pydicom_header
from clisonix_cli.dicom.model import ScanResult, Skipped
from clisonix_cli.dicom.syntax import decoder_for, syntax_name
from clisonix_cli.errors import (
    InputError,
    NoPixelDataError,
    NotRegularFileError,
    UnsupportedImageError,
)
from clisonix_cli.fsio import open_regular

__all__ = ["read_header", "scan"]


def read_header(
    path: Path, rel: str, *, fast: bool = True
) -> FileHeader | HeaderFailure:
    """Read the header of one file, by content, and classify it.

    Parameters
    ----------
    path : Path
        The file to read.
    rel : str
        Its name relative to the scan root (used in records and messages).
    fast : bool, optional
        Use the fast reader when the encoding allows it (default); False always uses pydicom
        (for tests that compare both).

    Returns
    -------
    FileHeader or HeaderFailure
        The header, or why the file is not usable: ``is_dicom=False`` for files that are not
        DICOM (text, PDF, NIfTI...), else a CLX-E code and a one-line reason.
    """
    try:
        fh = open_regular(path)  # a FIFO or device is never opened (it could block)
    except NotRegularFileError:
        return HeaderFailure(
            rel,
            True,
            NotRegularFileError.code,
            "not a regular file (FIFO, socket or device): never opened",
        )
    except OSError as exc:
        return HeaderFailure(
            rel, True, InputError.code, f"cannot be opened ({exc.strerror})"
        )
    has_preamble = False
    with fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return HeaderFailure(rel, True, InputError.code, "empty file (0 bytes)")
            head = fh.read(HEAD_BYTES)
            has_preamble = len(head) >= 132 and head[128:132] == b"DICM"
            if not has_preamble and looks_like_dataset(head) is None:
                return HeaderFailure(rel, False)
            if fast:
                try:
                    return fast_header(fh, head, size, rel)
                except Fallback:
                    pass
            return pydicom_header(path, rel, size, has_preamble)
        except NotDicom as exc:
            if has_preamble:
                return HeaderFailure(
                    rel,
                    True,
                    InputError.code,
                    f"DICM marker present but the header cannot be parsed ({exc}) - the file "
                    "is corrupt",
                )
            return HeaderFailure(rel, False)
        except InputError as exc:
            return HeaderFailure(rel, True, exc.code, exc.message)
        except (
            struct.error,
            UnicodeDecodeError,
            ValueError,
            OverflowError,
            MemoryError,
        ) as exc:
            return HeaderFailure(
                rel,
                True,
                InputError.code,
                f"the header cannot be parsed ({type(exc).__name__}) - the file is corrupt",
            )
        except OSError as exc:
            return HeaderFailure(
                rel, True, InputError.code, f"read error ({exc.strerror})"
            )
        except Exception as exc:  # noqa: BLE001 - hostile bytes never stop the scan
            return HeaderFailure(
                rel,
                True,
                InputError.code,
                f"the header cannot be parsed ({type(exc).__name__}) - the file is corrupt",
            )


def _skip_for_layout(h: FileHeader) -> Skipped | None:
    """Skip files that hold no image clisonix can convert (no pixels, a layout that
    contradicts itself)."""
    if not h.has_pixels:
        sop = h.get("SOPClassUID") or "?"
        kind = syntax_name(sop) if sop != "?" else "unknown SOP class"
        return Skipped(
            h.path,
            NoPixelDataError.code,
            f"no pixel data ({kind}, Modality {h.get('Modality') or '?'}): not an image, "
            "skipped",
        )
    info = h.pixel
    problem = colour_problem(info)
    if problem is not None:
        return Skipped(h.path, problem[0], problem[1])
    if info.rows <= 0 or info.cols <= 0 or info.bits_allocated <= 0:
        return Skipped(
            h.path,
            UnsupportedImageError.code,
            f"the image matrix is {info.rows}x{info.cols} with {info.bits_allocated} bits "
            "allocated - (0028,0010)/(0028,0011)/(0028,0100) are missing or zero",
        )
    return None


def scan(
    root: Path,
    *,
    files: Sequence[Path] | None = None,
    progress: Callable[[int, int], None] | None = None,
    gaps: str = "split",
    follow_symlinks: bool = False,
    follow_outside: bool = False,
) -> ScanResult:
    """Find the DICOM files under ``root`` by content and group them into stacks.

    Parameters
    ----------
    root : Path
        The input folder; every name in the result is relative to it.
    files : sequence of Path, optional
        Scan only these files (absolute, or relative to ``root``) instead of walking ``root``.
    progress : callable, optional
        Called as ``progress(done, total)`` while headers are read.
    gaps : str, optional
        What a stack with missing slices becomes: ``split`` into its contiguous runs
        (default), ``fail``, or ``keep`` as one volume (see ``build_stacks``).
    follow_symlinks, follow_outside : bool
        Follow links to folders that stay inside ``root``, and those that leave it (see
        :func:`~clisonix_cli.dicom.discover.discover`).

    Returns
    -------
    ScanResult
        Stacks in a stable order (study, series number, series UID, stack key), skipped files
        with codes, counts, and the transfer syntaxes present with their decoders.

    Raises
    ------
    InputUnreadableError
        ``root`` is not a readable folder.
    """
    headers: list[FileHeader] = []
    skipped: list[Skipped] = []
    if files is None:
        found = discover(
            root,
            follow_symlinks=follow_symlinks or follow_outside,
            outside=follow_outside,
        )
        names = found.files
        skipped.extend(found.skipped)  # folders not listed, links not followed
    else:
        names = normalize_files(list(files), root)
    non_dicom: list[str] = []
    n_unreadable = 0
    total = len(names)
    for i, rel in enumerate(names):
        got = read_header(root / rel, rel)
        if isinstance(got, HeaderFailure):
            if not got.is_dicom:
                non_dicom.append(rel)
            else:
                skipped.append(Skipped(rel, got.code, got.reason))
                if got.reason.startswith(
                    ("cannot be opened", "empty file", "read error", "not a regular")
                ):
                    n_unreadable += 1
        else:
            skip = _skip_for_layout(got)
            if skip is not None:
                skipped.append(skip)
            else:
                headers.append(got)
        if progress is not None and (i + 1 == total or (i + 1) % 64 == 0):
            progress(i + 1, total)
    stacks, more_skipped = build_stacks(headers, gaps=gaps)
    skipped.extend(more_skipped)
    skipped.sort(key=lambda s: (s.path, s.code))
    n_dicom = total - len(non_dicom) - n_unreadable
    return ScanResult(
        root=str(root),
        stacks=stacks,
        skipped=skipped,
        n_files=total,
        n_dicom=n_dicom,
        n_non_dicom=len(non_dicom),
        transfer_syntaxes=_preflight(headers),
        non_dicom=non_dicom,
        n_unreadable=n_unreadable,
    )


def _preflight(headers: Sequence[FileHeader]) -> dict[str, dict[str, Any]]:
    """Transfer syntaxes present among image files, with file counts and their decoder."""
    counts = Counter(h.pixel.transfer_syntax for h in headers)
    out: dict[str, dict[str, Any]] = {}
    for uid in sorted(counts):
        decoder = decoder_for(uid)
        out[uid] = {
            "name": syntax_name(uid),
            "files": counts[uid],
            "decoder": decoder,
            "supported": decoder is not None,
        }
    return out
