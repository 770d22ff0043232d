"""matrix: contract the last voxel axis (columns) with a weights matrix.

For a volume ``x`` of shape (S, R, C) and weights ``W`` of shape (C, K)::

    y[s, r, k] = sum_c x[s, r, c] * W[c, k]          shape (S, R, K), float32

Each row of every slice is multiplied by ``W``; real values (``vol * slope + intercept``)
are multiplied. The weights come from:

- ``path=weights.npy``: a 2-D real array saved with ``numpy.save`` (no pickles). It is read
  and hashed when the pipeline is validated; its sha256 is stored in the canonical pipeline
  (parameter ``sha256``), so a different file gives a different pipeline hash. Giving
  ``sha256=`` pins the file (validation fails if it differs); a file that changes after
  validation fails the task (CLX-E130).
- ``preset``, built for the volume's C: ``identity`` (C x C), ``mean`` (C x 1, each row
  averaged) or ``reverse`` (C x C, columns in reverse order).

A volume whose C differs from the weights' rows fails that task (CLX-E130), naming both
sizes. The product runs as one BLAS ``sgemm`` call from a numba kernel on the (S*R, C)
view: float32 in, float32 out, float32 accumulation (relative error about ``C * 2^-24`` of
``sum |x * w|``). Reference: numpy float64 ``matmul``.

Geometry: the affine is returned **unchanged**. Output column ``k`` is a feature index, not a
position, so no column spacing or direction would be right in general; a caller that uses
``matrix`` as a resampling along columns (K positions) must set the affine itself (column
2 scaled by C / K for an evenly spread resampling).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.errors import (
    MissingParameterError,
    ParameterRangeError,
    TransformFailedError,
)
from clisonix_cli.transforms._declare import Op, Param, kernel
from clisonix_cli.transforms.fuse import map_volume, start_clamp
from clisonix_cli.transforms.image import Image

PRESETS = ("identity", "mean", "reverse")


@functools.lru_cache(maxsize=8)
def _load(path: str, sha256: str) -> np.ndarray:
    """Weights from ``path`` as C-contiguous float32 (C, K), checked against ``sha256``."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise TransformFailedError(
            f"op 'matrix': {Path(path).name} changed since the pipeline was validated "
            f"(sha256 {digest[:12]}..., expected {sha256[:12]}...); re-run with the new file"
        )
    return _as_weights(Path(path))


def _as_weights(path: Path) -> np.ndarray:
    w = np.load(path, allow_pickle=False)
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise ValueError(
            f"holds a {w.ndim}-D {w.dtype} array, expected 2-D real numbers"
        )
    if not np.isfinite(w).all():
        raise ValueError("holds NaN or infinite weights")
    return np.ascontiguousarray(w, dtype=np.float32)


