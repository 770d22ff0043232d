"""The suites of ``clisonix bench``: memory, per op, end to end, scan, stages, compile, peak.

Each suite returns one section of the benchmark document (see :mod:`clisonix_cli.bench.report`)
built only from what it measured. :func:`run_bench` runs the selected suites in order, keeps
going when one fails (the failure is recorded under ``errors``), and removes its temporary
folder at the end.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench import workload as wl
from clisonix_cli.bench.harness import Timing, rate, run_child, time_call
from clisonix_cli.bench.report import load_average, new_document
from clisonix_cli.bench.sizing import parallel_efficiency
from clisonix_cli.taskarray.config import cpu_cores

Progress = Callable[[str], None]

SUITES = ("memory", "ops", "e2e", "scan", "stages", "compile", "peak", "peers")
DEFAULT_PIPELINE = ("rescale", "window:preset=brain")
#: A reference or peer call slower than this (seconds) is timed 3 times, not --repeats.
SLOW_S = 2.0


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

    def describe(self) -> dict[str, Any]:
        """The ``config`` section of the document (JSON-ready, no absolute user paths)."""
        out = asdict(self)
        out["pipeline_file"] = self.pipeline_file.name if self.pipeline_file else None
        out["data"] = "user" if self.data is not None else "synthetic"
        out["ops"] = list(self.ops) if self.ops is not None else None
        out["op_specs"] = list(self.op_specs)
        out["suites"] = list(self.suites)
        out["jobs"] = list(self.jobs)
        out["rows"], out["cols"] = wl.ROWS, wl.COLS
        return out


# --- thread control --------------------------------------------------------------------------


@contextmanager
def numba_threads(n: int) -> Iterator[int]:
    """Run numba's parallel kernels on ``n`` threads (capped at NUMBA_NUM_THREADS)."""
    import numba

    old = numba.get_num_threads()
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    used = max(1, min(n, limit))
    numba.set_num_threads(used)
    try:
        yield used
    finally:
        numba.set_num_threads(old)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Pin BLAS/OpenMP pools to one thread (references are timed single-threaded)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def timing_figures(
    t: Timing, *, voxels: int | None = None, nbytes: int | None = None
) -> dict[str, Any]:
    """A timing in ms plus ``voxels_per_s`` and ``gbps`` (bytes read + written) when given."""
    out: dict[str, Any] = dict(t.as_ms())
    if voxels is not None:
        out["voxels_per_s"] = rate(voxels, t.median)
    if nbytes is not None:
        out["gbps"] = rate(nbytes, t.median) / 1e9
    return out


# --- memory bandwidth --------------------------------------------------------------------------


def memory_suite(*, quick: bool, cores: int, repeats: int) -> dict[str, Any]:
    """Copy bandwidth with one thread and with every core (see :mod:`.memory`)."""
    from clisonix_cli.bench.memory import (
        DEFAULT_BUFFER_MIB,
        QUICK_BUFFER_MIB,
        copy_bandwidth,
    )

    mib = QUICK_BUFFER_MIB if quick else DEFAULT_BUFFER_MIB
    gb1, t1 = copy_bandwidth(buffer_mib=mib, threads=1, repeats=repeats)
    fr1, tf1 = copy_bandwidth(buffer_mib=mib, threads=1, repeats=repeats, fresh=True)
    section: dict[str, Any] = {
        "buffer_bytes": mib * 1024 * 1024,
        "convention": "read+write",
        "copy_gbps_1t": gb1,
        "copy_1t": timing_figures(t1),
        "copy_fresh_gbps_1t": fr1,
        "copy_fresh_1t": timing_figures(tf1),
    }
    if cores > 1:
        gbn, tn = copy_bandwidth(buffer_mib=mib, threads=cores, repeats=repeats)
        section["copy_gbps_all"] = gbn
        section["copy_all"] = timing_figures(tn)
        frn, tfn = copy_bandwidth(
            buffer_mib=mib, threads=cores, repeats=repeats, fresh=True
        )
        section["copy_fresh_gbps_all"] = frn
        section["copy_fresh_all"] = timing_figures(tfn)
    else:
        section["copy_gbps_all"] = gb1
        section["copy_fresh_gbps_all"] = fr1
    return section


# --- per op ---------------------------------------------------------------------------------------


