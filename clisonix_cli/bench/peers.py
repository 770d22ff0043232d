"""``--peers``: whole jobs done by tools users already know, process against process.

Every row runs both sides the same way: as **fresh processes** (interpreter or binary start,
imports, reading, work, writing, exit), timed from outside, interleaved (clisonix, peer,
peer, clisonix, ...) so that a change in the machine's load hits both sides alike. Each
side states ``"timing": "process"`` in the document.

- ``cold``: the first process of each side in the row; clisonix starts with an empty
  numba cache (``NUMBA_CACHE_DIR`` pointing to a new folder), so its cold figure includes
  compiling every kernel the job needs: what the first run after an install pays.
- ``warm``: the later processes (numba cache filled, files in the page cache).

Rows, equal cores first:

1. conversion to uncompressed NIfTI, ``clisonix transform --format nifti --jobs 1`` (one
   worker, every thread pool at 1) vs ``dcm2niix -z n`` (single-threaded): 1 core each;
2. the standard CT pipeline (read -> HU -> window -> resample 1.5 mm -> z-score -> NIfTI)
   vs the same pipeline in SimpleITK (:mod:`.sitk_pipeline`), 1 thread each, then all
   cores each;
3. conversion with clisonix on every core against dcm2niix's one: said in the label.

``ratio = peer time / clisonix time`` (above 1: clisonix is faster). Per-core throughput
divides slices per second by the cores each side was given. A peer that is not installed
is listed under ``missing``; the run goes on.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench.harness import (
    MIN_GATED_REPEATS,
    ChildProcessFailed,
    Progress,
    Timing,
    timing_figures,
)
from clisonix_cli.runtime import THREAD_VARS


def find_dcm2niix() -> Path | None:
    """The dcm2niix executable: next to this interpreter (a virtualenv) first, then PATH."""
    local = Path(sys.executable).parent / "dcm2niix"
    if local.is_file():
        return local
    found = shutil.which("dcm2niix")
    return Path(found) if found else None


def dcm2niix_version(exe: Path) -> str:
    """``vX.Y.Z`` as dcm2niix prints it, or ``unknown``."""
    proc = subprocess.run([str(exe), "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"v\d+\.\d+\.\d+", proc.stdout + proc.stderr)
    return match.group(0) if match else "unknown"


@dataclass(frozen=True)
class Side:
    """One side of a row: a command run as a fresh process into an emptied folder."""

    name: str
    argv: Sequence[str]
    out: Path
    cores: int
    env: Mapping[str, str] = field(default_factory=dict)
    shown: str = ""  # the command as a user would type it (no temporary paths)
    suffix: str = ".nii"

    def run(self) -> float:
        """Empty the output folder, run the command, check it wrote; return the wall time."""
        if self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)
        env = {**os.environ, **self.env}
        t0 = time.perf_counter()
        proc = subprocess.run(  # noqa: S603 - our interpreter or the peer's binary
            list(self.argv), capture_output=True, text=True, env=env, check=False
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise ChildProcessFailed(f"{self.name} exited {proc.returncode}: {tail}")
        if not list(self.out.rglob(f"*{self.suffix}")):
            raise ChildProcessFailed(f"{self.name} wrote no {self.suffix} file")
        return wall


def interleaved(
    sides: Sequence[Side],
    *,
    repeats: int,
    min_time_s: float = 0.0,
    max_rounds: int = 30,
    yardsticks: Sequence[Callable[[], float] | None] | None = None,
) -> list[Timing]:
    """Run each side once (cold), then rounds of all sides in alternating order (warm).

    Rounds go A B, B A, A B, ... so neither side always runs right after the other; they
    continue until every side has ``repeats`` samples and ``min_time_s`` of timed runs.

    ``yardsticks`` (one per side, or None) are measured just before each run of that side.

    Returns
    -------
    list of Timing
        One per side: warm samples, and the cold run as ``first_call``.
    """
    probes = list(yardsticks) if yardsticks is not None else [None] * len(sides)
    cold = [side.run() for side in sides]
    samples: list[list[float]] = [[] for _ in sides]
    yards: list[list[float]] = [[] for _ in sides]
    rounds = 0
    while rounds < repeats or (
        min(sum(s) for s in samples) < min_time_s and rounds < max_rounds
    ):
        order = range(len(sides)) if rounds % 2 == 0 else reversed(range(len(sides)))
        for i in order:
            probe = probes[i]
            if probe is not None:
                yards[i].append(probe())
            samples[i].append(sides[i].run())
        rounds += 1
    return [
        Timing(
            tuple(s),
            first_call=c,
            yardsticks=tuple(y) if p is not None else None,
        )
        for s, c, y, p in zip(samples, cold, yards, probes, strict=True)
    ]


def one_core_env() -> dict[str, str]:
    """Every thread pool of a process at one thread (numba, BLAS, OpenMP)."""
    return dict.fromkeys(THREAD_VARS, "1")


def _side_figures(
    side: Side, t: Timing, slices: int, peer_name: str | None
) -> dict[str, Any]:
    warm = timing_figures(t)
    seconds = t.median
    fig: dict[str, Any] = {
        "name": peer_name or "clisonix",
        "command": side.shown,
        "timing": "process",
        "cores": side.cores,
        "cold_ms": (t.first_call or 0.0) * 1e3,
        "warm": warm,
        "slices_per_s": slices / seconds,
        "slices_per_s_per_core": slices / seconds / side.cores,
    }
    if peer_name is None:  # clisonix's own figure: judged by --compare
        fig["warm"] = {
            **warm,
            "timing": "process",
            "calibrate": "1t" if side.cores == 1 else "all",
        }
    return fig


def _row(
    work: str,
    label: str,
    mine: Side,
    peer: Side,
    peer_name: str,
    *,
    slices: int,
    repeats: int,
    min_time_s: float,
    yardstick: Callable[[str], Callable[[], float]] | None = None,
) -> dict[str, Any]:
    level = "1t" if mine.cores == 1 else "all"
    t_mine, t_peer = interleaved(
        [mine, peer],
        repeats=repeats,
        min_time_s=min_time_s,
        yardsticks=[yardstick(level) if yardstick else None, None],
    )
    return {
        "work": work,
        "label": label,
        "equal_cores": mine.cores == peer.cores,
        "slices": slices,
        "clisonix": _side_figures(mine, t_mine, slices, None),
        "peer": _side_figures(peer, t_peer, slices, peer_name),
        "ratio_warm": t_peer.median / t_mine.median,
        "ratio_cold": (t_peer.first_call or 0.0) / (t_mine.first_call or 1.0),
    }


def _clisonix(
    root: Path,
    out: Path,
    *,
    jobs: int,
    ops: Sequence[str],
    cache: Path,
    cores: int,
) -> Side:
    argv = [sys.executable, "-m", "clisonix_cli", "transform", str(root), str(out)]
    shown = ["clisonix transform IN OUT"]
    for spec in ops:
        argv += ["--op", spec]
        shown.append(f"--op {spec}")
    argv += ["--format", "nifti", "--jobs", str(jobs)]
    shown.append(f"--format nifti --jobs {jobs}")
    env = {"NUMBA_CACHE_DIR": str(cache)}
    if cores == 1:
        env.update(one_core_env())
    return Side("clisonix", argv, out, cores, env, " ".join(shown))


def peers_suite(
    root: Path,
    *,
    cores: int,
    repeats: int,
    tmp: Path,
    min_time_s: float = 0.0,
    progress: Progress | None = None,
    yardstick: Callable[[str], Callable[[], float]] | None = None,
) -> dict[str, Any]:
    """Every whole-job row whose peer is installed; the others under ``missing``."""
    from clisonix_cli.bench.sitk_pipeline import CLISONIX_OPS
    from clisonix_cli.dicom.index import scan

    slices = sum(st.n_slices * st.n_volumes for st in scan(root).stacks)
    say = progress or (lambda _msg: None)
    reps = max(repeats, MIN_GATED_REPEATS)
    row = partial(
        _row, slices=slices, repeats=reps, min_time_s=min_time_s, yardstick=yardstick
    )
    section: dict[str, Any] = {"rows": {}, "missing": {}}
    rows = section["rows"]
    exe = find_dcm2niix()
    has_sitk = importlib.util.find_spec("SimpleITK") is not None

    def cache(
        key: str,
    ) -> Path:  # a new, empty numba cache per row: its cold run compiles
        return tmp / f"numba_cache_{key}"

    def dcm2niix_side(key: str) -> tuple[Side, str]:
        assert exe is not None
        out = tmp / f"peer_{key}"
        argv = [str(exe), "-z", "n", "-o", str(out), str(root)]
        return Side("dcm2niix", argv, out, 1, shown="dcm2niix -z n -o OUT IN"), (
            f"dcm2niix {dcm2niix_version(exe)}"
        )

    def sitk_side(key: str, threads: int) -> tuple[Side, str]:
        import SimpleITK

        sitk: Any = SimpleITK  # untyped C++ bindings
        out = tmp / f"peer_{key}"
        argv = [sys.executable, "-m", "clisonix_cli.bench.sitk_pipeline"]
        argv += [str(root), str(out), "--threads", str(threads)]
        shown = f"python -m clisonix_cli.bench.sitk_pipeline IN OUT --threads {threads}"
        env = one_core_env() if threads == 1 else {}
        name = f"SimpleITK {sitk.Version.VersionString()}"
        return Side("SimpleITK", argv, out, threads, env, shown), name

    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if exe is not None:
        peer, name = dcm2niix_side("conv1")
        mine = _clisonix(
            root, tmp / "mine_conv1", jobs=1, ops=(), cache=cache("conv1"), cores=1
        )
        plan.append(
            (
                "conversion_1v1",
                partial(
                    row,
                    "conversion to NIfTI (uncompressed)",
                    f"clisonix 1 core vs {name} 1 core",
                    mine,
                    peer,
                    name,
                ),
            )
        )
    else:
        section["missing"]["dcm2niix"] = (
            "not installed: pip install dcm2niix (or put dcm2niix on PATH)"
        )
    if has_sitk:
        for key, n in (("pipeline_1v1", 1), ("pipeline_all", cores)):
            if key == "pipeline_all" and cores == 1:
                continue
            peer, name = sitk_side(key, n)
            mine = _clisonix(
                root,
                tmp / f"mine_{key}",
                jobs=1 if n == 1 else 0,
                ops=CLISONIX_OPS,
                cache=cache(key),
                cores=n,
            )
            plan.append(
                (
                    key,
                    partial(
                        row,
                        "CT pipeline: read, HU, window, resample 1.5 mm, z-score, NIfTI",
                        f"clisonix {n} core(s) vs {name} {n} thread(s)",
                        mine,
                        peer,
                        name,
                    ),
                )
            )
    else:
        section["missing"]["SimpleITK"] = "not installed: pip install SimpleITK"
    if exe is not None and cores > 1:
        peer, name = dcm2niix_side("conv_all")
        mine = _clisonix(
            root,
            tmp / "mine_conv_all",
            jobs=0,
            ops=(),
            cache=cache("conv_all"),
            cores=cores,
        )
        plan.append(
            (
                "conversion_all_v1",
                partial(
                    row,
                    "conversion to NIfTI (uncompressed)",
                    f"clisonix {cores} cores vs {name} 1 core (more cores for clisonix)",
                    mine,
                    peer,
                    name,
                ),
            )
        )
    for key, run_row in plan:
        say(f"peers: {key} (fresh processes, interleaved)")
        rows[key] = run_row()
    return section
