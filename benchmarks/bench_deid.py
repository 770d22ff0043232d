"""Benchmark: ``clisonix deid --jobs 1`` against dicognito and pydicom's ``deid`` (issue #10).

A script, not a test (see benchmarks/README.md). Whole processes, the same files, warm page
cache, every command repeated and the three programs interleaved (the order rotates each
repeat); medians and the spread (min-max) are printed:

- files/s of ``clisonix deid IN OUT --key-file K --jobs 1``, of
  ``python -m dicognito -o OUT IN`` and of ``deid --outfolder OUT identifiers --action all
  --input IN`` (pydicom/deid's default recipe), each on the same subset of N files;
- peak memory of each process tree (RSS polled every 20 ms, as in bench_conversion.py),
  for several N: flat memory means the peak does not grow with the number of files.

Make the export once (a flat folder of CT slices, as many PACS exports are), then time::

    .venv/bin/python benchmarks/bench_deid.py make /dev/shm/deid_bench --n 10000
    .venv/bin/python benchmarks/bench_deid.py time /dev/shm/deid_bench \\
        --sizes 1000,10000 --peer-sizes 1000,10000 --deid-sizes 1000 --repeats 3 \\
        --json /dev/shm/deid.json

The peers are installed with pip when missing (``pip install dicognito deid``). They are
slow, so ``--peer-sizes`` (dicognito) and ``--deid-sizes`` limit the subsets they run on;
``deid`` gathers every file's identifiers before it writes, so its memory grows with N
(1.1 GiB at 3,000 files). Besides wall time, the CPU time of each process tree is compared:
on a shared machine it varies less than wall time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_conversion import VENV_BIN, Series, _load, measure  # type: ignore[import-not-found]

PYTHON = str(VENV_BIN / "python")


def make(args: argparse.Namespace) -> None:
    """Write ``--n`` CT slices with ``clisonix synth``, then flatten them into export/."""
    root = Path(args.root)
    export = root / "export"
    if export.is_dir() and len(list(export.iterdir())) == args.n:
        print(f"{export} already holds {args.n} files")
        return
    shutil.rmtree(root, ignore_errors=True)
    series, slices = 4, 250
    patients = max(1, args.n // (series * slices))
    synth = root / "synth"
    subprocess.run(
        [str(VENV_BIN / "clisonix"), "synth", str(synth), "--patients", str(patients),
         "--series", str(series), "--slices", str(slices), "--rows", str(args.rows),
         "--cols", str(args.rows), "--jobs", "2"],
        check=True,
    )  # fmt: skip
    export.mkdir(parents=True)
    for p in sorted(synth.rglob("*.dcm")):
        p.rename(export / "_".join(p.relative_to(synth).parts))
    shutil.rmtree(synth)
    key = root / "bench.key"
    key.write_text("0123456789abcdef" * 4 + "\n")
    key.chmod(0o600)
    print(f"wrote {len(list(export.iterdir()))} files to {export}")


def _subset(root: Path, n: int) -> Path:
    """A folder of symbolic links to the first ``n`` files of the export."""
    sub = root / f"first-{n}"
    if sub.is_dir() and len(list(sub.iterdir())) == n:
        return sub
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir()
    for p in sorted((root / "export").iterdir())[:n]:
        (sub / p.name).symlink_to(p)
    return sub


def _ensure_peers() -> None:
    missing = [m for m in ("dicognito", "deid") if importlib.util.find_spec(m) is None]
    if missing:
        subprocess.run(
            [PYTHON, "-m", "pip", "install", "--quiet", *missing], check=True
        )


def _commands(tool: str, src: Path, out: Path, key: Path) -> list[str]:
    if tool == "clisonix":
        return [str(VENV_BIN / "clisonix"), "deid", str(src), str(out),
                "--key-file", str(key), "--jobs", "1"]  # fmt: skip
    if tool == "dicognito":
        return [PYTHON, "-m", "dicognito", "-o", str(out), "--quiet", str(src)]
    return [str(VENV_BIN / "deid"), "--quiet", "--outfolder", str(out), "identifiers",
            "--action", "all", "--input", str(src)]  # fmt: skip


def time_all(args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved whole-process runs; one JSON-ready document."""
    root = Path(args.root)
    key = root / "bench.key"
    _ensure_peers()
    sizes = [int(s) for s in args.sizes.split(",")]
    peer_sizes = {int(s) for s in args.peer_sizes.split(",") if s}
    deid_sizes = {int(s) for s in args.deid_sizes.split(",") if s}
    print(f"load average before: {_load()}")
    results: dict[str, dict[int, Series]] = {}
    for n in sizes:
        src = _subset(root, n)
        tools = ["clisonix"] + (["dicognito"] if n in peer_sizes else [])
        tools += ["deid"] if n in deid_sizes else []
        for k in range(args.repeats):
            order = tools[k % len(tools) :] + tools[: k % len(tools)]
            for tool in order:
                out = root / f"out-{tool}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                sample = measure(_commands(tool, src, out, key))
                written = sum(
                    1 for p in out.rglob("*") if p.is_file() and p.suffix == ".dcm"
                )
                if written != n:
                    print(f"  ! {tool} wrote {written} of {n} files", file=sys.stderr)
                results.setdefault(tool, {}).setdefault(n, Series(f"{tool} n={n}"))
                results[tool][n].samples.append(sample)
                shutil.rmtree(out, ignore_errors=True)
                print(f"  {tool:9s} n={n:<6d} {sample.wall_s:8.2f} s "
                      f"{n / sample.wall_s:8.1f} files/s peak {sample.peak_mib:7.1f} MiB")  # fmt: skip
    print(f"load average after: {_load()}")
    doc: dict[str, Any] = {"sizes": sizes, "repeats": args.repeats, "tools": {}}
    for tool, by_n in results.items():
        doc["tools"][tool] = {}
        for n, series in by_n.items():
            rates = [n / s.wall_s for s in series.samples]
            doc["tools"][tool][str(n)] = {
                **series.doc(),
                "median_files_per_s": round(statistics.median(rates), 1),
                "files_per_s_min_max": [round(min(rates), 1), round(max(rates), 1)],
            }
    print("\nfiles/s (median, min-max) and peak MiB (median):")
    for tool, by_n in doc["tools"].items():
        for n, row in by_n.items():
            lo, hi = row["files_per_s_min_max"]
            print(f"  {tool:9s} n={n:>6s} {row['median_files_per_s']:8.1f} ({lo}-{hi})"
                  f"  {row['median_peak_mib']:7.1f} MiB")  # fmt: skip
    for n in sizes:
        ours = doc["tools"]["clisonix"][str(n)]
        for peer in ("dicognito", "deid"):
            theirs = doc["tools"].get(peer, {}).get(str(n))
            if theirs is None:
                continue
            wall = ours["median_files_per_s"] / theirs["median_files_per_s"]
            cpu = theirs["median_cpu_s"] / ours["median_cpu_s"]
            print(
                f"  n={n}: clisonix / {peer} = {wall:.1f}x files/s (wall), {cpu:.1f}x (CPU)"
            )
    return doc


def main(argv: list[str] | None = None) -> None:
    """Command line: ``make`` or ``time``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the CT export")
    mk.add_argument("root")
    mk.add_argument("--n", type=int, default=10000)
    mk.add_argument("--rows", type=int, default=256, help="rows = columns per slice")
    tm = sub.add_parser("time", help="time the three programs")
    tm.add_argument("root")
    tm.add_argument("--sizes", default="1000,10000")
    tm.add_argument("--peer-sizes", default="1000", help="sizes dicognito runs on")
    tm.add_argument("--deid-sizes", default="1000", help="sizes pydicom deid runs on")
    tm.add_argument("--repeats", type=int, default=3)
    tm.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.cmd == "make":
        make(args)
        return
    doc = time_all(args)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
