"""The driver of ``clisonix bench``: which suites run, in what order, into one document.

Each suite (``suite_*.py``, :mod:`.peers`) returns one section of the benchmark document (see
:mod:`clisonix_cli.bench.report`) built only from what it measured. :func:`run_bench` runs
the selected suites in order, keeps going when one fails (the failure is recorded under
``errors``), and removes its temporary folder at the end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench import workload as wl
from clisonix_cli.bench.calibrate import Calibrator
from clisonix_cli.bench.harness import MIN_TIME_S, QUICK_MIN_TIME_S, Progress
from clisonix_cli.bench.peers import peers_suite
from clisonix_cli.bench.report import load_average, new_document
from clisonix_cli.bench.sizing import sizing_section
from clisonix_cli.bench.suite_compile import compile_suite
from clisonix_cli.bench.suite_e2e import e2e_suite
from clisonix_cli.bench.suite_memory import memory_suite, peak_memory_suite
from clisonix_cli.bench.suite_ops import jsonable, op_suite, per_op_image, select_ops
from clisonix_cli.bench.suite_stages import scan_suite, stage_inputs, stage_suite
from clisonix_cli.errors import UsageError
from clisonix_cli.runtime import cpu_cores

SUITES = ("memory", "ops", "e2e", "scan", "stages", "compile", "peak", "peers")
DEFAULT_PIPELINE = ("rescale", "window:preset=brain")


@dataclass(frozen=True)
class BenchConfig:
    """Everything one ``clisonix bench`` run needs (built by the CLI, usable from Python).

    Attributes
    ----------
    slices : int
        Slices (512x512) of the per-op volume (``--size``).
    repeats : int
        Timed calls per figure, after one warm-up call.
    ops : tuple of str or None
        Ops of the per-op suite (``--ops``); None = every registered op.
    op_specs, pipeline_file
        The pipeline of the end-to-end and stage suites (``--op``/``--pipeline``); empty
        and None mean the default ``rescale`` + ``window:preset=brain``.
    data : Path or None
        The user's DICOM folder (``--data``) instead of the synthetic workload.
    suites : tuple of str
        Suites to run, a subset of :data:`SUITES`.
    target : str or None
        ``--target`` rate for the sizing section.
    jobs : tuple of int
        ``--jobs`` levels of the end-to-end suite; empty = 1, powers of two, all cores.
    """

    quick: bool = False
    slices: int = wl.SIZE_PRESETS[wl.DEFAULT_SIZE]
    size_label: str = wl.DEFAULT_SIZE
    repeats: int = 5
    ops: tuple[str, ...] | None = None
    op_specs: tuple[str, ...] = ()
    pipeline_file: Path | None = None
    data: Path | None = None
    suites: tuple[str, ...] = SUITES
    target: str | None = None
    jobs: tuple[int, ...] = ()
    min_time_s: float | None = None

    @property
    def min_time(self) -> float:
        """Minimum measurement time of each gated figure (seconds of timed calls)."""
        if self.min_time_s is not None:
            return self.min_time_s
        return QUICK_MIN_TIME_S if self.quick else MIN_TIME_S

    def describe(self) -> dict[str, Any]:
        """The ``config`` section of the document (JSON-ready, no absolute user paths)."""
        out = asdict(self)
        out["pipeline_file"] = self.pipeline_file.name if self.pipeline_file else None
        out["data"] = "user" if self.data is not None else "synthetic"
        out["ops"] = list(self.ops) if self.ops is not None else None
        out["op_specs"] = list(self.op_specs)
        out["suites"] = list(self.suites)
        out["jobs"] = list(self.jobs)
        out["min_time_s"] = self.min_time
        out["rows"], out["cols"] = wl.ROWS, wl.COLS
        return out


def select_suites(names: Sequence[str], *, peers: bool) -> tuple[str, ...]:
    """The suites to run, in :data:`SUITES` order (``--suite`` and ``--peers``).

    Parameters
    ----------
    names : sequence of str
        ``--suite`` values; empty = every suite but ``peers``.
    peers : bool
        ``--peers``: add the ``peers`` suite.

    Raises
    ------
    UsageError
        An unknown suite name (the message lists the known ones).
    """
    chosen = list(names) or [s for s in SUITES if s != "peers"]
    if peers and "peers" not in chosen:
        chosen.append("peers")
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        raise UsageError(
            f"--suite: unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}"
        )
    return tuple(s for s in SUITES if s in chosen)


def default_jobs(cores: int, *, quick: bool) -> tuple[int, ...]:
    """``--jobs`` levels of the end-to-end suite: 1, powers of two, and all cores."""
    if quick:
        return tuple(sorted({1, cores}))
    levels = {1, cores}
    j = 2
    while j < cores:
        levels.add(j)
        j *= 2
    return tuple(sorted(levels))


def run_bench(cfg: BenchConfig, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run the selected suites and return the benchmark document.

    A suite that fails is recorded under ``errors`` (one line) and the others still run.
    """
    cores = cpu_cores()
    jobs_levels = cfg.jobs or default_jobs(cores, quick=cfg.quick)
    doc = new_document({**cfg.describe(), "jobs": list(jobs_levels)})
    say = progress or (lambda _msg: None)
    tmp = Path(tempfile.mkdtemp(prefix="clisonix-bench-"))
    t0 = time.perf_counter()
    cal = Calibrator(cores)
    try:
        _run_suites(
            cfg, doc, tmp=tmp, cores=cores, jobs_levels=jobs_levels, say=say, cal=cal
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc["calibration"] = cal.section()
    doc["runtime"]["total"] = time.perf_counter() - t0
    doc["load"]["loadavg_1m_end"] = load_average()
    return doc


def _guard(doc: dict[str, Any], name: str, func: Callable[[], dict[str, Any]]) -> None:
    t0 = time.perf_counter()
    try:
        doc[name] = func()
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed suite must not lose the others
        doc["errors"][name] = " ".join(f"{type(exc).__name__}: {exc}".split())
    finally:
        doc["runtime"][name] = time.perf_counter() - t0


def _run_suites(
    cfg: BenchConfig,
    doc: dict[str, Any],
    *,
    tmp: Path,
    cores: int,
    jobs_levels: Sequence[int],
    say: Progress,
    cal: Calibrator,
) -> None:
    from clisonix_cli.transforms.pipeline import Pipeline

    default = not (cfg.op_specs or cfg.pipeline_file)
    specs = list(DEFAULT_PIPELINE) if default else list(cfg.op_specs)
    pipeline = Pipeline.from_cli(specs, cfg.pipeline_file)
    doc["config"]["pipeline"] = jsonable(pipeline.canonical())
    doc["config"]["pipeline_sha256"] = pipeline.sha256
    wanted = set(cfg.suites)
    ops = select_ops(cfg.ops) if wanted & {"ops", "compile"} else {}

    cal.point()
    if "memory" in wanted:
        say("memory bandwidth")
        reps = max(cfg.repeats, 3)
        _guard(
            doc,
            "memory",
            partial(memory_suite, quick=cfg.quick, cores=cores, repeats=reps),
        )

    root: Path | None = None  # the end-to-end workload
    if wanted & {"e2e", "scan", "stages", "peak", "peers"}:
        if cfg.data is not None:
            root = cfg.data
        else:
            shape = wl.e2e_shape(quick=cfg.quick, cores=cores)
            say(
                f"synthesizing {shape.n_series} CT series of {shape.slices} slices (512x512)"
            )
            root = tmp / "workload"
            wl.synthesize_ct(
                root,
                patients=shape.patients,
                series=shape.series_per_patient,
                slices=shape.slices,
            )

    img: Any = None
    if "ops" in wanted:
        img = per_op_image(cfg.data, cfg.slices, tmp, say)
    if "ops" in wanted:
        mem = doc.get("memory")
        copy = (
            {
                "1t": mem["copy_gbps_1t"],
                "all": mem["copy_gbps_all"],
                "fresh_1t": mem.get("copy_fresh_gbps_1t", 0.0),
                "fresh_all": mem.get("copy_fresh_gbps_all", 0.0),
            }
            if mem
            else None
        )
        _guard(
            doc,
            "ops",
            partial(
                op_suite,
                img,
                ops,
                repeats=cfg.repeats,
                cores=cores,
                min_time_s=cfg.min_time,
                copy_gbps=copy,
                progress=say,
                runtime=doc["runtime"],
                yardstick=cal.probe,
            ),
        )
    if root is not None:
        if "e2e" in wanted:
            cal.point()
            _guard(
                doc,
                "end_to_end",
                partial(
                    e2e_suite,
                    root,
                    specs,
                    cfg.pipeline_file,
                    jobs_levels=jobs_levels,
                    repeats=cfg.repeats,
                    min_time_s=cfg.min_time,
                    tmp=tmp,
                    progress=say,
                    yardstick=cal.probe,
                ),
            )
            if "end_to_end" in doc:
                e2e = doc["end_to_end"]
                _guard(
                    doc,
                    "sizing",
                    partial(sizing_section, e2e, target=cfg.target, cores=cores),
                )
        if "scan" in wanted:
            say("scan throughput")
            cal.point()
            _guard(
                doc,
                "scan",
                partial(
                    scan_suite,
                    root,
                    repeats=cfg.repeats,
                    min_time_s=cfg.min_time,
                    yardstick=cal.probe,
                ),
            )
        if "stages" in wanted:
            cal.point()
            series = stage_inputs(
                cfg.data, quick=cfg.quick, cores=cores, tmp=tmp, notes=doc["notes"]
            )
            _guard(
                doc,
                "stages",
                partial(
                    stage_suite,
                    syntax_series=series,
                    pipeline=pipeline,
                    tmp=tmp,
                    repeats=cfg.repeats,
                    min_time_s=cfg.min_time,
                    progress=say,
                    yardstick=cal.probe,
                ),
            )
        if "peak" in wanted:
            say("peak memory of one task (subprocess)")
            _guard(
                doc,
                "peak_memory",
                partial(peak_memory_suite, root, specs, cfg.pipeline_file, tmp=tmp),
            )
        if "peers" in wanted:
            _guard(
                doc,
                "peers",
                partial(
                    peers_suite,
                    root,
                    cores=cores,
                    repeats=cfg.repeats,
                    tmp=tmp,
                    min_time_s=cfg.min_time,
                    progress=say,
                    yardstick=cal.probe,
                ),
            )
    if "compile" in wanted:
        # --quick compiles only the pipeline's ops: a cold compile costs seconds per kernel
        names = (
            [step["name"] for step in pipeline.canonical()] if cfg.quick else list(ops)
        )
        names = list(dict.fromkeys(names))
        if names:
            say(
                f"numba compile time of {len(names)} op(s), cold and cached (subprocesses)"
            )
            _guard(doc, "compile", partial(compile_suite, names, tmp=tmp))
