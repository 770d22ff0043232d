"""Benchmark: DX radiographs to 1024x1024 PNG, clisonix against the loop users write.

A script, not a test (see benchmarks/README.md). Both sides are whole processes on the same
files, outputs in /dev/shm, interleaved (the order alternates every repeat):

- clisonix: ``clisonix transform IN OUT --op voi --op resize:rows=1024,cols=1024
  --format png --jobs 1``;
- the peer: one Python process looping over the files with ``pydicom.dcmread`` ->
  ``pixel_array`` -> ``apply_modality_lut`` -> ``apply_voi_lut`` -> MONOCHROME1 inversion ->
  scaled to 0..255 -> ``PIL.Image.resize((1024, 1024), BILINEAR)`` -> ``save(.png)``.

Make the inputs once (3000x2500 16-bit DX, 12 bits stored, a window, half of them
MONOCHROME1), then time::

    .venv/bin/python benchmarks/bench_dx_png.py make /dev/shm/clx_dx --n 200
    .venv/bin/python benchmarks/bench_dx_png.py time /dev/shm/clx_dx --repeats 5

It prints one JSON object: each side's median and IQR of wall seconds, the ratio of the
medians (peer / clisonix, above 1 = clisonix faster) with the range of per-repeat ratios,
and whether clisonix's PNG bytes were identical on every repeat.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"

PEER = r"""
import sys
from pathlib import Path
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from PIL import Image

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for path in sorted(src.glob("*.dcm")):
    ds = pydicom.dcmread(path)
    arr = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    bits = int(ds.BitsStored)
    y = arr.astype(np.float64) / (2**bits - 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        y = 1.0 - y
    img = Image.fromarray(np.rint(y * 255).astype(np.uint8))
    img.resize((1024, 1024), Image.BILINEAR).save(dst / (path.stem + ".png"))
"""


def make(folder: Path, n: int, rows: int, cols: int) -> None:
    """Write ``n`` DX files of ``rows x cols`` (uint16, 12 bits stored) with a window."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:rows, 0:cols]
    base = (2048 + 1500 * np.sin(xx / 300.0) * np.cos(yy / 250.0)).astype(np.float64)
    for k in range(n):
        img = base + rng.normal(0, 40, size=base.shape)
        pixels = np.clip(img, 0, 4095).astype(np.uint16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.Modality = "DX"
        ds.SeriesNumber = 1
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = [0.139, 0.139]
        ds.PatientOrientation = ["L", "F"]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        mono1 = k % 2 == 1
        ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
        ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.WindowCenter, ds.WindowWidth = 2048, 3000
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"dx{k:04d}.dcm", enforce_file_format=True)


def _timed(cmd: list[str]) -> float:
    os.sync()
    start = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _stats(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median_s": statistics.median(values), "iqr_s": q[2] - q[0]}


def time_both(folder: Path, repeats: int) -> dict[str, object]:
    """Interleaved whole-process timings of both sides."""
    out = Path("/dev/shm") / "clx_dx_out"

    def clx(dst: Path) -> list[str]:
        return [
            str(VENV_BIN / "clisonix"), "transform", str(folder), str(dst),
            "--op", "voi", "--op", "resize:rows=1024,cols=1024", "--format", "png",
            "--jobs", "1",
        ]  # fmt: skip

    def peer(dst: Path) -> list[str]:
        return [str(VENV_BIN / "python"), "-c", PEER, str(folder), str(dst)]

    # one untimed run each: numba's on-disk cache and the page cache are warm for both
    for make_cmd in (clx, peer):
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(make_cmd(out), check=True, capture_output=True)
    times: dict[str, list[float]] = {"clisonix": [], "peer": []}
    digests = set()
    for k in range(repeats):
        order = ("clisonix", "peer") if k % 2 == 0 else ("peer", "clisonix")
        for side in order:
            shutil.rmtree(out, ignore_errors=True)
            if side == "clisonix":
                times[side].append(_timed(clx(out)))
                digests.add(_digest(out))
            else:
                times[side].append(_timed(peer(out)))
    shutil.rmtree(out, ignore_errors=True)
    ratios = [p / c for p, c in zip(times["peer"], times["clisonix"], strict=True)]
    return {
        "files": len(list(folder.glob("*.dcm"))),
        "repeats": repeats,
        "load_avg": os.getloadavg(),
        "clisonix": _stats(times["clisonix"]),
        "peer": _stats(times["peer"]),
        "ratio_peer_over_clisonix": statistics.median(times["peer"])
        / statistics.median(times["clisonix"]),
        "ratio_range": [min(ratios), max(ratios)],
        "clisonix_bytes_identical_across_repeats": len(digests) == 1,
        "raw": times,
    }


def main() -> None:
    """Command line: ``make FOLDER`` or ``time FOLDER``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("folder", type=Path)
    mk.add_argument("--n", type=int, default=200)
    mk.add_argument("--rows", type=int, default=3000)
    mk.add_argument("--cols", type=int, default=2500)
    tm = sub.add_parser("time")
    tm.add_argument("folder", type=Path)
    tm.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.cmd == "make":
        make(args.folder, args.n, args.rows, args.cols)
    else:
        json.dump(time_both(args.folder, args.repeats), sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
