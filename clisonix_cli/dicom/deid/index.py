"""Find every DICOM object under IN_DIR and the few values that place it (for ``deid``).

Unlike the image index (:mod:`clisonix_cli.dicom.index`) nothing is set aside for having no
pixels: structured reports, RT structure sets, key object selections and presentation
states are de-identified too. Each file is read up to the end of group 0020 only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clisonix_cli.dicom.deid.instance import identity_of
from clisonix_cli.dicom.deid.rawio import read_object
from clisonix_cli.dicom.header_fast import looks_like_dataset
from clisonix_cli.dicom.model import Skipped
from clisonix_cli.errors import ClisonixError, InputError
from clisonix_cli.regular import open_regular

#: Read each file up to the end of group 0020 (UIDs, PatientID, Modality).
STOP_AFTER = 0x0020FFFF


@dataclass(frozen=True, slots=True)
class Entry:
    """One DICOM object: its relative path and the values that place it."""

    rel: str
    study: str
    series: str
    sop_instance: str
    sop_class: str
    patient_id: str
    modality: str
    size: int


@dataclass
class DeidIndex:
    """What :func:`index_files` found."""

    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    n_files: int = 0
    n_non_dicom: int = 0


def _is_dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return looks_like_dataset(head) is not None


def index_file(root: Path, rel: str) -> Entry | Skipped | None:
    """Read one file: an :class:`Entry`, a :class:`Skipped` (damaged DICOM) or None (not
    DICOM)."""
    path = root / rel
    try:
        with open_regular(path) as fh:  # a FIFO is never opened (it could block)
            size = fh.seek(0, 2)
            fh.seek(0)
            if not _is_dicom(fh.read(132)):
                return None
            fh.seek(0)
            obj = read_object(fh, size, stop_after=STOP_AFTER)
    except OSError as exc:
        return Skipped(rel, InputError.code, f"cannot be read ({exc.strerror or exc})")
    except ClisonixError as exc:
        return Skipped(rel, exc.code, exc.message)
    except (
        ValueError,
        UnicodeDecodeError,
    ) as exc:  # defensive: a parser gap, not a crash
        return Skipped(rel, InputError.code, f"cannot be parsed ({exc})")
    ident = identity_of(obj)
    return Entry(  # values shared by a series are interned: one copy per series
        rel=rel,
        study=sys.intern(ident.study),
        series=sys.intern(ident.series),
        sop_instance=ident.sop_instance,
        sop_class=sys.intern(ident.sop_class),
        patient_id=sys.intern(ident.patient_id),
        modality=sys.intern(ident.modality),
        size=size,
    )


def index_files(root: Path, files: Sequence[str]) -> DeidIndex:
    """Index ``files`` (relative to ``root``, sorted) one by one, in order."""
    out = DeidIndex(n_files=len(files))
    for rel in files:
        found = index_file(root, rel)
        if found is None:
            out.n_non_dicom += 1
        elif isinstance(found, Skipped):
            out.skipped.append(found)
        else:
            out.entries.append(found)
    return out