def preset_weights(preset: str, cols: int) -> np.ndarray:
    """The (C, K) float32 weights of a preset for a volume with ``cols`` columns."""
    if preset == "identity":
        return np.eye(cols, dtype=np.float32)
    if preset == "mean":
        return np.full((cols, 1), 1.0 / cols, dtype=np.float32)
    return np.ascontiguousarray(np.eye(cols, dtype=np.float32)[::-1])


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    path, preset, sha = params["path"], params["preset"], params["sha256"]
    if (path is None) == (preset is None):
        raise MissingParameterError(
            "op 'matrix': give exactly one of path= (a .npy of shape (C, K)) or preset= "
            f"({', '.join(PRESETS)})"
        )
    if preset is not None:
        if sha is not None:
            raise ParameterRangeError(
                "op 'matrix' parameter 'sha256': only used with path=; remove it"
            )
        return params
    p = Path(path)
    try:
        data = p.read_bytes()
        _as_weights(p)
    except OSError as exc:
        raise ParameterRangeError(
            f"op 'matrix' parameter 'path': cannot read {path!r} ({exc.strerror}); "
            "give the path of a .npy file"
        ) from None
    except ValueError as exc:
        raise ParameterRangeError(
            f"op 'matrix' parameter 'path': {p.name} {exc}; save a (C, K) array with "
            "numpy.save"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if sha is not None and sha != digest:
        raise ParameterRangeError(
            f"op 'matrix' parameter 'sha256': {p.name} has sha256 {digest}, not {sha}; "
            "the weights file changed"
        )
    return {**params, "sha256": digest}


def weights_for(params: dict[str, Any], cols: int) -> np.ndarray:
    """The weights an (already resolved) parameter set means for ``cols`` columns."""
    if params["preset"] is not None:
        return preset_weights(params["preset"], cols)
    return _load(params["path"], params["sha256"])


@kernel()
def _matmul(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """(N, C) float32 @ (C, K) float32 -> preallocated (N, K) float32 (BLAS sgemm)."""
    np.dot(x, w, out)


def contract(vol: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``vol @ w`` over the last axis for float32 ``vol`` (any leading shape), float32."""
    x = np.ascontiguousarray(vol, dtype=np.float32)
    w32 = np.ascontiguousarray(w, dtype=np.float32)
    if x.shape[-1] != w32.shape[0]:
        raise TransformFailedError(
            f"op 'matrix': the volume has {x.shape[-1]} columns but the weights have "
            f"{w32.shape[0]} rows; the weights must be (C, K) with C = {x.shape[-1]}"
        )
    out = np.empty((*x.shape[:-1], w32.shape[1]), dtype=np.float32)
    n = int(np.prod(x.shape[:-1]))
    if n and w32.shape[1] and w32.shape[0]:
        _matmul(x.reshape(n, x.shape[-1]), w32, out.reshape(n, w32.shape[1]))
    elif n and w32.shape[1]:
        out.fill(0.0)
    return out


def apply(img: Image, **params: Any) -> Image:
    """``img`` real values contracted with the weights along columns; affine unchanged."""
    p = {"path": None, "preset": None, "sha256": None, **params}
    if p["sha256"] is None or set(p) != {"path", "preset", "sha256"}:
        p = OP.bind(params)  # not bound yet (direct call): validate and hash the file
    # bound: a file that changed since validation fails this task (TransformFailedError)
    real = map_volume(img.vol, start_clamp(img), "float32")
    w = weights_for(p, real.shape[-1])
    return Image(contract(real, w), img.affine_lps, slope=1.0, intercept=0.0)


def reference(img: Image, **params: Any) -> Image:
    """numpy float64 ``matmul`` of the real values with the weights."""
    p = OP.bind(params)
    real = img.vol.astype(np.float64) * img.slope + img.intercept
    w = weights_for(p, real.shape[-1]).astype(np.float64)
    return Image(
        (real @ w).astype(np.float32), img.affine_lps, slope=1.0, intercept=0.0
    )


# rtol 1e-5, atol 1e-3: float32 sgemm accumulates C products in float32 (relative error
# <= C * 2^-24 of sum |x * w|); with C <= 12 in the property tests and |x| <= 3000 that is
# < 3e-3 absolute at worst, 1e-5 relative typically. The real values are float32 either way.
OP = Op(
    name="matrix",
    version=1,
    family="linalg",
    summary="Contract the last axis with a (C, K) weights matrix (.npy or preset).",
    params=(
        Param("path", str, "A .npy file holding the (C, K) weights.", None),
        Param(
            "preset",
            str,
            "Built-in weights for the volume's C columns.",
            None,
            choices=PRESETS,
        ),
        Param("sha256", str, "sha256 of the .npy file (filled in when omitted).", None),
    ),
    apply=apply,
    reference=reference,
    atol=3e-3,
    rtol=1e-5,
    examples=({"preset": "mean"}, {"preset": "reverse"}, {"preset": "identity"}),
    resolve=_resolve,
)
