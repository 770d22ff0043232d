"""Messages name a stack by a real file, even at the top of IN_DIR or without SeriesNumber."""

from __future__ import annotations

from clisonix_cli.dicom.model import Stack
from clisonix_cli.dicom.volume import stack_label


def _stack(files: tuple[str, ...], number: int | None) -> Stack:
    return Stack(
        study_uid="1.2", series_uid="1.2.3", stack_key="1-bits8", files=files,
        modality="OT", series_number=number, series_description="", rows=2, cols=2,
        n_slices=len(files), n_volumes=1, transfer_syntax="1.2.840.10008.1.2.1",
        bits_allocated=8, est_bytes=8,
    )  # fmt: skip


def test_top_level_file_is_named() -> None:
    assert stack_label(_stack(("MR_small.dcm",), None)) == (
        "MR_small.dcm (series ?, stack 1-bits8)"
    )


def test_counts_the_other_files_once_each() -> None:
    # enhanced objects repeat their path once per frame: count distinct files
    files = ("a/IM1", "a/IM2", "a/IM3", "a/IM3")
    assert stack_label(_stack(files, 4)) == "a/IM1 (+2 more; series 4, stack 1-bits8)"
