"""Benchmark: ``clisonix transform`` (pure conversion) against ``dcm2niix -z n`` (issue #2).

A script, not a test (see benchmarks/README.md). It runs the real command lines as child
processes on a warm page cache and reports, side by side in one run, with each timing
repeated and the two programs interleaved:

- wall time of ``clisonix transform IN OUT --jobs 2 --format nifti`` (uncompressed ``.nii``)
  and of ``dcm2niix -z n -o OUT IN``, their medians and the ratio;
- peak memory of all processes together: a poller sums the resident set size (RSS) of the
  child and every descendant (loky workers included) every 20 ms with psutil. RSS counts
  shared library pages once per process, so the sum overstates the true footprint;
- whether that peak grows with the number of series: the same command on only the first
  ``--few`` series (``--files-from``) against all of them;
- on a JPEG 2000 set, ``--jobs 1`` against ``--jobs 2`` (parallelism across series).

Make the inputs once (outside the repository), then time::

    .venv/bin/python benchmarks/bench_conversion.py make --ct /tmp/p_ct --j2k /tmp/p_j2k
    .venv/bin/python benchmarks/bench_conversion.py time --ct /tmp/p_ct --j2k /tmp/p_j2k \
        --repeats 3 --json /tmp/p_bench.json \
        --variant threads-nofsync:CLISONIX_BACKEND=threads,CLISONIX_FSYNC=0

Each ``--variant NAME:KEY=VALUE,...`` times ``clisonix transform`` once more per repeat with
those environment variables (any ``CLISONIX_*`` option, or ``PYTHONPATH`` pointing at another
copy of the package to compare code versions); every repeat rotates the order of the
commands. The CT set defaults to 8 series x 256 slices of 512x512 (1 GiB), the JPEG 2000 set
to 4 series x 64 slices.

``os.sync()`` runs (untimed) before every timed command so that the dirty pages of the
previous command's output are not written back during the next one. The load average is
printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
POLL_S = 0.020


@dataclass
class Sample:
    """One timed command: wall seconds, peak summed RSS (MiB), CPU seconds, exit status.

    ``cpu_s`` is user + system time of the child and of the descendants it waited for
    (``wait4``): loky workers that outlive their parent are not in it.
    """

    wall_s: float
    peak_mib: float
    rc: int
    polls: int
    cpu_s: float = 0.0


@dataclass
class Series:
    """Repeated samples of one command."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        """Median wall seconds."""
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def peak(self) -> float:
        """Median peak MiB."""
        return statistics.median(s.peak_mib for s in self.samples)

    @property
    def cpu(self) -> float:
        """Median CPU seconds."""
        return statistics.median(s.cpu_s for s in self.samples)

    def doc(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "label": self.label,
            "median_wall_s": round(self.wall, 3),
            "median_peak_mib": round(self.peak, 1),
            "median_cpu_s": round(self.cpu, 3),
            "wall_s": [round(s.wall_s, 3) for s in self.samples],
            "peak_mib": [round(s.peak_mib, 1) for s in self.samples],
            "cpu_s": [round(s.cpu_s, 3) for s in self.samples],
            "rc": [s.rc for s in self.samples],
        }


def _tree_rss(proc: Any) -> int:
    """Summed RSS (bytes) of a psutil process and all its descendants; 0 once gone."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += int(p.memory_info().rss)
        except psutil.Error:
            continue
    return total


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd``; return its wall time, the peak summed RSS of its process tree and its
    CPU time."""
    import psutil

    os.sync()
    peak = 0
    polls = 0
    start = time.perf_counter()
    child = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=None if env is None else {**os.environ, **env},
    )
    proc = psutil.Process(child.pid)
    stderr: list[bytes] = []
    reader = threading.Thread(
        target=lambda: stderr.append(child.stderr.read() if child.stderr else b""),
        daemon=True,
    )
    reader.start()
    while True:
        peak = max(peak, _tree_rss(proc))
        polls += 1
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(POLL_S)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if child.returncode != 0:
        tail = b"".join(stderr).decode(errors="replace").strip().splitlines()[-3:]
        print(f"  ! exit {child.returncode}: {' | '.join(tail)}", file=sys.stderr)
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(wall, peak / 2**20, child.returncode, polls, cpu)


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def clisonix_cmd(
    src: Path, out: Path, jobs: int, files_from: Path | None = None
) -> list[str]:
    """``clisonix transform`` for pure conversion to uncompressed NIfTI."""
    cmd = [
        str(VENV_BIN / "clisonix"),
        "transform",
        str(src),
        str(out),
        "--jobs",
        str(jobs),
        "--format",
        "nifti",
    ]
    if files_from is not None:
        cmd += ["--files-from", str(files_from)]
    return cmd


def dcm2niix_cmd(src: Path, out: Path) -> list[str]:
    """``dcm2niix -z n`` (uncompressed), quiet."""
    return [str(VENV_BIN / "dcm2niix"), "-z", "n", "-v", "0", "-o", str(out), str(src)]


def _series_folders(src: Path) -> list[Path]:
    return sorted({p.parent for p in src.rglob("*.dcm")})


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _run(
    label: str,
    cmd: list[str],
    out: Path,
    into: Series,
    env: dict[str, str] | None = None,
) -> None:
    _fresh(out)
    s = measure(cmd, env)
    into.samples.append(s)
    print(
        f"  {label:<40} {s.wall_s:7.2f} s  peak {s.peak_mib:7.1f} MiB  "
        f"cpu {s.cpu_s:6.2f} s  ({s.polls} polls, rc {s.rc})",
        flush=True,
    )
    shutil.rmtree(out, ignore_errors=True)


def _parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` -> (NAME, environment additions)."""
    name, _, rest = spec.partition(":")
    env = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name, env


