"""The ``--format`` table: every writer a task can use, by name.

File formats are declared in :mod:`clisonix_cli.formats`, one module each, and found by
:func:`clisonix_cli.formats.registry.file_writers`. Writers that belong to another room join
them here, in the lowest layer that sees both rooms: the derived DICOM series
(``--format dicom``) is written by :func:`clisonix_cli.dicom.write.write_derived`, and
``formats`` must not import ``dicom`` (the two are independent siblings). Every writer takes
the same :class:`~clisonix_cli.formats.registry.Source`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

from clisonix_cli.errors import DisplayValuesError, UsageError
from clisonix_cli.formats.registry import (
    Source,
    VolumeSource,
    Writer,
    file_writers,
    writer_table,
)

__all__ = ["DICOM", "format_names", "get_writer", "writers"]


def _write_dicom(
    path: Path, src: Source, digests: MutableMapping[Path, str] | None
) -> list[Path]:
    """``write_derived`` of a whole array (this writer does not stream; no digests)."""
    from clisonix_cli.dicom.write import write_derived

    if isinstance(src.data, VolumeSource) or src.provenance is None:
        raise UsageError(
            "the dicom writer takes a whole array and the provenance of its task"
        )
    if src.data.dtype.names is not None:
        raise DisplayValuesError(
            "derived DICOM series are written greyscale; this colour image converts to "
            "--format nifti, nifti-gz, npy or png"
        )
    prov = src.provenance
    return write_derived(
        path, src.data, src.affine_lps, slope=src.slope, intercept=src.intercept,
        meta=src.meta, series_uid=prov.series_uid, stack_key=prov.stack_key,
        pipeline=prov.pipeline, pipeline_sha256=prov.pipeline_sha256, deid=prov.deid,
    )  # fmt: skip


#: A derived DICOM series, one file per slice (a folder, so no suffix).
DICOM = Writer(name="dicom", suffix="", streams=False, write=_write_dicom)


def writers() -> dict[str, Writer]:
    """Every writer by ``--format`` name: the file formats, then ``dicom``."""
    return writer_table([*file_writers().values(), DICOM])


def format_names() -> tuple[str, ...]:
    """The valid ``--format`` values, in :func:`writers` order."""
    return tuple(writers())


def get_writer(fmt: str) -> Writer:
    """The writer of ``--format fmt``; a :class:`UsageError` listing the valid names
    when there is none."""
    table = writers()
    try:
        return table[fmt]
    except KeyError:
        valid = ", ".join(table)
        raise UsageError(
            f"--format {fmt!r}: unknown output format; choose one of {valid}"
        ) from None
