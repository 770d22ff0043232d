"""Benchmark: where users wait (issue #13), every row of its table, process against process.

A script, not a test (see benchmarks/README.md). Each row runs real command lines as child
processes, interleaved (the order rotates from one repeat to the next), outputs in a RAM
folder (``--root``, default ``/dev/shm/clx-speed``) so that disk writeback does not swing
the figures. Per command: the median wall time and its min-max, the peak RSS of the process
tree (polled every 20 ms) and the CPU time (user + system, children included). Per row: the
ratio of the medians and the min-max of the per-repeat ratios (the two commands of one
repeat ran next to each other, under the same load). The load average is printed before
and after every row: the machine may be shared.

Rows (``--rows``, default all but ``scale``):

- ``convert8``: 8 CT series x 256 slices of 512x512 to NIfTI, ``--jobs 2``, against
  ``dcm2niix -z n``;
- ``convert8-j1``: the same at ``--jobs 1`` (one core each: dcm2niix is single-threaded);
- ``pipe1``: the standard CT pipeline (rescale -> window 40/400 -> resample 1.5 mm ->
  z-score -> NIfTI) on ONE series of 200 slices, ``--jobs 1``, against the same pipeline as
  a SimpleITK script (``sitk_ct_pipeline.py``, SimpleITK on every core);
- ``pipe8``: the same pipeline on the 8 series, ``--jobs 2``, against the SimpleITK loop;
- ``j2k1``: ONE JPEG 2000 lossless series of 128 slices, ``--jobs 2`` against ``dcm2niix
  -z n``, and ``--jobs 1`` against ``--jobs 2`` (parallel decode inside one series);
- ``gz2``: 2 series x 256 slices to ``.nii.gz``, ``--jobs 2``, against ``dcm2niix -z i``
  (its internal gzip);
- ``firstop``: what the first op costs over plain conversion on one series (``--op
  rescale`` against no op, ``--jobs 1``), with the spread of the per-repeat differences;
- ``scale``: 10,240 files (40 series x 256 slices of 256x256) to NIfTI, ``--jobs 2``,
  against ``dcm2niix -z n``; peak memory with 2 series against 40 (flat in the series count).

Make the inputs once, then time (``--variant NAME:KEY=VALUE,...`` times clisonix once more
per repeat with extra environment variables, e.g. ``PYTHONPATH`` pointing at a copy of an
older version of the package: before/after in one interleaved run)::

    .venv/bin/python benchmarks/bench_speed.py make
    .venv/bin/python benchmarks/bench_speed.py time --repeats 5 --json /dev/shm/speed.json \\
        --variant before:PYTHONPATH=/tmp/clisonix-before

Needs ``dcm2niix`` and ``SimpleITK`` (both in the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_conversion import Series, measure  # noqa: E402 - a sibling script

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PY = BIN / "python"
CT_PIPELINE = (
    "--op", "rescale", "--op", "window:center=40,width=400",
    "--op", "resample:spacing=1.5", "--op", "normalize",
)  # fmt: skip
#: name -> (series, slices, rows/cols, syntax); ``scale`` is made only when asked.
SETS: dict[str, tuple[int, int, int, str]] = {
    "ct8": (8, 256, 512, "explicit"),
    "ct1": (1, 200, 512, "explicit"),
    "ct2": (2, 256, 512, "explicit"),
    "j2k1": (1, 128, 512, "j2k"),
    "scale": (40, 256, 256, "explicit"),
}
ROWS = ("convert8", "convert8-j1", "pipe1", "pipe8", "j2k1", "gz2", "firstop", "scale")


def clx(src: Path, out: Path, jobs: int, fmt: str = "nifti", *ops: str) -> list[str]:
    """``clisonix transform`` command line."""
    return [str(BIN / "clisonix"), "transform", str(src), str(out), "--jobs", str(jobs),
            "--format", fmt, *ops]  # fmt: skip


def dcm2niix(src: Path, out: Path, z: str = "n") -> list[str]:
    """``dcm2niix -z n|i`` (quiet)."""
    return [str(BIN / "dcm2niix"), "-z", z, "-v", "0", "-o", str(out), str(src)]


def sitk(src: Path, out: Path) -> list[str]:
    """The SimpleITK CT pipeline script."""
    return [
        str(PY),
        str(Path(__file__).with_name("sitk_ct_pipeline.py")),
        str(src),
        str(out),
    ]


@dataclass
class Cmd:
    """One command of a row: its label, argv, extra environment and its samples."""

    label: str
    argv: list[str]
    env: dict[str, str] | None = None
    series: Series = field(init=False)

    def __post_init__(self) -> None:
        self.series = Series(self.label)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def _run(cmd: Cmd, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    s = measure(cmd.argv, cmd.env)
    cmd.series.samples.append(s)
    print(
        f"  {cmd.label:<44} {s.wall_s:7.2f} s  peak {s.peak_mib:7.1f} MiB  "
        f"cpu {s.cpu_s:6.2f} s  (rc {s.rc})",
        flush=True,
    )
    shutil.rmtree(out, ignore_errors=True)


def run_row(name: str, cmds: list[Cmd], work: Path, repeats: int) -> dict[str, Any]:
    """Run ``cmds`` ``repeats`` times, interleaved and rotated; the first is 'ours', the
    second the peer (or the other side of the comparison)."""
    print(f"[{name}] load before {_load()}", flush=True)
    for r in range(repeats):
        order = cmds[r % len(cmds) :] + cmds[: r % len(cmds)]
        for cmd in order:
            _run(cmd, _out_of(cmd))
    doc: dict[str, Any] = {"commands": [c.series.doc() for c in cmds]}
    ours, peer = cmds[0].series, cmds[1].series
    ratios = [
        a.wall_s / b.wall_s for a, b in zip(ours.samples, peer.samples, strict=True)
    ]
    cpu_ratios = [
        a.cpu_s / b.cpu_s for a, b in zip(ours.samples, peer.samples, strict=True)
    ]
    doc.update(
        ours=ours.label, peer=peer.label,
        wall_ratio=round(ours.wall / peer.wall, 3),
        wall_ratio_per_repeat=[round(x, 3) for x in ratios],
        cpu_ratio=round(ours.cpu / peer.cpu, 3),
        cpu_ratio_per_repeat=[round(x, 3) for x in cpu_ratios],
        load_after=_load(),
    )  # fmt: skip
    print(
        f"=> [{name}] {ours.label}: {_spread([s.wall_s for s in ours.samples])} s, "
        f"{ours.peak:.0f} MiB, cpu {ours.cpu:.2f} s | {peer.label}: "
        f"{_spread([s.wall_s for s in peer.samples])} s, {peer.peak:.0f} MiB, cpu "
        f"{peer.cpu:.2f} s | wall ratio {_spread(ratios)}, cpu ratio {_spread(cpu_ratios)}",
        flush=True,
    )
    for extra in cmds[2:]:
        v = extra.series
        vr = [a.wall_s / b.wall_s for a, b in zip(v.samples, ours.samples, strict=True)]
        doc.setdefault("variants", {})[v.label] = {
            "wall_ratio_over_ours": round(v.wall / ours.wall, 3),
            "wall_ratio_over_ours_per_repeat": [round(x, 3) for x in vr],
        }
        print(
            f"=> [{name}] {v.label}: {_spread([s.wall_s for s in v.samples])} s, "
            f"{v.peak:.0f} MiB, cpu {v.cpu:.2f} s; over {ours.label}: {_spread(vr)}",
            flush=True,
        )
    print(f"[{name}] load after {doc['load_after']}", flush=True)
    return doc


def _out_of(cmd: Cmd) -> Path:
    """The output folder a command line writes (its last path argument for dcm2niix's
    ``-o``, the second positional for the others)."""
    argv = cmd.argv
    if "-o" in argv:
        return Path(argv[argv.index("-o") + 1])
    return Path(argv[3] if argv[1] == "transform" else argv[-1])


def _variants(ours: Cmd, variants: Sequence[tuple[str, dict[str, str]]]) -> list[Cmd]:
    return [Cmd(f"[{name}] {ours.label}", ours.argv, env) for name, env in variants]


def rows(root: Path, names: Sequence[str], variants: Sequence[tuple[str, dict[str, str]]]
         ) -> dict[str, list[Cmd]]:  # fmt: skip
    """The commands of each row asked for: ours first, then the peer, then the variants."""
    d, w = root / "in", root / "out"
    out: dict[str, list[Cmd]] = {}
    table: dict[str, tuple[Cmd, Cmd]] = {
        "convert8": (
            Cmd("clisonix --jobs 2 (8 series)", clx(d / "ct8", w / "a", 2)),
            Cmd("dcm2niix -z n", dcm2niix(d / "ct8", w / "b")),
        ),
        "convert8-j1": (
            Cmd("clisonix --jobs 1 (8 series)", clx(d / "ct8", w / "a", 1)),
            Cmd("dcm2niix -z n", dcm2niix(d / "ct8", w / "b")),
        ),
        "pipe1": (
            Cmd("clisonix CT pipeline --jobs 1 (1 series)",
                clx(d / "ct1", w / "a", 1, "nifti", *CT_PIPELINE)),
            Cmd("SimpleITK CT pipeline (1 series)", sitk(d / "ct1", w / "b")),
        ),
        "pipe8": (
            Cmd("clisonix CT pipeline --jobs 2 (8 series)",
                clx(d / "ct8", w / "a", 2, "nifti", *CT_PIPELINE)),
            Cmd("SimpleITK CT pipeline loop (8 series)", sitk(d / "ct8", w / "b")),
        ),
        "j2k1": (
            Cmd("clisonix --jobs 2 (1 J2K series)", clx(d / "j2k1", w / "a", 2)),
            Cmd("dcm2niix -z n (1 J2K series)", dcm2niix(d / "j2k1", w / "b")),
        ),
        "gz2": (
            Cmd("clisonix --jobs 2 nifti-gz (2 series)", clx(d / "ct2", w / "a", 2, "nifti-gz")),
            Cmd("dcm2niix -z i (2 series)", dcm2niix(d / "ct2", w / "b", "i")),
        ),
        "firstop": (
            Cmd("clisonix --op rescale --jobs 1 (1 series)",
                clx(d / "ct1", w / "a", 1, "nifti", "--op", "rescale")),
            Cmd("clisonix --jobs 1 (1 series, no op)", clx(d / "ct1", w / "b", 1)),
        ),
        "scale": (
            Cmd("clisonix --jobs 2 (10,240 files)", clx(d / "scale", w / "a", 2)),
            Cmd("dcm2niix -z n (10,240 files)", dcm2niix(d / "scale", w / "b")),
        ),
    }  # fmt: skip
    for name in names:
        ours, peer = table[name]
        extra = [Cmd("clisonix --jobs 1 (1 J2K series)", clx(d / "j2k1", w / "c", 1))]
        out[name] = [ours, peer, *(extra if name == "j2k1" else [])]
        out[name] += _variants(ours, variants)
        if name == "firstop":
            out[name] += _variants(peer, variants)
    return out


def make(root: Path, names: Sequence[str]) -> None:
    """Write the input sets with ``clisonix synth`` (CT phantoms, 512x512 unless said)."""
    for name in names:
        n_series, slices, size, syntax = SETS[name]
        dest = root / "in" / name
        if dest.exists():
            print(f"{dest}: exists, kept", flush=True)
            continue
        subprocess.run(
            [str(BIN / "clisonix"), "synth", str(dest), "--patients", "1", "--series",
             str(n_series), "--slices", str(slices), "--rows", str(size), "--cols",
             str(size), "--modality", "CT", "--syntax", syntax, "--jobs", "2"],
            check=True,
        )  # fmt: skip


def _sets_for(names: Sequence[str]) -> list[str]:
    need = {"convert8": "ct8", "convert8-j1": "ct8", "pipe1": "ct1", "pipe8": "ct8",
            "j2k1": "j2k1", "gz2": "ct2", "firstop": "ct1", "scale": "scale"}  # fmt: skip
    return sorted({need[n] for n in names})


def _memory_growth(root: Path, repeats: int) -> dict[str, Any]:
    """Peak memory with the first 2 series of the scale set against all 40."""
    src = root / "in" / "scale"
    folders = sorted({p.parent for p in src.rglob("*.dcm")})
    listing = root / "few.txt"
    listing.write_text("\n".join(
        sorted(p.relative_to(src).as_posix() for f in folders[:2] for p in f.glob("*.dcm"))
    ) + "\n")  # fmt: skip
    few = Cmd("clisonix --jobs 2 (2 of 40 series)",
              [*clx(src, root / "out" / "few", 2), "--files-from", str(listing)])  # fmt: skip
    for _ in range(repeats):
        _run(few, root / "out" / "few")
    print(f"=> [scale] peak with 2 series {few.series.peak:.0f} MiB", flush=True)
    return few.series.doc()


def main(argv: list[str] | None = None) -> None:
    """``make`` the inputs or ``time`` the rows."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("cmd", choices=["make", "time"])
    ap.add_argument(
        "--root", default="/dev/shm/clx-speed", help="inputs and outputs (RAM)"
    )
    ap.add_argument("--rows", default=",".join(r for r in ROWS if r != "scale"),
                    help=f"comma-separated, from {', '.join(ROWS)}")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                    help="also time clisonix with these environment variables")  # fmt: skip
    args = ap.parse_args(argv)
    root = Path(args.root)
    names = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        ap.error(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    if args.cmd == "make":
        make(root, _sets_for(names))
        return
    variants = []
    for spec in args.variant:
        vname, _, rest = spec.partition(":")
        variants.append((vname, dict(i.split("=", 1) for i in rest.split(",") if i)))
    doc: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": _load(), "rows": {}}
    print(f"load average before: {doc['load_before']} ({doc['cpus']} cpus)", flush=True)
    for name, cmds in rows(root, names, variants).items():
        doc["rows"][name] = run_row(name, cmds, root / "out", args.repeats)
        if name == "firstop":  # ours, peer, then each variant's pair
            pairs = [(cmds[0], cmds[1])]
            k = len(variants)
            pairs += [(cmds[2 + i], cmds[2 + k + i]) for i in range(k)]
            for with_op, plain in pairs:
                a_s, b_s = with_op.series.samples, plain.series.samples
                diff = [a.wall_s - b.wall_s for a, b in zip(a_s, b_s, strict=True)]
                cpu = [a.cpu_s - b.cpu_s for a, b in zip(a_s, b_s, strict=True)]
                doc["rows"][name].setdefault("first_op_extra", {})[with_op.label] = {
                    "wall_s": [round(x, 3) for x in diff],
                    "cpu_s": [round(x, 3) for x in cpu],
                }
                print(
                    f"=> [firstop] {with_op.label}: extra wall {_spread(diff)} s, "
                    f"extra cpu {_spread(cpu)} s",
                    flush=True,
                )
        if name == "scale":
            doc["rows"][name]["few_series"] = _memory_growth(root, args.repeats)
    doc["load_after"] = _load()
    print(f"load average after: {doc['load_after']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