def load_image(root: Path, stack: Any, *, max_slices: int | None = None) -> Any:
    """Load one stack as an :class:`Image` (first volume of a 4-D stack, cropped if asked)."""
    from clisonix_cli.dicom.volume import load_stack
    from clisonix_cli.transforms.image import Image

    vol = load_stack(root, stack)
    data = vol.data[0] if vol.data.ndim == 4 else vol.data
    if max_slices is not None and data.shape[0] > max_slices:
        data = data[:max_slices]
    import numpy as np

    return Image(
        vol=np.ascontiguousarray(data),
        affine_lps=vol.affine_lps,
        slope=vol.slope,
        intercept=vol.intercept,
    )


def select_ops(names: Sequence[str] | None) -> dict[str, Any]:
    """The registry's ops by name, all of them when ``names`` is None.

    Raises
    ------
    UsageError
        An unknown name (the message lists the known ones).
    """
    from clisonix_cli.errors import UsageError
    from clisonix_cli.transforms.registry import all_ops

    registry = all_ops()
    if names is None:
        return dict(sorted(registry.items()))
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UsageError(
            f"--ops: unknown op(s) {', '.join(unknown)}; known ops: {', '.join(sorted(registry))}"
        )
    return {n: registry[n] for n in names}


def op_suite(
    img: Any,
    ops: Mapping[str, Any],
    *,
    repeats: int,
    cores: int,
    copy_gbps: Mapping[str, float] | None = None,
    progress: Progress | None = None,
    runtime: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Time every op's ``apply`` (1 thread, all cores) against its ``reference`` (1 thread).

    All ops run on the same :class:`Image` (stored values with their pending slope and
    intercept, as ``load_stack`` returns them) with the op's ``examples[0]`` bound through
    :meth:`Op.bind`. Bytes moved = input bytes + output bytes. The first call of ``apply``
    (numba compile or cache load included) is kept apart as ``first_call_ms``; the
    reference's first call (lazy scipy/scikit-image imports) is an untimed warm-up.
    ``copy_gbps`` (keys ``1t``, ``all`` and optionally ``fresh_1t``, ``fresh_all``) gives
    the intensity ops' ``copy_fraction_*`` (vs a copy into a warm buffer) and
    ``fresh_copy_fraction_*`` (vs a copy into a new array, as the op's own output is).
    ``runtime``, when given, receives the wall seconds spent on each op.
    """
    section: dict[str, Any] = {}
    for name, op in ops.items():
        if progress:
            progress(f"op {name}")
        t_op = time.perf_counter()
        params = op.bind(dict(op.examples[0]) if op.examples else {})
        t0 = time.perf_counter()
        out = op.apply(img, **params)
        first_call = time.perf_counter() - t0
        voxels = int(img.vol.size)
        # Bytes read + written, where that is what the op does: an op on the same grid
        # reads every input voxel and writes every output voxel once. For ops that crop,
        # pad or resample, traffic depends on the parameters: no GB/s for them.
        same_grid = out.vol.shape == img.vol.shape
        nbytes = int(img.vol.nbytes) + int(out.vol.nbytes) if same_grid else None
        entry: dict[str, Any] = {
            "family": op.family,
            "version": op.version,
            "params": _jsonable(params),
            "shape": list(img.vol.shape),
            "out_shape": list(out.vol.shape),
            "in_dtype": str(img.vol.dtype),
            "out_dtype": str(out.vol.dtype),
            "voxels": voxels,
            "first_call_ms": first_call * 1e3,
        }
        if nbytes is not None:
            entry["bytes_moved"] = nbytes
        del out
        apply = partial(op.apply, img, **params)
        with numba_threads(1):
            t1 = time_call(apply, repeats=repeats, warmup=0)
        with numba_threads(cores) as used:
            tn = time_call(apply, repeats=repeats)  # warm-up: wakes the thread pool
        entry["threads_all"] = used
        with one_blas_thread(), numba_threads(1):
            tr = time_call(
                partial(op.reference, img, **params), repeats=repeats, slow_s=SLOW_S
            )
        entry["apply_1t"] = timing_figures(t1, voxels=voxels, nbytes=nbytes)
        entry["apply_all"] = timing_figures(tn, voxels=voxels, nbytes=nbytes)
        entry["reference"] = timing_figures(tr, voxels=voxels, nbytes=nbytes)
        entry["speedup_1t"] = tr.median / t1.median
        entry["speedup_all"] = tr.median / tn.median
        if op.family == "intensity" and copy_gbps and nbytes is not None:
            entry["copy_fraction_1t"] = entry["apply_1t"]["gbps"] / copy_gbps["1t"]
            entry["copy_fraction_all"] = entry["apply_all"]["gbps"] / copy_gbps["all"]
            # like for like: the op allocates its output, so does a fresh copy
            for key in ("1t", "all"):
                fresh = copy_gbps.get(f"fresh_{key}")
                if fresh:
                    entry[f"fresh_copy_fraction_{key}"] = (
                        entry[f"apply_{key}"]["gbps"] / fresh
                    )
        section[name] = entry
        if runtime is not None:
            runtime[f"ops.{name}"] = time.perf_counter() - t_op
    return section


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


# --- scan --------------------------------------------------------------------------------------


def scan_suite(root: Path, *, repeats: int) -> dict[str, Any]:
    """Files per second of :func:`clisonix_cli.dicom.index.scan` over the whole workload."""
    from clisonix_cli.dicom.index import scan

    result = scan(root)
    t = time_call(lambda: scan(root), repeats=repeats)
    return {
        "files": result.n_files,
        "dicom_files": result.n_dicom,
        "stacks": len(result.stacks),
        "scan": timing_figures(t),
        "files_per_s": rate(result.n_files, t.median),
    }


# --- stage by stage ----------------------------------------------------------------------------


def stage_suite(
    *,
    syntax_series: Mapping[str, tuple[Path, Sequence[str] | None]],
    pipeline: Any,
    tmp: Path,
    repeats: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Where the time goes for one series, in-process, with the library functions.

    ``syntax_series`` maps a transfer-syntax label to ``(root, files)``: a folder and the
    files of one series in that syntax (relative to ``root``; None = everything under it).
    The first label is the one the ``share`` breakdown uses. Stages: scan of that series,
    read+decode (``load_stack``) per syntax, each op of the pipeline on its real input
    (outputs feed the next op), the pipeline as the job runs it (``Pipeline.run``, which may
    fuse pointwise ops), and the NIfTI write (``.nii`` and ``.nii.gz``).
    """
    from clisonix_cli.dicom.index import scan
    from clisonix_cli.dicom.volume import load_stack
    from clisonix_cli.formats.nifti import write_nifti
    from clisonix_cli.transforms.image import Image

    section: dict[str, Any] = {}
    read: dict[str, Any] = {}
    primary: tuple[Path, Any, Timing] | None = None
    for label, (root, files) in syntax_series.items():
        if progress:
            progress(f"stages: read+decode {label}")
        paths = [Path(f) for f in files] if files is not None else None
        stack = wl.largest_stack(scan(root, files=paths))
        if stack is None:
            continue
        t_scan = time_call(partial(scan, root, files=paths), repeats=repeats)
        t_read = time_call(partial(load_stack, root, stack), repeats=repeats)
        n = stack.n_slices * stack.n_volumes
        nbytes = sum((root / f).stat().st_size for f in stack.files)
        read[label] = {
            **timing_figures(t_read),
            "transfer_syntax": stack.transfer_syntax,
            "slices": n,
            "slices_per_s": rate(n, t_read.median),
            "mb_per_s": rate(nbytes, t_read.median) / 1e6,
        }
        if primary is None:
            primary = (root, stack, t_scan)
    if primary is None:
        raise RuntimeError("no image stack found for the stage breakdown")
    root, stack, primary_scan = primary
    vol = load_stack(root, stack)
    data = vol.data[0] if vol.data.ndim == 4 else vol.data
    img0 = Image(
        vol=data, affine_lps=vol.affine_lps, slope=vol.slope, intercept=vol.intercept
    )
    section["series_slices"] = int(data.shape[0])
    section["scan"] = {**timing_figures(primary_scan), "files": len(stack.files)}
    section["read_decode"] = read

    ops_section: dict[str, Any] = {}
    img = img0
    for k, step in enumerate(pipeline.steps):
        op, params = step.op, dict(step.params)
        if progress:
            progress(f"stages: op {op.name}")
        cur = img
        t = time_call(partial(op.apply, cur, **params), repeats=repeats)
        ops_section[f"{k + 1}:{op.name}"] = timing_figures(t, voxels=int(cur.vol.size))
        img = op.apply(cur, **params)
    section["ops"] = ops_section
    t_pipe = time_call(partial(pipeline.run, img0), repeats=repeats)
    section["pipeline_run"] = timing_figures(t_pipe, voxels=int(img0.vol.size))
    final = pipeline.run(img0)

    writes: dict[str, Any] = {}
    for suffix in (".nii", ".nii.gz"):
        if progress:
            progress(f"stages: write {suffix}")
        target = tmp / f"stage_write{suffix}"
        write = partial(
            write_nifti,
            target,
            final.vol,
            final.affine_lps,
            slope=final.slope,
            intercept=final.intercept,
            sidecar=vol.meta,
        )
        t_w = time_call(write, repeats=repeats)
        written = target.stat().st_size
        writes[suffix.lstrip(".").replace(".", "_")] = {
            **timing_figures(t_w),
            "bytes": written,
            "mb_per_s": rate(written, t_w.median) / 1e6,
        }
    section["write"] = writes

    first_label = next(iter(read))
    parts = {
        "scan": primary_scan.median,
        "read_decode": read[first_label]["median_ms"] / 1e3,
        "ops": t_pipe.median,
        "write": writes["nii"]["median_ms"] / 1e3,
    }
    total = sum(parts.values())
    section["share"] = {f"{k}_fraction": v / total for k, v in parts.items()}
    section["share_basis"] = f"{first_label} read, pipeline as run, .nii write"
    section["total_ms"] = total * 1e3
    return section


# --- compile time and peak memory (subprocesses) ----------------------------------------------


def compile_suite(op_names: Sequence[str], *, tmp: Path) -> dict[str, Any]:
    """numba compile time: cold (empty ``NUMBA_CACHE_DIR``) and cached (same dir again).

    Each run is a fresh interpreter that imports the registry, then calls every op's
    ``apply`` once on a 4x32x32 int16 volume; the first call of an op is its compile (or
    cache load) plus a negligible run.
    """
    cache = tmp / "numba_cache"
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    args = ["compile", "--ops", ",".join(op_names)]
    env = {"NUMBA_CACHE_DIR": str(cache)}
    cold = run_child(args, env=env)
    cached = run_child(args, env=env)
    section: dict[str, Any] = {
        "ops": list(op_names),
        "cache": "NUMBA_CACHE_DIR (temporary)",
    }
    for label, res in (("cold", cold), ("cached", cached)):
        section[label] = {
            "import_s": res["import_s"],
            "compile_total_s": res["total_s"],
            "process_s": res["process_s"],
            "peak_rss_mib": res["peak_rss_mib"],
            "per_op": {
                name: {"compile_ms": ms} for name, ms in res["per_op_ms"].items()
            },
        }
    return section


def peak_memory_suite(
    root: Path,
    op_specs: Sequence[str],
    pipeline_file: Path | None,
    *,
    tmp: Path,
) -> dict[str, Any]:
    """RSS high-water of a fresh process running one transform task (the largest stack).

    Run twice: the second process, with every kernel in the on-disk cache, gives the
    figures; the first one's peak is kept as ``first_process_peak_rss_mib`` (information:
    it includes any compilation the cache state required).
    """
    args = ["task", "--root", str(root), "--out", str(tmp / "peak_out")]
    for spec in op_specs:
        args += ["--op", spec]
    if pipeline_file is not None:
        args += ["--pipeline", str(pipeline_file)]
    # The first process may compile kernels whose on-disk cache is missing or stale (LLVM
    # then holds hundreds of MiB for a while); the second measures the steady state.
    first = run_child(args)
    res = run_child(args)
    return {
        "task_peak_rss_mib": res["peak_rss_mib"],
        "baseline_rss_mib": res["baseline_rss_mib"],
        "task_delta_rss_mib": res["peak_rss_mib"] - res["baseline_rss_mib"],
        "first_process_peak_rss_mib": first["peak_rss_mib"],
        "volume_bytes": res["volume_bytes"],
        "series_slices": res["slices"],
        "format": res["format"],
        "task_s": res["task_s"],
    }


# --- sizing ---------------------------------------------------------------------------------------


def sizing_section(
    e2e: Mapping[str, Any], *, target: str | None, cores: int
) -> dict[str, Any]:
    """Images per hour at the measured rates, and cores for ``--target`` (extrapolated)."""
    from clisonix_cli.bench.sizing import cores_for_target, images_per_hour, parse_rate

    jobs = e2e["jobs"]
    one = float(jobs["1"]["slices_per_s"])
    top_jobs = max(int(j) for j in jobs)
    top = float(jobs[str(top_jobs)]["slices_per_s"])
    eff = float(e2e.get("parallel_efficiency", 1.0))
    out: dict[str, Any] = {
        "images_per_hour_1": images_per_hour(one),
        "images_per_hour_all": images_per_hour(top),
        "jobs_all": top_jobs,
    }
    if target is not None:
        sized = cores_for_target(parse_rate(target), one, eff, cores_per_machine=cores)
        out["target"] = {"text": target, **sized.as_dict()}
    return out


# --- orchestration ---------------------------------------------------------------------------------


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
    try:
        _run_suites(cfg, doc, tmp=tmp, cores=cores, jobs_levels=jobs_levels, say=say)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc["runtime"]["total"] = time.perf_counter() - t0
    doc["load"]["loadavg_1m_end"] = load_average()
    return doc


def _guard(doc: dict[str, Any], name: str, func: Callable[[], dict[str, Any]]) -> None:
    from clisonix_cli.errors import UsageError

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
) -> None:
    from clisonix_cli.transforms.pipeline import Pipeline

    default = not (cfg.op_specs or cfg.pipeline_file)
    specs = list(DEFAULT_PIPELINE) if default else list(cfg.op_specs)
    pipeline = Pipeline.from_cli(specs, cfg.pipeline_file)
    doc["config"]["pipeline"] = _jsonable(pipeline.canonical())
    doc["config"]["pipeline_sha256"] = pipeline.sha256
    wanted = set(cfg.suites)
    ops = select_ops(cfg.ops) if wanted & {"ops", "compile"} else {}

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
    if wanted & {"ops", "peers"}:
        img = per_op_image(cfg, tmp, say)
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
                copy_gbps=copy,
                progress=say,
                runtime=doc["runtime"],
            ),
        )
    if root is not None:
        if "e2e" in wanted:
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
                    tmp=tmp,
                    progress=say,
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
            _guard(doc, "scan", partial(scan_suite, root, repeats=cfg.repeats))
        if "stages" in wanted:
            series = stage_inputs(cfg, doc, tmp=tmp, cores=cores)
            _guard(
                doc,
                "stages",
                partial(
                    stage_suite,
                    syntax_series=series,
                    pipeline=pipeline,
                    tmp=tmp,
                    repeats=cfg.repeats,
                    progress=say,
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
            from clisonix_cli.bench.peers import peers_suite

            convert = partial(_convert_plain, root)
            _guard(
                doc,
                "peers",
                partial(
                    peers_suite,
                    root,
                    img=img,
                    ops=select_ops(None),
                    convert=convert,
                    cores=cores,
                    repeats=cfg.repeats,
                    tmp=tmp,
                    progress=say,
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


def _convert_plain(root: Path, out: Path, jobs: int) -> None:
    """clisonix's pure conversion (empty pipeline, uncompressed NIfTI): what dcm2niix does."""
    transform_once(root, out, op_specs=(), pipeline_file=None, jobs=jobs, fmt="nifti")


def per_op_image(cfg: BenchConfig, tmp: Path, say: Progress) -> Any:
    """The volume every op is timed on: synthetic CT (``--size`` slices) or the user's.

    With ``--data``, the largest stack of the folder, its first ``--size`` slices.
    """
    from clisonix_cli.dicom.index import scan

    if cfg.data is not None:
        stack = wl.largest_stack(scan(cfg.data))
        if stack is None:
            raise RuntimeError(
                f"--data {cfg.data} holds no image stack to time the ops on"
            )
        return load_image(cfg.data, stack, max_slices=cfg.slices)
    say(f"synthesizing the per-op volume ({cfg.slices}x512x512 CT)")
    root = tmp / "perop"
    wl.synthesize_ct(root, patients=1, series=1, slices=cfg.slices)
    return load_image(root, wl.largest_stack(scan(root)))


def stage_inputs(
    cfg: BenchConfig, doc: dict[str, Any], *, tmp: Path, cores: int
) -> dict[str, tuple[Path, Sequence[str] | None]]:
    """One series per transfer syntax for the stage suite (synthesized, or the user's)."""
    if cfg.data is not None:
        return user_syntax_series(cfg.data)
    series: dict[str, tuple[Path, Sequence[str] | None]] = {}
    n = wl.e2e_shape(quick=cfg.quick, cores=cores).slices
    for syntax in ("explicit", "rle", "j2k"):
        folder = tmp / f"stage_{syntax}"
        try:
            wl.synthesize_ct(folder, patients=1, series=1, slices=n, syntax=syntax)
        except Exception as exc:  # noqa: BLE001 - e.g. no JPEG 2000 encoder installed
            doc["notes"][f"stages.{syntax}"] = (
                f"not measured: {type(exc).__name__}: {exc}"
            )
            continue
        series[syntax] = (folder, None)
    return series


def user_syntax_series(data: Path) -> dict[str, tuple[Path, Sequence[str] | None]]:
    """The first stack of each transfer syntax found under ``data``, by syntax name."""
    from clisonix_cli.dicom.index import scan
    from clisonix_cli.dicom.syntax import syntax_name

    out: dict[str, tuple[Path, Sequence[str] | None]] = {}
    for stack in scan(data).stacks:
        label = syntax_name(stack.transfer_syntax)
        if label not in out:
            out[label] = (data, stack.files)
    return out


def _fresh_dir(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)


def transform_once(
    root: Path,
    out: Path,
    *,
    op_specs: Sequence[str],
    pipeline_file: Path | None,
    jobs: int,
    fmt: str | None = None,
) -> Any:
    """Run ``clisonix transform`` in-process (:func:`taskarray.execute.run`) once.

    Raises
    ------
    RuntimeError
        When a task failed (a benchmark of failing tasks would time error paths).
    """
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.execute import run

    config = RunConfig(
        in_dir=root,
        out_dir=out,
        op_specs=tuple(op_specs),
        pipeline_file=pipeline_file,
        jobs=jobs,
    )
    if fmt is not None:
        config = replace(config, format=fmt)
    result = run(config)
    if result.failed:
        err = result.failed[0].get("error") or {}
        raise RuntimeError(
            f"transform failed on {len(result.failed)} task(s), e.g. "
            f"{err.get('code', '?')}: {err.get('message', '?')}"
        )
    return result


def e2e_suite(
    root: Path,
    op_specs: Sequence[str],
    pipeline_file: Path | None,
    *,
    jobs_levels: Sequence[int],
    repeats: int,
    tmp: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Throughput of the whole transform job at each ``--jobs`` level.

    Each sample is one complete :func:`clisonix_cli.taskarray.execute.run` (scan, plan,
    read, pipeline, write, manifest) into an emptied output folder, with the transform's
    default format and backend; the warm-up run starts the worker pool and loads the
    compiled kernels. MB/s counts the bytes of the input files read.
    """
    from clisonix_cli.dicom.index import scan
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.transforms.pipeline import Pipeline

    found = scan(root)
    n_series = len(found.stacks)
    n_slices = sum(st.n_slices * st.n_volumes for st in found.stacks)
    n_bytes = sum((root / f).stat().st_size for st in found.stacks for f in st.files)
    if n_series == 0:
        raise RuntimeError("the end-to-end workload holds no image stack")
    defaults = RunConfig(in_dir=root, out_dir=tmp / "e2e")
    pipeline = Pipeline.from_cli(list(op_specs), pipeline_file)
    levels: dict[str, Any] = {}
    for jobs in jobs_levels:
        if progress:
            progress(f"end to end: --jobs {jobs}")
        out = tmp / f"e2e_jobs{jobs}"
        once = partial(
            transform_once,
            root,
            out,
            op_specs=op_specs,
            pipeline_file=pipeline_file,
            jobs=jobs,
        )
        t = time_call(once, repeats=repeats, setup=partial(_fresh_dir, out))
        levels[str(jobs)] = {
            **timing_figures(t),
            "series_per_s": rate(n_series, t.median),
            "slices_per_s": rate(n_slices, t.median),
            "mb_per_s": rate(n_bytes, t.median) / 1e6,
        }
        _fresh_dir(out)
    one = levels[str(min(jobs_levels))]["slices_per_s"]
    for level, fig in levels.items():
        fig["efficiency"] = parallel_efficiency(one, fig["slices_per_s"], int(level))
    top = str(max(jobs_levels))
    return {
        "pipeline": [step["name"] for step in pipeline.canonical()],
        "format": defaults.format,
        "backend": defaults.backend,
        "series": n_series,
        "slices": n_slices,
        "input_bytes": n_bytes,
        "jobs": levels,
        "parallel_efficiency": levels[top]["efficiency"],
        "speedup_all": levels[top]["slices_per_s"] / one,
    }
