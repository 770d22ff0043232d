"""The per-task function: read one stack, run the pipeline per 3-D volume, write, record.

:func:`run_task` runs in a worker (a loky process, a thread, or a Dask worker). It reads its
inputs from the filesystem and writes its outputs itself; only a small record travels back.
Every failure of the task's own making (unreadable input, op failure, write failure) becomes
a ``failed`` record with a stable code; the batch goes on.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clisonix_cli import __version__, runtime
from clisonix_cli.dicom.limits import DEFAULT_LIMITS, DecodeLimits, decode_limits
from clisonix_cli.digest import file_digest, finish, hasher
from clisonix_cli.errors import (
    ClisonixError,
    InputError,
    TaskError,
    TaskTimeoutError,
    TransformFailedError,
    WorkerVersionError,
    WriteFailedError,
)
from clisonix_cli.formats.registry import Provenance, Source, VolumeSource
from clisonix_cli.fsio import confined, is_within
from clisonix_cli.taskarray.plan import Task
from clisonix_cli.taskarray.writers import get_writer

if TYPE_CHECKING:
    from clisonix_cli.dicom.deid.settings import DeidSettings
    from clisonix_cli.dicom.model import Volume
    from clisonix_cli.dicom.parallel_decode import DecodePool
    from clisonix_cli.qc.run import QcTaskOptions
    from clisonix_cli.qc.sample import Sample
    from clisonix_cli.taskarray.deid_transform import Facts
    from clisonix_cli.transforms.pipeline import Pipeline

Record = dict[str, Any]


@dataclass(frozen=True)
class TaskContext:
    """What every task of a run needs, sent with each task (no module globals on workers).

    Parameters
    ----------
    in_dir, out_dir : str
        Absolute paths, the same on every worker (shared filesystem).
    fmt : str
        Output format.
    pipeline : Pipeline
        The validated pipeline.
    pipeline_canonical : list of dict
        ``pipeline.canonical()``, recorded in the manifest and sidecars.
    pipeline_sha256 : str
    version : str
        The driver's clisonix version; a worker with another version refuses the task.
    task_timeout : float or None
        Seconds; checked between the stages of a task.
    numba_threads : int or None
        Threads for numba kernels in this task; None leaves numba's default.
    host_threads : dict
        Dask only: host -> worker threads on that host, to size numba threads per task.
    limit_blas : bool
        Limit BLAS to one thread around the task (process executors).
    gaps : str
        ``--gaps`` (recorded in each record when not the default ``split``).
    decode_workers : int
        Worker processes the task may decode its compressed files on (its share of
        ``--jobs`` when it runs in the driver); 0 decodes in the task's own process.
    qc : QcTaskOptions or None
        ``--qc``: measure the series from the pixels the task reads (no second read) and
        put the result under ``"qc"`` in its record.
    deid : DeidSettings or None
        De-identify (``transform --deidentify``, ``deid``): records, names and messages
        carry keyed tokens and new UIDs, never input paths or original identifiers.
    decode_limits : DecodeLimits
        The decoding caps of the run (``--max-decode-ratio``, ``--max-decoded-mib``).
    """

    in_dir: str
    out_dir: str
    fmt: str
    pipeline: Pipeline
    pipeline_canonical: list[dict[str, Any]]
    pipeline_sha256: str
    version: str = __version__
    task_timeout: float | None = None
    numba_threads: int | None = None
    host_threads: Mapping[str, int] = field(default_factory=dict)
    limit_blas: bool = True
    gaps: str = "split"
    decode_workers: int = 0
    qc: QcTaskOptions | None = None
    deid: DeidSettings | None = None
    decode_limits: DecodeLimits = DEFAULT_LIMITS


@dataclass(frozen=True)
class TaskOutcome:
    """What travels back to the driver: the manifest record plus run-log facts."""

    record: Record
    seconds: float
    worker: str


def base_record(task: Task, ctx: TaskContext) -> Record:
    """Fields every record of a task carries, whatever its status.

    Parameters
    ----------
    task : Task
        The task the record describes (its stack gives the UIDs and inputs).
    ctx : TaskContext
        The run (format and pipeline recorded).

    Returns
    -------
    dict
        The record with no ``status`` yet, ``inputs_digest`` None and no outputs.
    """
    st = task.stack
    rec: Record = {
        "task": task.task_id,
        "study_uid": st.study_uid,
        "series_uid": st.series_uid,
        "stack_key": st.stack_key,
        "series_number": st.series_number,
        "modality": st.modality,
        "inputs": list(st.files),
        "inputs_digest": None,
        "format": ctx.fmt,
        "pipeline": ctx.pipeline_canonical,
        "pipeline_sha256": ctx.pipeline_sha256,
        "outputs": [],
        "env": {"clisonix": __version__},
    }
    if st.frames:
        rec["frames"] = list(st.frames)
    if st.geometry_kind:
        rec["geometry"] = st.geometry_kind
    if st.colour:
        rec["colour"] = st.colour
    if ctx.gaps != "split":
        rec["gaps"] = ctx.gaps
    if ctx.deid is not None:
        from clisonix_cli.taskarray.deid_records import deidentified_record

        return deidentified_record(rec, task, ctx.deid)
    return rec


def failed_record(
    task: Task,
    ctx: TaskContext,
    err: ClisonixError,
    *,
    inputs_digest: str | None = None,
) -> Record:
    """A ``failed`` record with the error's code and one-line message.

    Parameters
    ----------
    task : Task
    ctx : TaskContext
    err : ClisonixError
    inputs_digest : str or None

    Returns
    -------
    dict
    """
    rec = base_record(task, ctx)
    message = err.message
    if ctx.deid is not None:
        message = ctx.deid.scrub(message, task.stack.files)
    rec.update(
        status="failed",
        error={"code": err.code, "message": message},
        inputs_digest=inputs_digest,
    )
    return rec


def inputs_digest(root: Path, files: Sequence[str]) -> str:
    """Digest over the relative names and the digest of every input file, in stack order.

    Parameters
    ----------
    root : Path
        The input folder.
    files : sequence of str
        Relative paths.

    Returns
    -------
    str
        Labelled digest (``"blake3:<hex>"``) of the lines
        ``"<relative path>\\t<labelled digest of the file>\\n"``.
    """
    return combined_digest(files, lambda rel: file_digest(root / rel))


def combined_digest(files: Sequence[str], digest_of: Callable[[str], str]) -> str:
    """The ``inputs_digest`` formula over per-file digests (each file once, in order)."""
    h = hasher()
    for rel in dict.fromkeys(files):  # an enhanced file is listed once per frame
        h.update(f"{rel}\t{digest_of(rel)}\n".encode())
    return finish(h)


def worker_name() -> str:
    """``host:pid`` of the running process (run log only)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Deadline:
    """Checks ``--task-timeout`` between the stages of a task."""

    def __init__(self, task: Task, timeout: float | None) -> None:
        self.task = task
        self.timeout = timeout
        self.start = time.monotonic()

    def check(self, stage: str) -> None:
        if self.timeout is None:
            return
        spent = time.monotonic() - self.start
        if spent > self.timeout:
            raise TaskTimeoutError(
                f"{self.task.describe()}: ran {spent:.1f} s, over --task-timeout "
                f"{self.timeout:g} s ({stage}); raise --task-timeout or split the input"
            )


