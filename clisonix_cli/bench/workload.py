"""What ``clisonix bench`` runs on: its synthetic CT workload or the user's DICOM folder.

Without ``--data`` the workload is synthesized into a temporary folder (removed at the end):
CT series of 512x512 int16 slices written by :func:`clisonix_cli.dicom.synth.synthesize`.
Synthesis time is never part of any figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``--size`` presets: slices of the per-op volume (each slice 512x512).
SIZE_PRESETS: dict[str, int] = {"small": 16, "medium": 64, "large": 256}
DEFAULT_SIZE = "medium"
QUICK_SLICES = 4
ROWS = COLS = 512


def parse_size(text: str | None, *, quick: bool) -> tuple[int, str]:
    """``--size`` -> (slices of the per-op volume, label).

    Parameters
    ----------
    text : str or None
        A preset (``small``, ``medium``, ``large``) or a number of slices >= 1; None means
        the default (``medium``, or 4 slices with ``--quick``).
    quick : bool
        Whether ``--quick`` is on.

    Raises
    ------
    UsageError
        An unknown preset or a count < 1.
    """
    from clisonix_cli.errors import UsageError

    if text is None:
        return (
            (QUICK_SLICES, "quick")
            if quick
            else (SIZE_PRESETS[DEFAULT_SIZE], DEFAULT_SIZE)
        )
    key = text.strip().lower()
    if key in SIZE_PRESETS:
        return SIZE_PRESETS[key], key
    if key.isdigit() and int(key) >= 1:
        return int(key), "custom"
    presets = ", ".join(f"{k} ({v})" for k, v in SIZE_PRESETS.items())
    raise UsageError(
        f"--size '{text}' is neither a number of slices >= 1 nor a preset: {presets}"
    )


@dataclass(frozen=True)
class E2EShape:
    """Shape of the synthetic end-to-end workload."""

    patients: int
    series_per_patient: int
    slices: int

    @property
    def n_series(self) -> int:
        """Number of series (tasks) in the workload."""
        return self.patients * self.series_per_patient


def e2e_shape(*, quick: bool, cores: int) -> E2EShape:
    """Enough series to keep every core busy twice over (at least 4), 32 slices each.

    ``--quick`` uses 4 series of 8 slices whatever the core count.
    """
    if quick:
        return E2EShape(patients=2, series_per_patient=2, slices=8)
    n = max(4, 2 * cores)
    return E2EShape(patients=(n + 1) // 2, series_per_patient=2, slices=32)


def synthesize_ct(
    out_dir: Path, *, patients: int, series: int, slices: int, syntax: str = "explicit"
) -> list[Path]:
    """Synthesize CT series of 512x512 slices under ``out_dir`` (seed 0, deterministic)."""
    from clisonix_cli.dicom.synth import synthesize

    return synthesize(
        out_dir,
        seed=0,
        patients=patients,
        studies=1,
        series=series,
        slices=slices,
        rows=ROWS,
        cols=COLS,
        modality="CT",
        syntax=syntax,
    )


def largest_stack(result: Any) -> Any:
    """The stack with the most slices (first in scan order on ties), or None."""
    best = None
    for stack in result.stacks:
        if (
            best is None
            or stack.n_slices * stack.n_volumes > best.n_slices * best.n_volumes
        ):
            best = stack
    return best
