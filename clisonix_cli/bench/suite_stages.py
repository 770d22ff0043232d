"""Where the time goes: scan throughput (``scan``) and one series stage by stage (``stages``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench import workload as wl
from clisonix_cli.bench.harness import (
    Gated,
    Progress,
    Timing,
    rate,
    time_rounds,
    timing_figures,
)


def gated(t: Timing, level: str, **kw: Any) -> dict[str, Any]:
    """Timing figures of clisonix's own in-process work, judged by ``--compare``."""
    return {**timing_figures(t, **kw), "timing": "in-process", "calibrate": level}


Yardstick = Callable[[str], Callable[[], float]]


def scan_suite(
    root: Path,
    *,
    repeats: int,
    min_time_s: float = 0.0,
    yardstick: Yardstick | None = None,
) -> dict[str, Any]:
    """Files per second of :func:`clisonix_cli.dicom.index.scan` over the whole workload."""
    from clisonix_cli.dicom.index import scan

    result = scan(root)
    probe = yardstick("1t") if yardstick else None
    t = time_rounds(
        [Gated("scan", lambda: scan(root), yardstick=probe)],
        repeats=repeats,
        min_time_s=min_time_s,
    )["scan"]
    return {
        "files": result.n_files,
        "dicom_files": result.n_dicom,
        "stacks": len(result.stacks),
        "scan": gated(t, "1t"),
        "files_per_s": rate(result.n_files, t.median),
    }


def stage_suite(
    *,
    syntax_series: Mapping[str, tuple[Path, Sequence[str] | None]],
    pipeline: Any,
    tmp: Path,
    repeats: int,
    min_time_s: float = 0.0,
    progress: Progress | None = None,
    yardstick: Yardstick | None = None,
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

    calls: list[Gated] = []

    def gate(key: str, func: Callable[[], object], level: str) -> None:
        probe = yardstick(level) if yardstick else None
        calls.append(Gated(key, func, yardstick=probe))

    found: dict[str, tuple[Path, Any]] = {}
    for label, (root, files) in syntax_series.items():
        paths = [Path(f) for f in files] if files is not None else None
        stack = wl.largest_stack(scan(root, files=paths))
        if stack is None:
            continue
        if not found:
            gate("scan", partial(scan, root, files=paths), "1t")
        gate(f"read:{label}", partial(load_stack, root, stack), "all")
        found[label] = (root, stack)
    if not found:
        raise RuntimeError("no image stack found for the stage breakdown")
    root, stack = next(iter(found.values()))
    vol = load_stack(root, stack)
    data = vol.data[0] if vol.data.ndim == 4 else vol.data
    img0 = Image(
        vol=data, affine_lps=vol.affine_lps, slope=vol.slope, intercept=vol.intercept
    )
    img = img0
    op_voxels: dict[str, int] = {}
    for k, step in enumerate(pipeline.steps):
        op, params = step.op, dict(step.params)
        key = f"{k + 1}:{op.name}"
        gate(f"op:{key}", partial(op.apply, img, **params), "all")
        op_voxels[key] = int(img.vol.size)
        img = op.apply(img, **params)
    gate("pipeline_run", partial(pipeline.run, img0), "all")
    final = pipeline.run(img0)
    targets = {"nii": tmp / "stage_write.nii", "nii_gz": tmp / "stage_write.nii.gz"}
    for key, target in targets.items():
        write = partial(
            write_nifti,
            target,
            final.vol,
            final.affine_lps,
            slope=final.slope,
            intercept=final.intercept,
            sidecar=vol.meta,
        )
        gate(f"write:{key}", write, "1t")
    if progress:
        progress(f"stages: {len(calls)} stage(s) of one series, in rounds")
    t = time_rounds(calls, repeats=repeats, min_time_s=min_time_s)

    section: dict[str, Any] = {"series_slices": int(data.shape[0])}
    section["scan"] = {**gated(t["scan"], "1t"), "files": len(stack.files)}
    read: dict[str, Any] = {}
    for label, (r, st) in found.items():
        t_read = t[f"read:{label}"]
        n = st.n_slices * st.n_volumes
        nbytes = sum((r / f).stat().st_size for f in st.files)
        read[label] = {
            **gated(t_read, "all"),
            "transfer_syntax": st.transfer_syntax,
            "slices": n,
            "slices_per_s": rate(n, t_read.median),
            "mb_per_s": rate(nbytes, t_read.median) / 1e6,
        }
    section["read_decode"] = read
    section["ops"] = {
        key: gated(t[f"op:{key}"], "all", voxels=n) for key, n in op_voxels.items()
    }
    t_pipe = t["pipeline_run"]
    section["pipeline_run"] = gated(t_pipe, "all", voxels=int(img0.vol.size))
    writes: dict[str, Any] = {}
    for key, target in targets.items():
        t_w = t[f"write:{key}"]
        written = target.stat().st_size
        writes[key] = {
            **gated(t_w, "1t"),
            "bytes": written,
            "mb_per_s": rate(written, t_w.median) / 1e6,
        }
    section["write"] = writes

    first_label = next(iter(read))
    parts = {
        "scan": t["scan"].median,
        "read_decode": read[first_label]["median_ms"] / 1e3,
        "ops": t_pipe.median,
        "write": writes["nii"]["median_ms"] / 1e3,
    }
    total = sum(parts.values())
    section["share"] = {f"{k}_fraction": v / total for k, v in parts.items()}
    section["share_basis"] = f"{first_label} read, pipeline as run, .nii write"
    section["total_ms"] = total * 1e3
    return section


def stage_inputs(
    data: Path | None, *, quick: bool, cores: int, tmp: Path, notes: dict[str, Any]
) -> dict[str, tuple[Path, Sequence[str] | None]]:
    """One series per transfer syntax for the stage suite (synthesized, or the user's).

    A syntax that cannot be synthesized here (e.g. no JPEG 2000 encoder) is left out with
    a line in ``notes``.
    """
    if data is not None:
        return user_syntax_series(data)
    series: dict[str, tuple[Path, Sequence[str] | None]] = {}
    n = wl.e2e_shape(quick=quick, cores=cores).slices
    for syntax in ("explicit", "rle", "j2k"):
        folder = tmp / f"stage_{syntax}"
        try:
            wl.synthesize_ct(folder, patients=1, series=1, slices=n, syntax=syntax)
        except Exception as exc:  # noqa: BLE001 - e.g. no JPEG 2000 encoder installed
            notes[f"stages.{syntax}"] = f"not measured: {type(exc).__name__}: {exc}"
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
