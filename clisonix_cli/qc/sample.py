"""The slices QC measures: a fixed, evenly spaced sample of the first volume of a stack.

Metrics are computed on at most 16 whole slices (about one in 16, at least 8 or all of
them), evenly spaced from the first to the last, always including the central slice
(the thumbnail): millions of pixels, plenty for the statistics, at a small share of the
cost of reading the series. The indices depend only on the number of slices, so ``clisonix qc``
(which reads only the sampled files) and ``clisonix transform --qc`` (which picks them
from the volume it already holds, or as its slices stream past) measure the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.colour import is_rgb, to_channels
from clisonix_cli.dicom.model import Stack, Volume
from clisonix_cli.dicom.volume import StackStream, load_stack
from clisonix_cli.errors import ClisonixError, InputError

MIN_SLICES = 8
MAX_SLICES = 16
EVERY = 16


def sample_indices(n: int) -> tuple[int, ...]:
    """Sorted slice indices to measure out of ``n`` (always holding ``n // 2``)."""
    if n <= 0:
        return ()
    k = min(n, max(MIN_SLICES, min(MAX_SLICES, math.ceil(n / EVERY))))
    if k >= n:
        return tuple(range(n))
    picks = {round(i * (n - 1) / (k - 1)) for i in range(k)}
    if n // 2 not in picks:  # swap the nearest pick for the centre
        nearest = min(picks, key=lambda i: (abs(i - n // 2), i))
        picks = (picks - {nearest}) | {n // 2}
    return tuple(sorted(picks))


@dataclass(frozen=True)
class Sample:
    """Real values of the sampled slices and what the metrics need to read them.

    ``data`` is (K, R, C) float32 (stored * slope + intercept, in float64 then rounded);
    ``indices`` their slice numbers out of ``n_slices`` (volume 0); ``centre`` the position
    of slice ``n_slices // 2`` in ``data``.
    """

    data: np.ndarray
    indices: tuple[int, ...]
    n_slices: int

    @property
    def centre(self) -> int:
        """Index into ``data`` of the central slice."""
        return self.indices.index(self.n_slices // 2)


def _real(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Real values in float32; colour (RGB) becomes its luma, 0.299 R + 0.587 G + 0.114 B
    (ITU-R BT.601), the greyscale QC measures."""
    if is_rgb(stored.dtype):
        rgb = to_channels(stored).astype(np.float64)
        stored = rgb @ np.array([0.299, 0.587, 0.114])
    return (stored.astype(np.float64) * slope + intercept).astype(np.float32)


def from_volume(vol: Volume) -> Sample:
    """The sample of a volume already in memory (``transform --qc``: no second read)."""
    data = vol.data if vol.data.ndim == 3 else vol.data[0]
    idx = sample_indices(int(data.shape[0]))
    return Sample(_real(data[list(idx)], vol.slope, vol.intercept), idx, data.shape[0])


class StreamTap:
    """Keeps the sampled slices of a :class:`StackStream` as the writer reads its slabs."""

    def __init__(self, stream: StackStream) -> None:
        self.stream = stream
        n = stream.shape[-3]
        self.n = n
        self.indices = sample_indices(n)
        self._want = set(self.indices)
        self._kept: dict[int, np.ndarray] = {}

    def tapped(self) -> StackStream:
        """A stream with the same slabs, copying the sampled slices on the way."""
        return replace(self.stream, _source=self._slabs)

    def _slabs(self) -> Iterator[np.ndarray]:
        pos = 0  # index of the next slice in C order (volumes, then slices)
        for slab in self.stream.slabs():
            for j in range(slab.shape[0]):
                if pos + j < self.n and pos + j in self._want:
                    self._kept[pos + j] = np.array(slab[j])
            pos += slab.shape[0]
            yield slab

    def sample(self) -> Sample:
        """The sample, once the writer has read every slab."""
        if len(self._kept) != len(self.indices):
            raise InputError("the stream ended before every sampled slice was read")
        data = np.stack([self._kept[i] for i in self.indices])
        st = self.stream
        return Sample(_real(data, st.slope, st.intercept), self.indices, self.n)


def read_sample(root: Path, stack: Stack) -> Sample:
    """Read only the sampled slices of a stack (``clisonix qc``).

    Plain one-frame-per-file stacks read just the sampled files, geometry or not (a
    projection image, a stack with a gap); mosaics and enhanced objects are read whole.
    Files whose geometry the scan could not use keep their stored values.

    Raises
    ------
    InputError
        The pixels cannot be read (the error of the reader, with its code).
    """
    from clisonix_cli.dicom.pixels import read_frames

    if stack.kind != "slices" or stack.frames:
        return from_volume(load_stack(root, stack))
    n = stack.n_slices if stack.n_volumes * stack.n_slices == len(stack.files) else (
        len(stack.files))  # fmt: skip
    idx = sample_indices(n)
    geo = stack.geometry
    slices = []
    for i in idx:
        rel = stack.files[i]
        info = stack.pixels[i] if stack.pixels else None
        try:
            stored = read_frames(root / rel, frames=[0], info=info, label=rel)[0]
        except ClisonixError:
            raise
        except OSError as exc:
            raise InputError(
                f"{rel}: cannot read pixel data ({exc.strerror})"
            ) from None
        if geo is not None and len(geo.rescale) == len(stack.files):
            slope, inter = geo.rescale[i]
        else:
            slope, inter = 1.0, 0.0
        slices.append(_real(stored, slope, inter))
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise InputError(f"sampled slices differ in size ({sorted(shapes)})")
    return Sample(np.stack(slices), idx, n)


def slice_positions(stack: Stack) -> np.ndarray | None:
    """Positions of volume 0's slices along the normal (mm), or None without geometry."""
    geo = stack.geometry
    if geo is None or stack.kind != "slices" or stack.frames:
        return None
    n = stack.n_slices
    if len(geo.positions) < n or n < 2:
        return None
    row = np.asarray(geo.orientation[:3], dtype=np.float64)
    col = np.asarray(geo.orientation[3:6], dtype=np.float64)
    normal = np.cross(row, col)
    return np.asarray(geo.positions[:n], dtype=np.float64) @ normal


def spacing_rc(stack: Stack, header: dict[str, Any]) -> tuple[float, float]:
    """Pixel spacing (rows, columns) in mm: the scan's, else the header's, else 1 mm."""
    if stack.geometry is not None:
        return stack.geometry.pixel_spacing
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        val = header.get(key)
        if isinstance(val, list) and len(val) == 2 and min(val) > 0:
            return (float(val[0]), float(val[1]))
    return (1.0, 1.0)