@contextlib.contextmanager
def _thread_limits(ctx: TaskContext) -> Iterator[None]:
    """Size numba threads for this task, hold BLAS to one thread around it, and set the
    task's CPU budget (gzip threads)."""
    n = (
        runtime.task_numba_threads(ctx.numba_threads, ctx.host_threads)
        if ctx.pipeline_canonical
        else None
    )
    budget = runtime.task_budget(ctx.numba_threads, ctx.host_threads)
    with runtime.task_threads(n, limit_blas=ctx.limit_blas, budget=budget):
        with decode_limits(ctx.decode_limits):  # the run's caps, in this worker too
            yield


def run_task(task: Task, ctx: TaskContext) -> TaskOutcome:
    """Convert one stack: load, run the pipeline per 3-D volume, write, hash, record.

    Parameters
    ----------
    task : Task
        The stack to convert and the output stem under OUT_DIR.
    ctx : TaskContext
        What every task of the run shares (folders, format, pipeline, limits).

    Returns
    -------
    TaskOutcome
        Its record has status ``ok`` (with outputs) or ``failed`` (with an error code).
        Only a worker death keeps it from returning.
    """
    start = time.monotonic()
    digest: str | None = None
    sample: Sample | None = None
    facts: Facts | None = None
    try:
        if ctx.version != __version__:
            raise WorkerVersionError(
                f"worker {worker_name()} runs clisonix {__version__}, the client "
                f"{ctx.version}; install the same version on every worker"
            )
        deadline = _Deadline(task, ctx.task_timeout)
        if ctx.deid is not None:
            from clisonix_cli.taskarray.deid_transform import read_facts

            facts = read_facts(
                Path(ctx.in_dir), task.stack.files, ctx.deid, ctx.out_dir
            )
            if facts.withheld is not None:
                raise facts.withheld
        digests: dict[str, str] = {}
        with _thread_limits(ctx), _decode_pool(task, ctx) as pool:
            slab_out = None  # colour runs channel by channel (_transform_rgb)
            if ctx.pipeline_canonical and not task.stack.colour:
                slab_out = ctx.pipeline.slab_output()
            streams = get_writer(ctx.fmt).streams
            if streams and (not ctx.pipeline_canonical or slab_out is not None):
                # Pure conversion, or a pipeline that maps each voxel on its own: slices
                # stream from the inputs to the output file (transformed slab by slab);
                # the volume is never whole in memory.
                warm = _start_warm_up(task, ctx)
                stream = _open(task, ctx, digests, pool)  # inputs hashed as read
                tap = _tap(stream) if ctx.qc is not None else None
                data: Any = tap.tapped() if tap else stream  # QC sees the stored slices
                slope, intercept = stream.slope, stream.intercept
                if slab_out is not None:
                    data = _SlabPipeline(task, ctx.pipeline, data, slab_out, warm)
                    slope, intercept = data.slope, data.intercept
                try:
                    source = _source(
                        task, ctx, data, stream.meta, stream.affine_lps,
                        slope, intercept, digests, facts,
                    )  # fmt: skip
                    outputs = _write(task, ctx, source, facts)
                except ClisonixError:
                    digest = _hash_inputs_or_none(task, ctx)
                    raise
                digest = _digest_of(task, digests)
                sample = tap.sample() if tap else None
            else:
                warm = _start_warm_up(
                    task, ctx
                )  # kernels load while the files are read
                try:
                    vol = _load(
                        task, ctx, digests, pool
                    )  # inputs hashed as they are read
                except ClisonixError:
                    digest = _hash_inputs_or_none(task, ctx)
                    raise
                digest = _digest_of(task, digests)
                sample = _sample_of(vol) if ctx.qc is not None else None
                deadline.check("after reading")
                if warm is not None:
                    warm.join()
                data, affine, slope, intercept = _transform(task, ctx, vol, deadline)
                deadline.check("before writing")
                source = _source(
                    task, ctx, data, vol.meta, affine, slope, intercept, digests, facts
                )
                outputs = _write(task, ctx, source, facts)
        rec = base_record(task, ctx)
        rec.update(status="ok", error=None, inputs_digest=digest, outputs=outputs)
        if ctx.qc is not None:
            rec["qc"] = _qc_part(task, ctx, ctx.qc, sample, None)
        if facts is not None:
            from clisonix_cli.taskarray.deid_transform import finish_record

            rec = finish_record(rec, task, facts, digests)
    except ClisonixError as exc:
        rec = failed_record(task, ctx, exc, inputs_digest=digest)
        if ctx.qc is not None:
            rec["qc"] = _qc_part(task, ctx, ctx.qc, None, exc)
        if facts is not None:
            from clisonix_cli.taskarray.deid_transform import after_failure

            rec = after_failure(rec, task, ctx.out_dir, exc)
    return TaskOutcome(
        record=rec, seconds=time.monotonic() - start, worker=worker_name()
    )


