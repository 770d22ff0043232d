"""The standard CT pipeline written with SimpleITK: the peer of ``bench_speed.py``'s rows
``pipe1`` and ``pipe8`` (issue #13).

For every series folder under IN_DIR: read the DICOM series (GDCM, Hounsfield units from
the rescale tags), window 40/400 onto [0, 1], resample to 1.5 mm isotropic with linear
interpolation on clisonix's grid (same origin and direction, the first and last voxel
centres kept), z-score over the whole volume, write
``OUT_DIR/<n>.nii``. The same steps as::

    clisonix transform IN_DIR OUT_DIR --format nifti --op rescale \\
        --op window:center=40,width=400 --op resample:spacing=1.5 --op normalize

On one series of 200 CT slices the two outputs have the same grid and affine and agree to
0.022 (z-score units) everywhere but the last plane of the slice axis, which lies a fraction
of a voxel beyond the input: SimpleITK samples 0 there, clisonix repeats the edge.

SimpleITK uses every core it is given (its default thread count). Run as a child process so
that its import is timed like clisonix's::

    .venv/bin/python benchmarks/sitk_ct_pipeline.py IN_DIR OUT_DIR
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

SPACING_MM = 1.5
CENTER, WIDTH = 40.0, 400.0


def run_series(sitk, folder: Path, out: Path) -> None:  # type: ignore[no-untyped-def]
    """Read one series folder, run the pipeline, write ``out``."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    hu = sitk.Cast(reader.Execute(), sitk.sitkFloat32)
    lo, hi = CENTER - WIDTH / 2, CENTER + WIDTH / 2
    win = sitk.IntensityWindowing(hu, lo, hi, 0.0, 1.0)
    size, spacing = win.GetSize(), win.GetSpacing()
    # clisonix's grid: the first and last voxel centres kept, n' = floor((n-1) d/d' + .5) + 1
    new_size = [
        math.floor((n - 1) * s / SPACING_MM + 0.5) + 1
        for n, s in zip(size, spacing, strict=True)
    ]
    res = sitk.Resample(
        win, new_size, sitk.Transform(), sitk.sitkLinear, win.GetOrigin(),
        [SPACING_MM] * 3, win.GetDirection(), 0.0, sitk.sitkFloat32,
    )  # fmt: skip
    sitk.WriteImage(sitk.Normalize(res), str(out))


def main(argv: list[str]) -> None:
    """``sitk_ct_pipeline.py IN_DIR OUT_DIR``: every series folder, one after the other."""
    import SimpleITK as sitk

    src, dst = Path(argv[0]), Path(argv[1])
    dst.mkdir(parents=True, exist_ok=True)
    folders = sorted({p.parent for p in src.rglob("*.dcm")})
    for n, folder in enumerate(folders):
        run_series(sitk, folder, dst / f"{n:04d}.nii")


if __name__ == "__main__":
    main(sys.argv[1:])
