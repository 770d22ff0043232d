"""Load one indexed stack as a volume: stored values plus the (s, r, c) -> LPS affine.

Nothing is parsed again: the :class:`~clisonix_cli.dicom.model.Stack` from the scan carries the
file order, pixel layout (offsets of native pixel data), positions, orientation, spacing and
rescale values. Pixels come from :func:`clisonix_cli.dicom.pixels.read_frames`.

Two ways to read, with the same values:

- :func:`load_stack` allocates the whole (S, R, C) array once and reads every native file
  straight into its slot (no per-slice arrays, no stacking copy): for pipelines of ops.
- :func:`open_stack` checks the stack and returns a :class:`StackStream` that reads a few
  slices at a time into one reused buffer: pure conversion writes each slab as it comes and
  never holds the volume (a worker's memory no longer grows with the series size).

Both can hash every input file from the same reads (``digests=``), for the manifest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from clisonix_cli.dicom.display import apply_modality_lut, read_sequences
from clisonix_cli.dicom.geometry import mosaic_affine, mosaic_grid, slice_affine
from clisonix_cli.dicom.model import PixelInfo, Stack, StackGeometry, Volume
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.dicom.pixels_native import native_dtype, native_fast_path
from clisonix_cli.digest import finish, hasher
from clisonix_cli.errors import (
    ClisonixError,
    GeometryError,
    InconsistentStackError,
    InputError,
    by_code,
)

if TYPE_CHECKING:
    from clisonix_cli.dicom.parallel_decode import DecodePool, FileItem

__all__ = [
    "SLAB_BYTES",
    "StackStream",
    "load_stack",
    "open_stack",
    "stack_label",
    "unpack_mosaic",
]


def stack_label(stack: Stack) -> str:
    """How messages name a stack: its first file (and how many more), series and stack key.

    e.g. ``a/IM1 (+1 more; series ?, stack 1)``; paths are relative to the scan root.
    """
    first = stack.files[0] if stack.files else "?"
    more = len(set(stack.files)) - 1
    extra = f"+{more} more; " if more > 0 else ""
    num = stack.series_number if stack.series_number is not None else "?"
    return f"{first} ({extra}series {num}, stack {stack.stack_key})"


def _error_class(code: str) -> type[InputError]:
    cls = by_code(code)
    return cls if cls is not None and issubclass(cls, InputError) else InputError


def unpack_mosaic(frame: np.ndarray, n_tiles: int) -> np.ndarray:
    """Cut a Siemens mosaic frame into its tiles.

    Parameters
    ----------
    frame : (R, C) ndarray
        The mosaic as stored.
    n_tiles : int
        NumberOfImagesInMosaic; the tiles fill a ``ceil(sqrt(n))`` square grid row by row.

    Returns
    -------
    (n_tiles, R / m, C / m) ndarray
        Tile ``k`` is grid row ``k // m``, grid column ``k % m``.
    """
    per_side, tile_rows, tile_cols = mosaic_grid(
        frame.shape[0], frame.shape[1], n_tiles
    )
    used = frame[: per_side * tile_rows, : per_side * tile_cols]  # padding dropped
    tiles = used.reshape(per_side, tile_rows, per_side, tile_cols).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(
        tiles.reshape(per_side * per_side, tile_rows, tile_cols)[:n_tiles]
    )


def _read_entries(
    root: Path, stack: Stack, digests: MutableMapping[str, str] | None = None
) -> list[np.ndarray]:
    """One (R, C) frame per entry of ``stack.files``, each file opened once (mosaics)."""
    out: list[np.ndarray | None] = [None] * len(stack.files)
    if stack.frames:
        by_file: dict[str, list[int]] = defaultdict(list)
        for i, rel in enumerate(stack.files):
            by_file[rel].append(i)
        for rel in sorted(by_file):
            idx = by_file[rel]
            info = stack.pixels[idx[0]] if stack.pixels else None
            h = _hasher(digests)
            arr = read_frames(
                root / rel,
                frames=[stack.frames[i] for i in idx],
                info=info,
                label=rel,
                sha256=h,
            )
            _record(digests, rel, h)
            for k, i in enumerate(idx):
                out[i] = arr[k]
    else:
        for i, rel in enumerate(stack.files):
            info = stack.pixels[i] if stack.pixels else None
            h = _hasher(digests)
            arr = read_frames(root / rel, frames=[0], info=info, label=rel, sha256=h)
            _record(digests, rel, h)
            out[i] = arr[0]
    return [a for a in out if a is not None]


def _hasher(digests: MutableMapping[str, str] | None) -> Any:
    return None if digests is None else hasher()


def _record(digests: MutableMapping[str, str] | None, rel: str, h: Any) -> None:
    if digests is not None and h is not None:
        digests[rel] = finish(h)


def _check_frames(
    frames: list[np.ndarray], stack: Stack, shape: tuple[int, int]
) -> None:
    for rel, f in zip(stack.files, frames, strict=True):
        _check_frame(rel, f.shape, f.dtype, stack, shape, frames[0].dtype)


def _check_frame(
    rel: str,
    got: tuple[int, ...],
    dtype: np.dtype[Any],
    stack: Stack,
    shape: tuple[int, ...],
    first: np.dtype[Any],
) -> None:
    if tuple(got) != tuple(shape):
        raise InconsistentStackError(
            f"{rel}: frame is {got[0]}x{got[1]}, expected {shape[0]}x{shape[1]} "
            f"like the rest of {stack_label(stack)} - the file changed since the scan; "
            "scan again"
        )
    if dtype != first:
        raise InconsistentStackError(
            f"{rel}: stored values are {dtype}, expected {first} like the "
            f"rest of {stack_label(stack)} - mixed pixel formats in one stack"
        )


def _direct_dtype(
    info: PixelInfo | None, shape: tuple[int, int]
) -> np.dtype[Any] | None:
    """The stored type when ``read_frames`` reads this file straight into an array slot."""
    if info is None or not native_fast_path(info) or (info.rows, info.cols) != shape:
        return None
    if info.bits_allocated == 1:
        return None
    return native_dtype(info.bits_allocated, info.pixel_representation)


def _read_stack(
    root: Path,
    stack: Stack,
    digests: MutableMapping[str, str] | None = None,
    pool: DecodePool | None = None,
) -> np.ndarray:
    """All entries of a plain or enhanced stack as one (N, R, C) array, filled in place.

    The array is allocated once, after the first file shows the stored type; native files
    are read straight into their slot (no per-slice array, no stacking copy); anything else
    is decoded and copied in, with the same checks as before (shape and type of every
    frame against the first). With a ``pool``, the files that are not read straight (the
    compressed ones) are decoded on its worker processes, in order.
    """
    n = len(stack.files)
    shape = (stack.rows, stack.cols)
    groups: list[tuple[str, list[int]]]
    if stack.frames:
        by_file: dict[str, list[int]] = defaultdict(list)
        for i, rel in enumerate(stack.files):
            by_file[rel].append(i)
        groups = [(rel, by_file[rel]) for rel in sorted(by_file)]
    else:
        groups = [(rel, [i]) for i, rel in enumerate(stack.files)]
    decoded = _pool_frames(root, stack, groups, shape, digests, pool)
    out: np.ndarray | None = None
    for rel, idx in groups:
        info = stack.pixels[idx[0]] if stack.pixels else None
        wanted = [stack.frames[i] for i in idx] if stack.frames else [0]
        span = idx == list(range(idx[0], idx[0] + len(idx)))
        h = _hasher(digests)
        direct = _direct_dtype(info, shape)
        if decoded is not None and direct is None:  # decoded on the pool, in order
            arr, value = next(decoded)
            if digests is not None and value is not None:
                digests[rel] = value
        elif out is not None and span and direct == out.dtype:
            read_frames(
                root / rel,
                frames=wanted,
                info=info,
                label=rel,
                out=out[idx[0] : idx[0] + len(idx)],
                sha256=h,
            )
            _record(digests, rel, h)
            continue
        else:
            arr = read_frames(root / rel, frames=wanted, info=info, label=rel, sha256=h)
            _record(digests, rel, h)
        if out is None:
            _check_frame(rel, arr.shape[1:], arr.dtype, stack, shape, arr.dtype)
            out = np.empty((n, *shape), dtype=arr.dtype)
        else:
            _check_frame(rel, arr.shape[1:], arr.dtype, stack, shape, out.dtype)
        out[idx] = arr
    if out is None:
        raise InconsistentStackError(f"{stack_label(stack)}: the stack holds no images")
    return out


def _pool_frames(
    root: Path,
    stack: Stack,
    groups: list[tuple[str, list[int]]],
    shape: tuple[int, int],
    digests: MutableMapping[str, str] | None,
    pool: DecodePool | None,
) -> Iterator[tuple[np.ndarray, str | None]] | None:
    """Decode, on ``pool``, the files of ``groups`` that are not read straight, in order."""
    if pool is None:
        return None
    items: list[FileItem] = []
    for rel, idx in groups:
        info = stack.pixels[idx[0]] if stack.pixels else None
        if _direct_dtype(info, shape) is None:
            wanted = tuple(stack.frames[i] for i in idx) if stack.frames else (0,)
            items.append((rel, info, wanted))
    return pool.frames(root, items, digest=digests is not None) if items else None


def _rescale(
    data: np.ndarray, geo: StackGeometry, per_slice: int
) -> tuple[np.ndarray, float, float]:
    """One slope/intercept for the whole stack, or float32 real values when they differ.

    ``per_slice`` is how many leading-axis entries of ``data`` share one rescale entry
    (mosaic tiles share their file's).
    """
    pairs = set(geo.rescale)
    if len(pairs) <= 1:
        slope, inter = next(iter(pairs)) if pairs else (1.0, 0.0)
        return data, float(slope), float(inter)
    slopes = np.repeat(
        np.asarray([p[0] for p in geo.rescale], dtype=np.float64), per_slice
    )
    inters = np.repeat(
        np.asarray([p[1] for p in geo.rescale], dtype=np.float64), per_slice
    )
    flat = data.reshape(-1, *data.shape[-2:])
    real = (flat * slopes[:, None, None] + inters[:, None, None]).astype(np.float32)
    return real.reshape(data.shape), 1.0, 0.0


def _checked(stack: Stack) -> tuple[str, StackGeometry]:
    """The stack's label and geometry, after the checks every reader makes first."""
    label = stack_label(stack)
    for prob in stack.problems:
        if prob.blocking:
            raise _error_class(prob.code)(f"{label}: {prob.message}")
    geo = stack.geometry
    if geo is None:
        raise GeometryError(
            f"{label}: the scan found no usable geometry for this stack"
        )
    if len(geo.positions) != len(stack.files) or len(geo.rescale) != len(stack.files):
        raise InconsistentStackError(
            f"{label}: {len(geo.positions)} positions for {len(stack.files)} files - the stack "
            "record is inconsistent; scan again"
        )
    return label, geo


def load_stack(
    root: Path,
    stack: Stack,
    *,
    digests: MutableMapping[str, str] | None = None,
    pool: DecodePool | None = None,
) -> Volume:
    """Read a stack's pixels and build its affine.

    Parameters
    ----------
    root : Path
        The scan root (``stack.files`` are relative to it).
    stack : Stack
        A stack from :func:`clisonix_cli.dicom.index.scan`.
    digests : dict, optional
        When given, receives ``{relative path: digest of the whole file}`` (labelled,
        :mod:`clisonix_cli.digest`) for every file of the stack, computed from the same
        reads that fetch the pixels (native files are not read twice). The digests
        describe exactly the bytes converted.
    pool : DecodePool, optional
        Worker processes to decode compressed files on, several at once (the values and
        digests are those of a serial read); without it, they are decoded here.

    Returns
    -------
    Volume
        ``data`` (S, R, C) or (T, S, R, C) stored values (float32 real values with slope 1,
        intercept 0 when slices disagree on rescaling), ``affine_lps`` mapping
        ``(s, r, c, 1)`` to LPS mm, and sidecar-safe ``meta``.

    Raises
    ------
    GeometryError
        No usable geometry (no positions or orientation, bad mosaic header).
    InconsistentStackError
        Missing slices, uneven spacing, uneven repeats, or files changed since the scan.
    InputError
        Any pixel reading error of :func:`~clisonix_cli.dicom.pixels.read_frames`.
    """
    label, geo = _checked(stack)
    try:
        if stack.kind == "mosaic":
            frames = _read_entries(root, stack, digests)
            if not frames:
                raise InconsistentStackError(f"{label}: the stack holds no images")
            data, affine = _mosaic_volume(stack, geo, frames)
            per_slice = stack.n_slices
        else:
            s, t = stack.n_slices, stack.n_volumes
            if s * t != len(stack.files):
                raise InconsistentStackError(
                    f"{label}: {len(stack.files)} images for {t} volume(s) of {s} slices"
                )
            if not stack.files:
                raise InconsistentStackError(f"{label}: the stack holds no images")
            data = _read_stack(root, stack, digests, pool)
            if t > 1:
                data = data.reshape(t, s, stack.rows, stack.cols)
            affine = slice_affine(
                geo.orientation,
                geo.pixel_spacing,
                np.asarray(geo.positions[:s], dtype=np.float64),
                geo.slice_spacing,
                geo.slice_step,
            )
            per_slice = 1
        display, extra = _display(root, stack, label)
    except ClisonixError:
        raise
    except OSError as exc:
        raise InputError(f"{label}: cannot read pixel data ({exc.strerror})") from None
    if display is not None and display.get("modality_lut_data") is not None:
        # PS3.3 C.11.1: the LUT replaces the rescale; its output is the modality value
        data = apply_modality_lut(data, display["modality_lut_data"])
        slope, inter = 1.0, 0.0
    else:
        data, slope, inter = _rescale(data, geo, per_slice)
    return Volume(
        data=data,
        affine_lps=affine,
        slope=slope,
        intercept=inter,
        meta=_meta(stack, data.shape, affine, extra),
        display=display,
    )


def _display(
    root: Path, stack: Stack, label: str
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The stack's display attributes for the ``voi`` op, with the content of its LUT
    sequences; and the sidecar fields read from those sequences (ultrasound regions)."""
    if not stack.display:
        return None, {}
    display: dict[str, Any] = dict(stack.display)
    display["colour"] = bool(stack.colour)
    seqs = read_sequences(root / stack.files[0], stack.files[0], display)
    display["voi_luts"] = seqs["voi_luts"]
    display["modality_lut_data"] = seqs["modality_lut"]
    extra: dict[str, Any] = {}
    if seqs["us_regions"]:
        extra["UltrasoundRegions"] = seqs["us_regions"]
    return display, extra


def _mosaic_volume(
    stack: Stack, geo: StackGeometry, frames: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    label = stack_label(stack)
    first = stack.pixels[0] if stack.pixels else None
    full = (first.rows, first.cols) if first is not None else frames[0].shape
    _check_frames(frames, stack, (int(full[0]), int(full[1])))
    n = geo.mosaic_tiles
    try:
        vols = [unpack_mosaic(f, n) for f in frames]
    except GeometryError as exc:
        raise GeometryError(f"{label}: {exc.message}") from None
    data = np.stack(vols) if len(vols) > 1 else vols[0]
    affine = mosaic_affine(
        geo.orientation,
        geo.pixel_spacing,
        geo.positions[0],
        int(full[0]),
        int(full[1]),
        n,
        geo.mosaic_normal,
        geo.slice_spacing,
    )
    return data, affine


def _meta(
    stack: Stack,
    shape: tuple[int, ...],
    affine: np.ndarray,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in stack.meta
    }
    meta.update(extra or {})
    spacing = [float(np.linalg.norm(affine[:3, k])) for k in range(3)]
    meta.update(
        {
            "StackKey": stack.stack_key,
            "StorageKind": stack.kind,
            "Shape": [int(n) for n in shape],
            "VoxelSpacing": [round(v, 6) for v in spacing],
        }
    )
    return dict(sorted(meta.items()))


# --- streaming: the same volume, a few slices at a time ---------------------------------

#: Bytes of stored values a :class:`StackStream` holds at a time (whole slices, at least one).
SLAB_BYTES = 8 << 20


@dataclass(frozen=True)
class StackStream:
    """A stack's volume delivered a few slices at a time: what :func:`load_stack` returns,
    without ever holding the whole array (pure conversion writes each slab as it comes).

    ``shape``, ``dtype``, ``affine_lps``, ``slope``, ``intercept`` and ``meta`` are those of
    the :class:`~clisonix_cli.dicom.model.Volume` that ``load_stack`` would return; the
    concatenation of :meth:`slabs` along the first axis, reshaped to ``shape``, is its data.
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    affine_lps: np.ndarray
    slope: float
    intercept: float
    meta: dict[str, Any]
    _source: Callable[[], Iterator[np.ndarray]] = field(repr=False)

    @property
    def ndim(self) -> int:
        """Number of dimensions of the volume (3 or 4)."""
        return len(self.shape)

    def slabs(self) -> Iterator[np.ndarray]:
        """``(k, R, C)`` pieces of the volume in C order (volumes, then slices).

        Each slab may reuse the previous one's buffer: use it (write it) before asking for
        the next. Reading errors surface here, as the ``InputError`` subclasses of
        :func:`load_stack`.
        """
        return self._source()


def open_stack(
    root: Path,
    stack: Stack,
    *,
    digests: MutableMapping[str, str] | None = None,
    pool: DecodePool | None = None,
) -> StackStream:
    """Check a stack and prepare to read it a few slices at a time.

    Plain single-frame stacks are streamed (at most :data:`SLAB_BYTES` of stored values, plus
    one decoded slice, in memory at once); mosaics and multi-frame (enhanced) stacks are
    read whole by :func:`load_stack` when their slabs are first asked for, and delivered
    as one slab.

    Parameters
    ----------
    root, stack, digests
        As :func:`load_stack`; ``digests`` is filled as the files are read (complete once
        :meth:`StackStream.slabs` is exhausted).
    pool : DecodePool, optional
        As :func:`load_stack`: compressed files are decoded on its workers, in order,
        at most a few batches ahead of the writer.

    Returns
    -------
    StackStream
        The values are bit-identical to ``load_stack(root, stack).data``.

    Raises
    ------
    GeometryError, InconsistentStackError, InputError
        The checks of :func:`load_stack` that need no pixels fail here; pixel reading
        errors surface while iterating :meth:`StackStream.slabs`. To learn the stored
        type of a compressed stack the first file is decoded here.
    """
    label, geo = _checked(stack)
    s, t = stack.n_slices, stack.n_volumes
    whole = (
        stack.geometry_kind or stack.colour or dict(stack.display).get("modality_lut")
    )
    if stack.kind == "mosaic" or stack.frames or whole:
        vol = load_stack(root, stack, digests=digests, pool=pool)
        data = vol.data
        return StackStream(
            shape=tuple(int(n) for n in data.shape),
            dtype=data.dtype,
            affine_lps=vol.affine_lps,
            slope=vol.slope,
            intercept=vol.intercept,
            meta=vol.meta,
            _source=lambda: iter([data.reshape(-1, *data.shape[-2:])]),
        )
    if not stack.files:
        raise InconsistentStackError(f"{label}: the stack holds no images")
    if s * t != len(stack.files):
        raise InconsistentStackError(
            f"{label}: {len(stack.files)} images for {t} volume(s) of {s} slices"
        )
    plane = (stack.rows, stack.cols)
    first_info = stack.pixels[0] if stack.pixels else None
    stored = _direct_dtype(first_info, plane)
    first: np.ndarray | None = None
    if stored is None:  # compressed or unusual: decode the first file to learn its type
        first = _read_one(root, stack, 0, digests, label, pool=pool)
        _check_frame(
            stack.files[0], first.shape[1:], first.dtype, stack, plane, first.dtype
        )
        stored = first.dtype
    shape = (t, s, *plane) if t > 1 else (s, *plane)
    affine = slice_affine(
        geo.orientation,
        geo.pixel_spacing,
        np.asarray(geo.positions[:s], dtype=np.float64),
        geo.slice_spacing,
        geo.slice_step,
    )
    pairs = set(geo.rescale)
    if len(pairs) <= 1:
        slope, inter = next(iter(pairs)) if pairs else (1.0, 0.0)
        out_dtype = stored
        rescale = None
    else:
        slope, inter = 1.0, 0.0
        out_dtype = np.dtype(np.float32)
        rescale = (
            np.asarray([p[0] for p in geo.rescale], dtype=np.float64),
            np.asarray([p[1] for p in geo.rescale], dtype=np.float64),
        )
    stored_type: np.dtype[Any] = stored

    def source() -> Iterator[np.ndarray]:
        return _stream_slices(
            root, stack, stored_type, first, rescale, digests, label, pool
        )

    return StackStream(
        shape=shape,
        dtype=out_dtype,
        affine_lps=affine,
        slope=float(slope),
        intercept=float(inter),
        meta=_meta(stack, shape, affine),
        _source=source,
    )


def _read_one(
    root: Path,
    stack: Stack,
    i: int,
    digests: MutableMapping[str, str] | None,
    label: str,
    out: np.ndarray | None = None,
    pool: DecodePool | None = None,
) -> np.ndarray:
    rel = stack.files[i]
    info = stack.pixels[i] if stack.pixels else None
    if pool is not None:
        arr, value = next(
            pool.frames(root, [(rel, info, (0,))], digest=digests is not None)
        )
        if digests is not None and value is not None:
            digests[rel] = value
        return arr
    h = _hasher(digests)
    try:
        arr = read_frames(
            root / rel, frames=[0], info=info, label=rel, out=out, sha256=h
        )
    except ClisonixError:
        raise
    except OSError as exc:
        raise InputError(f"{label}: cannot read pixel data ({exc.strerror})") from None
    _record(digests, rel, h)
    return arr


def _stream_slices(
    root: Path,
    stack: Stack,
    stored: np.dtype[Any],
    first: np.ndarray | None,
    rescale: tuple[np.ndarray, np.ndarray] | None,
    digests: MutableMapping[str, str] | None,
    label: str,
    pool: DecodePool | None = None,
) -> Iterator[np.ndarray]:
    """Slabs of whole slices, read straight into one reused buffer (compressed slices
    decoded on ``pool``'s workers, in order, when one is given)."""
    plane = (stack.rows, stack.cols)
    n = len(stack.files)
    per = max(1, SLAB_BYTES // max(1, plane[0] * plane[1] * stored.itemsize))
    buf = np.empty((min(per, n), *plane), dtype=stored)
    decoded = None
    if pool is not None:
        todo = [
            i
            for i in range(n)
            if not (i == 0 and first is not None)
            and _direct_dtype(stack.pixels[i] if stack.pixels else None, plane)
            != stored
        ]
        items: list[FileItem] = [
            (stack.files[i], stack.pixels[i] if stack.pixels else None, (0,))
            for i in todo
        ]
        decoded = pool.frames(root, items, digest=digests is not None)
    for start in range(0, n, per):
        stop = min(n, start + per)
        for i in range(start, stop):
            slot = buf[i - start : i - start + 1]
            if i == 0 and first is not None:
                slot[...] = first
                continue
            info = stack.pixels[i] if stack.pixels else None
            if _direct_dtype(info, plane) == stored:
                _read_one(root, stack, i, digests, label, out=slot)
                continue
            if decoded is not None:
                arr, value = next(decoded)
                if digests is not None and value is not None:
                    digests[stack.files[i]] = value
            else:
                arr = _read_one(root, stack, i, digests, label)
            _check_frame(stack.files[i], arr.shape[1:], arr.dtype, stack, plane, stored)
            slot[...] = arr
        raw = buf[: stop - start]
        if rescale is None:
            yield raw
        else:
            slopes, inters = rescale
            yield (
                raw * slopes[start:stop, None, None] + inters[start:stop, None, None]
            ).astype(np.float32)