@contextlib.contextmanager
def _decode_pool(task: Task, ctx: TaskContext) -> Iterator[DecodePool | None]:
    """Worker processes for the task's compressed files, when it has a decode budget.

    Used when the task runs in the driver (a run of one task): its JPEG 2000, JPEG-LS or
    RLE slices decode on ``decode_workers`` processes at once, and a decoder that crashes
    takes down a worker, not the run. Native (uncompressed) stacks need none.
    """
    from clisonix_cli.dicom.syntax import NATIVE_SYNTAXES

    files = set(task.stack.files)
    if ctx.decode_workers < 1 or task.stack.transfer_syntax in NATIVE_SYNTAXES:
        yield None
        return
    from joblib.externals.loky import ProcessPoolExecutor

    from clisonix_cli.dicom.parallel_decode import DecodePool

    workers = max(1, min(ctx.decode_workers, len(files)))
    executor = ProcessPoolExecutor(max_workers=workers, env=runtime.worker_env(workers))
    try:
        yield DecodePool(executor, workers)
    finally:
        executor.shutdown(wait=True)


def _start_warm_up(task: Task, ctx: TaskContext) -> threading.Thread | None:
    """Start loading the pipeline's kernels on a thread (see ``Pipeline.warm_up``).

    In a fresh process the first kernel call loads numba's runtime and the cached kernels
    (0.5-0.7 s of CPU); reading the stack mostly waits on ``readinto`` and hashing, which
    release the GIL, so the two overlap on two cores. The task joins the thread before it
    runs the pipeline: kernels never run on two threads of one task at once.
    """
    st = task.stack
    if not ctx.pipeline_canonical or not st.pixels or st.geometry is None:
        return None
    from clisonix_cli.dicom.pixels_native import native_dtype

    info = st.pixels[0]
    try:
        kind = native_dtype(info.bits_allocated, info.pixel_representation)
    except ClisonixError:
        return None
    geo = st.geometry
    pairs = set(geo.rescale)
    slope, intercept = next(iter(pairs)) if len(pairs) == 1 else (1.0, 0.0)
    if len(pairs) > 1:
        kind = np.dtype(np.float32)  # slices disagree: the reader gives real values
    row_mm, col_mm = geo.pixel_spacing
    spacing = (float(geo.slice_spacing or 1.0), float(row_mm), float(col_mm))
    thread = threading.Thread(
        target=ctx.pipeline.warm_up,
        args=(kind, spacing),
        kwargs={"slope": float(slope), "intercept": float(intercept)},
        name=f"clx-warm-{task.task_id}",
        daemon=True,
    )
    thread.start()
    return thread


