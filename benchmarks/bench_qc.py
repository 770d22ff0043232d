"""Benchmark: what ``--qc`` adds to ``clisonix transform`` on the same batch (issue #14).

A script, not a test (see benchmarks/README.md). It runs the real command lines as child
processes, interleaved and rotated from one repeat to the next, outputs in a RAM folder
(/dev/shm) so that disk writeback does not decide the result, and prints one line per run
and then, per pair, the median wall time of each side, its spread (min..max) and the
overhead of ``--qc`` (ratio of the medians, and the min..max and median of the per-repeat
ratios: both sides of a repeat run back to back):

- ``conversion``: ``transform IN OUT --jobs 2 --format nifti`` against the same with ``--qc``
  (the pure conversion streams its slices: QC copies its sample as they pass);
- ``pipeline``: the same with ``--op rescale --op window:preset=abdomen --op
  resample:spacing=1.5`` (QC picks its sample from the volume the task holds);
- ``qc alone``: ``clisonix qc IN --jobs 2`` (reads only the sampled slices).

It also prints the median time of the tasks that finished after the first two (from each
run's ``OUT/.clisonix/run-log.jsonl``): the first tasks of a process pay its start-up (for
``--qc`` on a pure conversion: numba's import and first kernel load), the later ones show
what measuring a series costs on its own.

Make the input once, then time::

    .venv/bin/python benchmarks/bench_qc.py make /dev/shm/qc_in
    .venv/bin/python benchmarks/bench_qc.py time /dev/shm/qc_in --repeats 5

The input defaults to 6 CT series (3 patients x 2 series) of 128 slices of 512x512. The
numba caches are warmed (one untimed run of each command) before timing. The load average
is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / ".venv" / "bin" / "clisonix")
OUT = Path("/dev/shm/clisonix-bench-qc")
PIPELINE = ["--op", "rescale", "--op", "window:preset=abdomen", "--op",
            "resample:spacing=1.5"]  # fmt: skip


def commands(src: Path) -> dict[str, list[str]]:
    """Label -> command line (``{out}`` is replaced by a fresh output folder)."""
    base = [CLI, "transform", str(src), "{out}", "--jobs", "2", "--format", "nifti"]
    return {
        "conversion": base,
        "conversion --qc": [*base, "--qc"],
        "pipeline": [*base, *PIPELINE],
        "pipeline --qc": [*base, *PIPELINE, "--qc"],
        "qc alone": [CLI, "qc", str(src), "--out", "{out}", "--jobs", "2"],
    }


def run(cmd: list[str], later: list[float] | None = None) -> float:
    """Wall seconds of one command into a fresh output folder (cleared, synced first).

    ``later`` receives the seconds of each task that finished after the first two (the
    first tasks of a process also pay the start-up of what they use), from the run log.
    """
    out = OUT / "out"
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    line = [c.replace("{out}", str(out)) for c in cmd]
    start = time.perf_counter()
    res = subprocess.run(line, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode not in (0, 1):
        sys.exit(f"{' '.join(line)} failed ({res.returncode}): {res.stderr[-500:]}")
    log = out / ".clisonix" / "run-log.jsonl"
    if later is not None and log.is_file():
        rows = [json.loads(x) for x in log.read_text().splitlines()]
        later += [r["seconds"] for r in rows if r["event"] == "task"][2:]
    return wall


def main() -> None:
    """Parse the command line and make the input or time the commands."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the input with clisonix synth")
    mk.add_argument("dir", type=Path)
    mk.add_argument("--patients", type=int, default=3)
    mk.add_argument("--series", type=int, default=2)
    mk.add_argument("--slices", type=int, default=128)
    tm = sub.add_parser("time", help="time the commands, interleaved")
    tm.add_argument("dir", type=Path)
    tm.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if args.cmd == "make":
        subprocess.run(
            [
                CLI,
                "synth",
                str(args.dir),
                "--patients",
                str(args.patients),
                "--series",
                str(args.series),
                "--slices",
                str(args.slices),
                "--rows",
                "512",
                "--cols",
                "512",
                "--modality",
                "CT",
                "--jobs",
                "2",
            ],  # fmt: skip
            check=True,
        )
        return
    cmds = commands(args.dir)
    print(f"load average before: {os.getloadavg()}", flush=True)
    for cmd in cmds.values():  # warm the numba caches and the page cache
        run(cmd)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    tasks: dict[str, list[float]] = {label: [] for label in cmds}
    labels = list(cmds)
    for rep in range(args.repeats):
        order = labels[rep % len(labels) :] + labels[: rep % len(labels)]
        for label in order:
            wall = run(cmds[label], tasks[label])
            times[label].append(wall)
            print(f"run {rep + 1} {label:16s} {wall:6.2f} s", flush=True)
    print(f"load average after: {os.getloadavg()}")
    for label in labels:
        t = times[label]
        print(f"{label:16s} median {statistics.median(t):6.2f} s  "
              f"(min {min(t):.2f}, max {max(t):.2f}, n {len(t)})")  # fmt: skip
    for plain in ("conversion", "pipeline"):
        a, b = (
            statistics.median(times[plain]),
            statistics.median(times[plain + " --qc"]),
        )
        # both runs of a repeat ran back to back, under the same load
        pairs = [
            q / p - 1 for p, q in zip(times[plain], times[plain + " --qc"], strict=True)
        ]
        print(
            f"=> {plain}: --qc adds {100 * (b / a - 1):+.1f} % ({b:.2f} s vs {a:.2f} s);"
            f" per repeat {100 * min(pairs):+.1f} % .. {100 * max(pairs):+.1f} %"
            f" (median {100 * statistics.median(pairs):+.1f} %)"
        )
        ta, tb = tasks[plain], tasks[plain + " --qc"]
        if ta and tb:
            ma, mb = statistics.median(ta), statistics.median(tb)
            print(
                f"   tasks after the first two: median {mb:.2f} s with --qc, "
                f"{ma:.2f} s without ({100 * (mb / ma - 1):+.1f} %)"
            )
    shutil.rmtree(OUT, ignore_errors=True)


if __name__ == "__main__":
    main()
