"""resize: every slice to a ``rows x cols`` matrix (bilinear), keeping the field of view.

The convention is scikit-image's ``transform.resize(order=1, mode="edge",
anti_aliasing=False, preserve_range=True)`` (scipy ``zoom(grid_mode=True)``): pixel *edges*
are aligned. With ``z = R / rows`` (input rows per output row)::

    x(o)        = (o + 0.5) * z - 0.5, clamped to [0, R - 1]   (edge pixels repeat)
    A'[:3, 1]   = A[:3, 1] * z
    A'[:3, 3]   = A[:3, 3] + A[:3, 1] * (z - 1) / 2

and likewise for the columns, so the field of view (outer pixel edges) is unchanged and the
origin moves to the centre of output pixel (0, 0). No anti-aliasing filter is applied when
shrinking (add a ``gaussian`` before if the target is much coarser). Slices are never
mixed. Works on real values (the pending rescale folded in), float32 out with slope 1 /
intercept 0.

The reference is ``skimage.transform.resize`` per slice with every option above pinned (and
its default ``clip=True``); results differ by a few float32 ulps of the largest input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clisonix_cli.transforms._declare import Op, Param, positive
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import _interp
from clisonix_cli.transforms.ops._real import real_f32, real_f32_reference, with_real


def _geometry(
    shape: tuple[int, ...], affine_lps: np.ndarray, params: Mapping[str, Any]
) -> tuple[tuple[int, ...], np.ndarray]:
    """Output shape and affine of ``resize`` for an input grid."""
    rows, cols = int(params["rows"]), int(params["cols"])
    affine = np.array(affine_lps, dtype=np.float64)
    for axis, n_out in ((1, rows), (2, cols)):
        zoom = shape[axis] / n_out
        affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (0.5 * zoom - 0.5)
        affine[:3, axis] = affine[:3, axis] * zoom
    return (shape[0], rows, cols), affine


def apply(img: Image, *, rows: int, cols: int) -> Image:
    """Resize every slice of ``img`` to ``rows x cols`` (bilinear, edges aligned)."""
    shape, affine = _geometry(
        img.vol.shape, img.affine_lps, {"rows": rows, "cols": cols}
    )
    zooms = (1.0, img.vol.shape[1] / rows, img.vol.shape[2] / cols)
    vol = _interp.linear(
        real_f32(img), (shape[0], shape[1], shape[2]), zooms, half=True
    )
    return with_real(img, vol, affine)


def reference(img: Image, *, rows: int, cols: int) -> Image:
    """scikit-image reference: ``transform.resize`` slice by slice, every option pinned."""
    from skimage.transform import resize as sk_resize

    shape, affine = _geometry(
        img.vol.shape, img.affine_lps, {"rows": rows, "cols": cols}
    )
    real = real_f32_reference(img)
    out = np.empty(shape, dtype=np.float32)
    for s in range(real.shape[0]):
        out[s] = sk_resize(  # type: ignore[no-untyped-call]
            real[s],
            (rows, cols),
            order=1,
            mode="edge",
            cval=0.0,
            clip=True,
            preserve_range=True,
            anti_aliasing=False,
        )
    return with_real(img, out, affine)


# Tolerances: bilinear in float32 (float32 weights, two passes of two products and a sum)
# against skimage's float64 evaluation rounded once to float32 (and clipped to the slice's
# range): a few float32 ulps of the largest |input|; 0.02 covers inputs up to 32768.
OP = Op(
    name="resize",
    version=1,
    family="spatial",
    summary="Resize every slice to rows x cols (bilinear, skimage grid); field of view kept.",
    params=(
        Param("rows", int, "Output rows per slice.", unit="voxels", check=positive),
        Param("cols", int, "Output columns per slice.", unit="voxels", check=positive),
    ),
    apply=apply,
    reference=reference,
    atol=0.02,
    rtol=1e-6,
    examples=({"rows": 16, "cols": 16}, {"rows": 5, "cols": 9}, {"rows": 1, "cols": 3}),
    geometry=_geometry,
)