class _SlabPipeline:
    """A stack stream transformed slab by slab (``Pipeline.slab_output`` said it may be):
    a :class:`~clisonix_cli.formats.registry.VolumeSource` of the pipeline's output."""

    def __init__(
        self,
        task: Task,
        pipeline: Pipeline,
        stream: Any,
        out: tuple[str, float, float],
        warm: threading.Thread | None,
    ) -> None:
        self.task = task
        self.pipeline = pipeline
        self.stream = stream
        self.dtype = np.dtype(out[0])
        self.slope, self.intercept = float(out[1]), float(out[2])
        self.warm = warm

    @property
    def shape(self) -> tuple[int, ...]:
        """The input's shape: pointwise ops keep it."""
        return tuple(self.stream.shape)

    @property
    def ndim(self) -> int:
        """3 or 4."""
        return len(self.shape)

    def slabs(self) -> Iterator[np.ndarray]:
        """Each input slab through the pipeline (kernels loaded by the warm-up first)."""
        from clisonix_cli.transforms.image import Image

        if self.warm is not None:
            self.warm.join()  # kernels never run on two threads of one task at once
        st = self.stream
        for slab in st.slabs():
            img = Image(slab, st.affine_lps, slope=st.slope, intercept=st.intercept)
            try:
                out = self.pipeline.run(img)
            except ClisonixError as exc:
                raise TransformFailedError(
                    f"{self.task.describe()}: {exc.message}"
                ) from None
            if out.vol.dtype != self.dtype:  # the declared type is what the header says
                raise TransformFailedError(
                    f"{self.task.describe()}: the pipeline gave {out.vol.dtype} slabs, "
                    f"{self.dtype} was expected; this is a bug"
                )
            yield out.vol


