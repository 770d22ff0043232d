"""Benchmark: ``clisonix`` scan vs a loop of ``pydicom.dcmread(f, stop_before_pixels=True)``.

Not a test (no timed assert). Make a folder, then time both over the same files, warm cache:

    .venv/bin/python benchmarks/bench_scan.py make /tmp/ctbench --n 3000 --source real
    .venv/bin/python benchmarks/bench_scan.py time /tmp/ctbench --repeats 3

``--source real`` copies the 512x512 CT file ``693_UNCR.dcm`` of ../shared/data/pydicom-data
(a real scanner header, 78 elements) with new UIDs and positions; ``--source synth`` uses
``clisonix_cli.dicom.synth.synthesize`` (512x512 CT phantoms).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT.parent / "shared" / "data" / "pydicom-data" / "693_UNCR.dcm"


def make(out: Path, n: int, source: str) -> None:
    """Write ``n`` 512x512 CT files under ``out``."""
    if source == "synth":
        from clisonix_cli.dicom.synth import synthesize

        per_series = 250
        series = max(1, n // per_series)
        synthesize(
            out,
            patients=1,
            studies=1,
            series=series,
            slices=per_series,
            rows=512,
            cols=512,
        )
        return
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(REAL_CT)
    per_series = 250
    for i in range(n):
        s, k = divmod(i, per_series)
        if k == 0:
            series_uid = generate_uid(entropy_srcs=[f"bench-series-{s}"])
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = s + 1
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"bench-{i}"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -1.25 * k]
        folder = out / f"series{s:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"IM{k:05d}", enforce_file_format=True)


def _dcmread_loop(files: list[Path]) -> float:
    import pydicom

    t0 = time.perf_counter()
    for f in files:
        pydicom.dcmread(f, stop_before_pixels=True)
    return time.perf_counter() - t0


def _scan(root: Path) -> tuple[float, int]:
    from clisonix_cli.dicom.index import scan

    t0 = time.perf_counter()
    result = scan(root)
    return time.perf_counter() - t0, len(result.stacks)


def run(root: Path, repeats: int) -> None:
    """Time both, alternating, warm cache; print medians and the ratio."""
    import pydicom  # noqa: F401 - import cost is not part of either timing

    from clisonix_cli.dicom.discover import list_files
    from clisonix_cli.dicom.index import scan

    files = [root / f for f in list_files(root)]
    scan(root)  # warm the page cache and the imports
    _dcmread_loop(files)
    t_scan, t_loop = [], []
    stacks = 0
    for _ in range(repeats):
        dt, stacks = _scan(root)
        t_scan.append(dt)
        t_loop.append(_dcmread_loop(files))
    ms, ml = statistics.median(t_scan), statistics.median(t_loop)
    n = len(files)
    print(f"files: {n}, stacks: {stacks}, repeats: {repeats}")
    print(
        f"clisonix scan (walk + headers + grouping): {ms:.3f} s = {1e3 * ms / n:.3f} ms/file"
    )
    print(
        f"dcmread(stop_before_pixels=True) loop:      {ml:.3f} s = {1e3 * ml / n:.3f} ms/file"
    )
    print(f"ratio (loop / scan): {ml / ms:.2f}x")


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("out", type=Path)
    mk.add_argument("--n", type=int, default=3000)
    mk.add_argument("--source", choices=("real", "synth"), default="real")
    tm = sub.add_parser("time")
    tm.add_argument("root", type=Path)
    tm.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.out, args.n, args.source)
    else:
        run(args.root, args.repeats)


if __name__ == "__main__":
    main()