def time_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run every comparison; return the JSON document."""
    ct, work = Path(args.ct), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folders = _series_folders(ct)
    n_files = sum(1 for _ in ct.rglob("*.dcm"))
    doc: dict[str, Any] = {
        "ct": str(ct),
        "series": len(folders),
        "files": n_files,
        "cpus": os.cpu_count(),
        "load_before": _load(),
    }
    print(f"load average before: {doc['load_before']}", flush=True)
    print(f"CT: {len(folders)} series, {n_files} files under {ct}", flush=True)
    ours = Series("clisonix transform --jobs 2 --format nifti")
    peer = Series("dcm2niix -z n")
    variants = [_parse_variant(v) for v in args.variant]
    extra = {name: Series(f"clisonix [{name}]") for name, _env in variants}
    for r in range(args.repeats):
        runs: list[tuple[str, list[str], Path, Series, dict[str, str] | None]] = [
            ("clisonix --jobs 2", clisonix_cmd(ct, work / "clx", 2), work / "clx", ours, None),
            ("dcm2niix -z n", dcm2niix_cmd(ct, work / "d2n"), work / "d2n", peer, None),
        ]  # fmt: skip
        runs += [
            (f"clisonix --jobs 2 [{name}]", clisonix_cmd(ct, work / "clx", 2),
             work / "clx", extra[name], env)
            for name, env in variants
        ]  # fmt: skip
        shift = r % len(runs)  # rotate the order from one repeat to the next
        for label, cmd, out, into, env in runs[shift:] + runs[:shift]:
            _run(label, cmd, out, into, env)
    doc["convert"] = {
        "clisonix": ours.doc(),
        "dcm2niix": peer.doc(),
        "wall_ratio_clisonix_over_dcm2niix": round(ours.wall / peer.wall, 3),
        "variants": {
            name: {
                **extra[name].doc(),
                "env": env,
                "wall_ratio_over_dcm2niix": round(extra[name].wall / peer.wall, 3),
            }
            for name, env in variants
        },
    }
    print(
        f"=> median wall clisonix {ours.wall:.2f} s, dcm2niix {peer.wall:.2f} s, ratio "
        f"{ours.wall / peer.wall:.2f}; peak clisonix {ours.peak:.0f} MiB, dcm2niix "
        f"{peer.peak:.0f} MiB; cpu clisonix {ours.cpu:.2f} s, dcm2niix {peer.cpu:.2f} s",
        flush=True,
    )
    for name, _env in variants:
        v = extra[name]
        print(
            f"=> [{name}] median wall {v.wall:.2f} s (ratio to dcm2niix "
            f"{v.wall / peer.wall:.2f}), peak {v.peak:.0f} MiB, cpu {v.cpu:.2f} s",
            flush=True,
        )

    if args.few and len(folders) > args.few:
        few_list = work / "few-series.txt"
        names = sorted(
            p.relative_to(ct).as_posix()
            for folder in folders[: args.few]
            for p in folder.glob("*.dcm")
        )
        few_list.write_text("\n".join(names) + "\n")
        few = Series(f"clisonix, first {args.few} series")
        for _ in range(args.repeats):
            _run(
                few.label,
                clisonix_cmd(ct, work / "few", 2, few_list),
                work / "few",
                few,
            )
        doc["memory_growth"] = {
            "few_series": args.few,
            "few": few.doc(),
            "all_series": len(folders),
            "all_median_peak_mib": round(ours.peak, 1),
            "peak_ratio_all_over_few": round(ours.peak / few.peak, 3),
        }
        print(
            f"=> peak with {args.few} series {few.peak:.0f} MiB, with {len(folders)} "
            f"{ours.peak:.0f} MiB (ratio {ours.peak / few.peak:.2f})",
            flush=True,
        )

    if args.j2k:
        j2k = Path(args.j2k)
        n_series = len(_series_folders(j2k))
        one = Series("clisonix --jobs 1 (j2k)")
        two = Series("clisonix --jobs 2 (j2k)")
        print(f"J2K: {n_series} series under {j2k}", flush=True)
        for r in range(args.repeats):
            pair = [
                (one.label, clisonix_cmd(j2k, work / "j1", 1), work / "j1", one),
                (two.label, clisonix_cmd(j2k, work / "j2", 2), work / "j2", two),
            ]
            for label, cmd, out, into in pair if r % 2 == 0 else pair[::-1]:
                _run(label, cmd, out, into)
        doc["j2k"] = {
            "path": str(j2k),
            "series": n_series,
            "jobs1": one.doc(),
            "jobs2": two.doc(),
            "speedup_jobs2": round(one.wall / two.wall, 3),
        }
        print(
            f"=> j2k --jobs 1 {one.wall:.2f} s, --jobs 2 {two.wall:.2f} s, speed-up "
            f"{one.wall / two.wall:.2f}x",
            flush=True,
        )
    doc["load_after"] = _load()
    print(f"load average after: {doc['load_after']}", flush=True)
    return doc


def make(args: argparse.Namespace) -> None:
    """Write the CT set (and the JPEG 2000 set) with ``clisonix synth``."""
    exe = str(VENV_BIN / "clisonix")
    common = ["--patients", "1", "--rows", "512", "--cols", "512", "--modality", "CT"]
    subprocess.run(
        [exe, "synth", args.ct, "--series", str(args.series), "--slices",
         str(args.slices), *common, "--jobs", "2"],
        check=True,
    )  # fmt: skip
    if args.j2k:
        subprocess.run(
            [exe, "synth", args.j2k, "--series", "4", "--slices", str(args.j2k_slices),
             *common, "--syntax", "j2k", "--jobs", "2"],
            check=True,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Command line: ``make`` the inputs or ``time`` the comparisons."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the synthetic inputs")
    mk.add_argument("--ct", default="/tmp/p_ct")
    mk.add_argument("--series", type=int, default=8)
    mk.add_argument("--slices", type=int, default=256)
    mk.add_argument("--j2k", default="/tmp/p_j2k")
    mk.add_argument("--j2k-slices", type=int, default=64)
    tm = sub.add_parser("time", help="time clisonix against dcm2niix")
    tm.add_argument("--ct", default="/tmp/p_ct")
    tm.add_argument("--j2k", default="/tmp/p_j2k", help="'' to skip the JPEG 2000 part")
    tm.add_argument("--work", default="/tmp/p_bench_out", help="scratch output folder")
    tm.add_argument("--repeats", type=int, default=3)
    tm.add_argument("--few", type=int, default=2, help="series in the memory check")
    tm.add_argument("--json", default=None, help="also write the results here")
    tm.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="also time clisonix with these environment variables (repeatable), e.g. "
        "nofsync:CLISONIX_FSYNC=0 or exp:PYTHONPATH=/tmp/p_exp",
    )
    args = ap.parse_args(argv)
    if args.cmd == "make":
        make(args)
        return
    doc = time_all(args)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