def _tap(stream: Any) -> Any:
    from clisonix_cli.qc.sample import StreamTap

    return StreamTap(stream)


def _sample_of(vol: Volume) -> Sample:
    from clisonix_cli.qc.sample import from_volume

    return from_volume(vol)


def _qc_part(
    task: Task,
    ctx: TaskContext,
    opts: QcTaskOptions,
    sample: Sample | None,
    err: ClisonixError | None,
) -> dict[str, Any]:
    """``--qc``: the series' QC part from the slices this task read (never a second
    read of the pixels); a task that failed gets its header and error only."""
    from clisonix_cli.qc.run import failed_part, task_part

    root = Path(ctx.in_dir)
    if err is not None or sample is None:
        return failed_part(
            root, task.stack, opts, err or InputError("no pixels were read")
        )
    return task_part(root, task.stack, opts, sample)


def _hash_inputs(task: Task, ctx: TaskContext) -> str:
    try:
        return inputs_digest(Path(ctx.in_dir), task.stack.files)
    except OSError as exc:
        raise InputError(
            f"{task.describe()}: cannot read an input file to hash it "
            f"({exc.strerror or exc}); check that the input folder is readable here"
        ) from None


def _hash_inputs_or_none(task: Task, ctx: TaskContext) -> str | None:
    try:
        return _hash_inputs(task, ctx)
    except ClisonixError:
        return None


def _digest_of(task: Task, digests: Mapping[str, str]) -> str:
    """``inputs_digest`` from per-file digests gathered while reading."""
    return combined_digest(task.stack.files, digests.__getitem__)


def _open(
    task: Task, ctx: TaskContext, digests: dict[str, str], pool: DecodePool | None
) -> Any:
    from clisonix_cli.dicom.volume import open_stack

    try:
        return open_stack(Path(ctx.in_dir), task.stack, digests=digests, pool=pool)
    except ClisonixError:
        raise
    except Exception as exc:  # a reader bug must not stop the batch
        raise InputError(
            f"{task.describe()}: cannot read the stack ({type(exc).__name__}: {exc})"
        ) from None


def _load(
    task: Task, ctx: TaskContext, digests: dict[str, str], pool: DecodePool | None
) -> Volume:
    from clisonix_cli.dicom.volume import load_stack

    try:
        return load_stack(Path(ctx.in_dir), task.stack, digests=digests, pool=pool)
    except ClisonixError:
        raise
    except MemoryError:
        raise InputError(
            f"{task.describe()}: out of memory while reading "
            f"(about {task.stack.est_bytes / 2**20:.0f} MiB decoded); use fewer --jobs"
        ) from None
    except Exception as exc:  # a reader bug must not stop the batch
        raise InputError(
            f"{task.describe()}: cannot read the stack ({type(exc).__name__}: {exc})"
        ) from None


