"""``--peers``: the same work done by tools users already know, timed side by side.

- **dcm2niix** (PyPI package ``dcm2niix``, or any ``dcm2niix`` on PATH): ``dcm2niix -z n``
  converts the workload folder to uncompressed NIfTI; clisonix does the same conversion
  (empty pipeline, ``--format nifti``) with ``--jobs 1`` (dcm2niix converts on one core) and
  with every core.
- **SimpleITK**: the filters that have a clisonix op computing the same thing, on the same
  volume (real values as float32), 1 thread against 1 thread and all cores against all
  cores, with the op's ``examples[0]`` parameters: ``gaussian`` (``SmoothingRecursiveGaussian``,
  sigma in mm), ``median`` (``Median``, radius = size // 2 voxels), ``resample``
  (``Resample``, linear or nearest, to the op's spacing). ``clahe`` is not compared:
  SimpleITK has no CLAHE (see :data:`NOT_COMPARABLE`).

A ratio is ``peer time / clisonix time``: above 1, clisonix is faster. A peer that is not
installed is reported under ``missing`` and the run goes on.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from clisonix_cli.bench.harness import SLOW_S, Progress, time_call, timing_figures
from clisonix_cli.runtime import numba_threads


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


def _fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _run_dcm2niix(exe: Path, src: Path, out: Path) -> None:
    proc = subprocess.run(
        [str(exe), "-z", "n", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = " ".join(proc.stdout.strip().splitlines()[-2:])
        raise RuntimeError(f"dcm2niix exited {proc.returncode}: {tail}")


def dcm2niix_comparison(
    exe: Path,
    root: Path,
    *,
    convert: Callable[[Path, int], None],
    jobs_all: int,
    repeats: int,
    tmp: Path,
) -> dict[str, Any]:
    """Time ``dcm2niix -z n`` and clisonix's pure conversion of ``root``.

    ``convert(out_dir, jobs)`` runs clisonix's conversion into an empty ``out_dir``.
    """
    out = tmp / "peer_dcm2niix"
    t_peer = time_call(
        partial(_run_dcm2niix, exe, root, out),
        repeats=repeats,
        setup=partial(_fresh, out),
    )
    n_nii = len(list(out.glob("*.nii")))
    if n_nii == 0:
        raise RuntimeError(f"dcm2niix wrote no .nii file for {root.name}")
    results: dict[str, Any] = {}
    for jobs in sorted({1, jobs_all}):
        mine = tmp / f"peer_clisonix_{jobs}"
        t_mine = time_call(
            partial(convert, mine, jobs), repeats=repeats, setup=partial(_fresh, mine)
        )
        results[f"conversion_jobs{jobs}"] = {
            "peer": f"dcm2niix {dcm2niix_version(exe)} -z n (1 core)",
            "peer_timing": timing_figures(t_peer),
            "clisonix_timing": timing_figures(t_mine),
            "clisonix_jobs": jobs,
            "ratio": t_peer.median / t_mine.median,
            "peer_outputs": n_nii,
        }
    return results


# --- SimpleITK -----------------------------------------------------------------------------------


def _sitk_image(sitk: Any, img: Any) -> Any:
    """The Image's real values (float32) as a SimpleITK image with its spacing (x=col)."""
    import numpy as np

    real = img.vol.astype(np.float32) * np.float32(img.slope) + np.float32(
        img.intercept
    )
    out = sitk.GetImageFromArray(real)  # numpy (S, R, C) -> ITK (x=C, y=R, z=S)
    s, r, c = img.spacing_mm
    out.SetSpacing((c, r, s))
    return out


def _triple(value: Any) -> tuple[float, float, float]:
    if isinstance(value, list | tuple):
        return (float(value[0]), float(value[1]), float(value[2]))
    return (float(value), float(value), float(value))


def _sitk_gaussian(sitk: Any, image: Any, params: Mapping[str, Any]) -> Any:
    s, r, c = _triple(params["sigma"])  # mm along (S, R, C)
    return sitk.SmoothingRecursiveGaussian(image, (c, r, s))


def _sitk_median(sitk: Any, image: Any, params: Mapping[str, Any]) -> Any:
    half = int(params["size"]) // 2
    return sitk.Median(image, [half, half, 0 if params.get("per_slice") else half])


