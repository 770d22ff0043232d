"""The standard CT pipeline written with SimpleITK: the peer of one ``clisonix transform``.

``python -m clisonix_cli.bench.sitk_pipeline IN_DIR OUT_DIR [--threads N]`` reads every
DICOM series under ``IN_DIR`` (GDCM, slices sorted by position, modality rescale applied:
HU), windows it (the DICOM linear window, PS3.3 C.11.2.1.2.1, onto [0, 1]), resamples it
to 1.5 mm (linear; the grid of clisonix's ``resample``: same first voxel, ``floor((n - 1) *
d / t + 0.5) + 1`` voxels per axis, edges repeated), z-scores it and writes one ``.nii``
per series. The same work as::

    clisonix transform IN_DIR OUT_DIR --format nifti \\
        --op rescale --op window:center=40,width=400 \\
        --op resample:spacing=1.5 --op normalize

A test checks that both write the same voxels (tests/bench/test_bench_peers.py). It
imports nothing of clisonix (a peer must not pay for our imports), only SimpleITK.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

#: The pipeline's parameters, shared with the clisonix side of the comparison.
CENTER_HU = 40.0
WIDTH_HU = 400.0
SPACING_MM = 1.5
CLISONIX_OPS = (
    "rescale",
    f"window:center={CENTER_HU:g},width={WIDTH_HU:g}",
    f"resample:spacing={SPACING_MM:g}",
    "normalize",
)


def process(s: Any, files: Sequence[str], out_path: str) -> None:
    """Read one series, run the pipeline, write ``out_path`` (.nii); ``s``: SimpleITK."""
    image = s.ReadImage(list(files), s.sitkFloat32)
    # PS3.3 C.11.2.1.2.1: y = 0 below c - 0.5 - (w - 1) / 2, 1 above c - 0.5 + (w - 1) / 2
    lo = CENTER_HU - 0.5 - (WIDTH_HU - 1.0) / 2.0
    hi = CENTER_HU - 0.5 + (WIDTH_HU - 1.0) / 2.0
    image = s.IntensityWindowing(image, lo, hi, 0.0, 1.0)
    size = [
        math.floor((n - 1) * d / SPACING_MM + 0.5) + 1
        for n, d in zip(image.GetSize(), image.GetSpacing(), strict=True)
    ]
    f = s.ResampleImageFilter()
    f.SetSize(size)
    f.SetOutputSpacing([SPACING_MM] * 3)
    f.SetOutputOrigin(image.GetOrigin())
    f.SetOutputDirection(image.GetDirection())
    f.SetInterpolator(s.sitkLinear)
    f.SetUseNearestNeighborExtrapolator(True)
    image = s.Normalize(f.Execute(image))
    s.WriteImage(image, out_path)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the pipeline over every series under IN_DIR."""
    parser = argparse.ArgumentParser(prog="python -m clisonix_cli.bench.sitk_pipeline")
    parser.add_argument("in_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--threads", type=int, default=0, help="0: every core")
    args = parser.parse_args(argv)
    import SimpleITK

    sitk: Any = SimpleITK  # untyped C++ bindings
    if args.threads > 0:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    n = 0
    for folder, _, names in sorted(os.walk(args.in_dir)):
        if not names:
            continue
        for sid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder):
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, sid)
            process(sitk, files, os.path.join(args.out_dir, f"{sid}.nii"))
            n += 1
    if n == 0:
        sys.exit(f"no DICOM series under {args.in_dir}")


if __name__ == "__main__":
    main()