def _transform(
    task: Task, ctx: TaskContext, vol: Volume, deadline: _Deadline
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Run the pipeline on each 3-D volume; stack 4-D results back along T. Colour
    volumes run channel by channel (:func:`_transform_rgb`)."""
    from clisonix_cli.transforms.image import Image

    data = vol.data
    if data.dtype.names == ("R", "G", "B"):
        return _transform_rgb(task, ctx, vol, deadline)
    volumes = [data] if data.ndim == 3 else [data[t] for t in range(data.shape[0])]
    results: list[Image] = []
    for t, v in enumerate(volumes):
        img = Image(
            vol=np.ascontiguousarray(v),
            affine_lps=np.asarray(vol.affine_lps, dtype=np.float64),
            slope=float(vol.slope),
            intercept=float(vol.intercept),
            display=vol.display,
        )
        try:
            results.append(ctx.pipeline.run(img))
        except TaskError as exc:  # name the series the op failed on
            raise type(exc)(f"{task.describe()}: {exc.message}") from None
        except ClisonixError as exc:
            raise TransformFailedError(f"{task.describe()}: {exc.message}") from None
        except MemoryError:
            raise TransformFailedError(
                f"{task.describe()}: out of memory in the pipeline (volume {t}); "
                "use fewer --jobs"
            ) from None
        except Exception as exc:
            raise TransformFailedError(
                f"{task.describe()}: pipeline failed on volume {t} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if len(volumes) > 1:
            deadline.check(f"after volume {t + 1} of {len(volumes)}")
    first = results[0]
    for t, r in enumerate(results[1:], start=1):
        same = (
            r.vol.shape == first.vol.shape
            and r.vol.dtype == first.vol.dtype
            and np.array_equal(r.affine_lps, first.affine_lps)
            and (r.slope, r.intercept) == (first.slope, first.intercept)
        )
        if not same:
            raise TransformFailedError(
                f"{task.describe()}: the pipeline gave volume {t} another shape, type, "
                "geometry or scaling than volume 0; a 4-D output needs them equal"
            )
    out = first.vol if data.ndim == 3 else np.stack([r.vol for r in results])
    return out, first.affine_lps, float(first.slope), float(first.intercept)


def _transform_rgb(
    task: Task, ctx: TaskContext, vol: Volume, deadline: _Deadline
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The pipeline on each of R, G and B; the channels keep their unsigned type (a
    spatial op's float output is rounded and clipped back), then join as RGB again."""
    import dataclasses

    data = vol.data
    base = data.dtype.fields["R"][0]  # type: ignore[index]
    top = float(np.iinfo(base).max)
    parts = []
    for name in ("R", "G", "B"):
        chan = dataclasses.replace(vol, data=np.ascontiguousarray(data[name]))
        out, affine, _, _ = _transform(task, ctx, chan, deadline)
        if out.dtype.kind == "f":
            out = np.clip(np.rint(np.nan_to_num(out)), 0.0, top).astype(base)
        elif out.dtype.kind in "iub" and out.dtype != base:
            out = np.clip(out, 0, top).astype(base)
        parts.append(out)
    rgb = np.stack(parts, axis=-1)
    joined = np.ascontiguousarray(rgb).view(
        np.dtype([("R", rgb.dtype), ("G", rgb.dtype), ("B", rgb.dtype)])
    )
    return joined.reshape(rgb.shape[:-1]), affine, 1.0, 0.0


def _source(
    task: Task,
    ctx: TaskContext,
    data: np.ndarray | VolumeSource,
    meta: Mapping[str, Any],
    affine: np.ndarray,
    slope: float,
    intercept: float,
    input_digests: Mapping[str, str],
    facts: Facts | None = None,
) -> Source:
    """What the writer writes. Its sidecar is built once the data are written: a streamed
    source fills ``input_digests`` as the writer reads it. With ``facts`` (a de-identifying
    run) the acquisition fields, the series UID and the inputs' digest are de-identified."""
    series_uid = task.series_uid
    if facts is not None:
        from clisonix_cli.taskarray.deid_records import keyed_inputs, new_uid

        meta = facts.meta(meta)
        series_uid = new_uid(facts.settings, series_uid)

    def sidecar() -> dict[str, Any]:
        if facts is None:
            digest = _digest_of(task, input_digests)
        else:
            digest = keyed_inputs(facts.settings, task.stack.files, input_digests)[1]
        return _sidecar(task, ctx, meta, data.shape, affine, digest)

    provenance = Provenance(
        series_uid=series_uid,
        stack_key=task.stack.stack_key,
        pipeline=ctx.pipeline_canonical,
        pipeline_sha256=ctx.pipeline_sha256,
        deid=None if facts is None else facts.dicom_fields(),
    )
    return Source(data, affine, slope, intercept, meta, sidecar, provenance)


def _sidecar(
    task: Task,
    ctx: TaskContext,
    meta: Mapping[str, Any],
    shape: tuple[int, ...],
    affine: np.ndarray,
    digest: str,
) -> dict[str, Any]:
    """The reader's sidecar fields, updated to the output grid, plus provenance."""
    side = dict(meta)
    if "Shape" in side:
        side["Shape"] = [int(n) for n in shape]
    if "VoxelSpacing" in side:
        spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
        side["VoxelSpacing"] = [round(float(v), 6) for v in spacing]
    side["Clisonix"] = {
        "version": __version__,
        "task": task.task_id,
        "inputs_digest": digest,
        "pipeline": ctx.pipeline_canonical,
        "pipeline_sha256": ctx.pipeline_sha256,
    }
    return side


def _write(
    task: Task, ctx: TaskContext, source: Source, facts: Facts | None = None
) -> list[dict[str, Any]]:
    writer = get_writer(ctx.fmt)
    out_dir = Path(ctx.out_dir)
    stage = None
    if facts is not None:  # written aside, then guarded and renamed into place
        from clisonix_cli.taskarray.deid_transform import staging_dir

        stage = staging_dir(out_dir, task.task_id)
    target = (stage or out_dir) / (task.out_stem + writer.suffix)
    if not is_within(target, out_dir):
        raise WriteFailedError(
            f"{task.describe()}: output name {task.out_stem!r} resolves outside OUT_DIR; "
            "refusing to write (a symbolic link in OUT_DIR may point elsewhere)"
        )
    digests: dict[Path, str] = {}
    try:
        with confined(out_dir):  # every file and folder checked before it is written
            paths = writer.write(target, source, digests)
    except ClisonixError:
        raise
    except OSError as exc:
        raise WriteFailedError(
            f"{task.describe()}: cannot write {target.relative_to(out_dir).as_posix()} "
            f"({exc.strerror or exc}); check free space and permissions in OUT_DIR"
        ) from None
    except Exception as exc:
        raise WriteFailedError(
            f"{task.describe()}: writing {ctx.fmt} failed ({type(exc).__name__}: {exc})"
        ) from None
    if facts is not None and stage is not None:
        staged = sorted(set(paths))
        paths = facts.release(staged, stage, out_dir)
        digests = {
            final: digests[old]
            for old, final in zip(staged, paths, strict=True)
            if old in digests
        }
    outputs = []
    for p in sorted(set(paths)):
        if not is_within(p, out_dir):
            raise WriteFailedError(
                f"{task.describe()}: the writer returned {p}, outside OUT_DIR"
            )
        outputs.append(
            {
                "path": p.resolve().relative_to(out_dir.resolve()).as_posix(),
                "digest": digests.get(p) or file_digest(p),
                "bytes": p.stat().st_size,
            }
        )
    return outputs