def _sitk_resample(sitk: Any, image: Any, params: Mapping[str, Any]) -> Any:
    old_spacing, old_size = image.GetSpacing(), image.GetSize()
    s, r, c = _triple(params["spacing"])
    # clisonix: (S, R, C), 0 keeps an axis; ITK: (x=C, y=R, z=S)
    new_spacing = tuple(
        o if n == 0 else n for n, o in zip((c, r, s), old_spacing, strict=True)
    )
    new_size = [
        max(1, round(n * o / ns))
        for n, o, ns in zip(old_size, old_spacing, new_spacing, strict=True)
    ]
    order = params.get("order", "linear")
    interp = sitk.sitkNearestNeighbor if order == "nearest" else sitk.sitkLinear
    return sitk.Resample(
        image,
        new_size,
        sitk.Transform(),
        interp,
        image.GetOrigin(),
        new_spacing,
        image.GetDirection(),
        0.0,
        image.GetPixelID(),
    )


#: Ops with no comparable SimpleITK filter, and why (reported under ``not_compared``).
NOT_COMPARABLE: dict[str, str] = {
    "clahe": "SimpleITK has no CLAHE: AdaptiveHistogramEqualization is a different "
    "(alpha/beta, brute-force) algorithm, about 200x slower here; not compared",
}

#: clisonix op -> (SimpleITK call, SimpleITK filter name)
SITK_FILTERS: dict[str, tuple[Callable[[Any, Any, Mapping[str, Any]], Any], str]] = {
    "gaussian": (_sitk_gaussian, "SmoothingRecursiveGaussian"),
    "median": (_sitk_median, "Median"),
    "resample": (_sitk_resample, "Resample"),
}


def sitk_comparison(
    img: Any,
    ops: Mapping[str, Any],
    *,
    cores: int,
    repeats: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Time each SimpleITK filter that has a clisonix op, against that op's ``apply``."""
    import SimpleITK

    sitk: Any = SimpleITK  # untyped C++ bindings
    image = _sitk_image(sitk, img)
    default_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    results: dict[str, Any] = {}
    try:
        _sitk_runs(sitk, image, img, ops, cores, repeats, results, progress)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default_threads)
    return results


def _sitk_runs(
    sitk: Any,
    image: Any,
    img: Any,
    ops: Mapping[str, Any],
    cores: int,
    repeats: int,
    results: dict[str, Any],
    progress: Progress | None,
) -> None:
    for name, (call, filter_name) in SITK_FILTERS.items():
        op = ops.get(name)
        if op is None:
            continue
        if progress:
            progress(f"peers: SimpleITK {filter_name} vs {name}")
        params = op.bind(dict(op.examples[0]) if op.examples else {})
        for label, threads in (("1t", 1), ("all", cores)):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            t_peer = time_call(
                partial(call, sitk, image, params), repeats=repeats, slow_s=SLOW_S
            )
            with numba_threads(threads):
                t_mine = time_call(partial(op.apply, img, **params), repeats=repeats)
            results[f"{name}_{label}"] = {
                "peer": f"SimpleITK {sitk.Version.VersionString()} {filter_name}, {threads} thread(s)",
                "peer_timing": timing_figures(t_peer),
                "clisonix_timing": timing_figures(t_mine),
                "threads": threads,
                "params": {k: str(v) for k, v in params.items()},
                "ratio": t_peer.median / t_mine.median,
            }


def peers_suite(
    root: Path,
    *,
    img: Any,
    ops: Mapping[str, Any],
    convert: Callable[[Path, int], None],
    cores: int,
    repeats: int,
    tmp: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every installed peer; list the missing ones under ``missing``."""
    section: dict[str, Any] = {"comparisons": {}, "missing": {}}
    exe = find_dcm2niix()
    if exe is None:
        section["missing"]["dcm2niix"] = (
            "not installed: pip install dcm2niix (or put dcm2niix on PATH)"
        )
    else:
        if progress:
            progress("peers: dcm2niix -z n vs clisonix conversion")
        section["comparisons"].update(
            dcm2niix_comparison(
                exe, root, convert=convert, jobs_all=cores, repeats=repeats, tmp=tmp
            )
        )
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        section["missing"]["SimpleITK"] = "not installed: pip install SimpleITK"
    else:
        section["comparisons"].update(
            sitk_comparison(img, ops, cores=cores, repeats=repeats, progress=progress)
        )
        section["not_compared"] = {k: v for k, v in NOT_COMPARABLE.items() if k in ops}
    return section
