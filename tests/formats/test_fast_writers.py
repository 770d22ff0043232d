"""The NIfTI and NumPy writers without copies: header bytes against nibabel, streamed gzip
against the one-shot block gzip, slab sources, digests written on the way."""

from __future__ import annotations

import gzip
import importlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from blake3 import blake3

from clisonix_cli.digest import file_digest
from clisonix_cli.errors import UsageError
from clisonix_cli.formats import nifti
from clisonix_cli.formats._gzip import gzip_bytes
from clisonix_cli.formats.nifti import (
    nifti_affine,
    nifti_bytes,
    nifti_header,
    write_nifti,
)
from clisonix_cli.formats.npy import npy_bytes, write_npy
from clisonix_cli.formats.registry import VolumeSource


def _nibabel() -> Any:
    return importlib.import_module("nibabel")  # untyped: keep mypy --strict quiet


def _nibabel_header(
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    affine_lps: np.ndarray,
    slope: float,
    intercept: float,
    tr_s: float | None,
) -> bytes:
    """The header as the writer used to build it, with nibabel (the reference)."""
    nib = _nibabel()

    aff = nifti_affine(affine_lps)
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape[::-1])
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    zooms = [float(np.linalg.norm(aff[:3, k])) for k in range(3)]
    if len(shape) == 4:
        zooms.append(float(tr_s) if tr_s else 1.0)
    hdr.set_zooms(zooms)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_slope_inter(slope, intercept)
    hdr["vox_offset"] = 352
    hdr["magic"] = b"n+1"
    return bytes(hdr.binaryblock) + b"\x00\x00\x00\x00"


def _affines(rng: np.random.Generator) -> Iterator[np.ndarray]:
    yield np.eye(4)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])  # left-handed grid: qfac -1
    flip[:3, 3] = [10.0, -20.0, 30.0]
    yield flip
    for _ in range(12):
        aff = np.eye(4)
        aff[:3, :3] = rng.normal(size=(3, 3)) * rng.uniform(0.2, 4.0)  # shears too
        aff[:3, 3] = rng.normal(size=3) * 100
        yield aff


DTYPES = ["u1", "i1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8"]


def test_header_bytes_match_nibabel() -> None:
    rng = np.random.default_rng(7)
    cases = 0
    for aff in _affines(rng):
        for dt in DTYPES:
            for shape, tr in (
                ((3, 4, 5), None),
                ((2, 3, 4, 5), 2.5),
                ((2, 1, 1, 1), None),
            ):
                slope, inter = (
                    float(rng.choice([1.0, 0.25, -2.0])),
                    float(rng.choice([0.0, -1024.0])),
                )
                ours = nifti_header(
                    np.dtype(dt), shape, aff, slope=slope, intercept=inter,
                    repetition_time_s=tr,
                )  # fmt: skip
                ref = _nibabel_header(np.dtype(dt), shape, aff, slope, inter, tr)
                assert ours == ref, (dt, shape, aff.tolist())
                cases += 1
    assert cases == 14 * len(DTYPES) * 3


def test_header_rejects_what_nifti1_cannot_hold() -> None:
    aff = np.eye(4)
    with pytest.raises(UsageError, match="32767"):
        nifti_header(np.dtype("<i2"), (40000, 2, 2), aff)
    with pytest.raises(UsageError, match="slope"):
        nifti_header(np.dtype("<i2"), (2, 2, 2), aff, slope=0.0)
    with pytest.raises(UsageError, match="slope"):
        nifti_header(np.dtype("<i2"), (2, 2, 2), aff, intercept=float("inf"))
    with pytest.raises(UsageError, match="complex"):
        nifti_header(np.dtype("c8"), (2, 2, 2), aff)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_any_layout_writes_the_bytes_of_its_contiguous_copy(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nifti, "_SLAB_BYTES", 64)  # many slabs and gzip pieces
    rng = np.random.default_rng(3)
    base = rng.integers(-500, 500, size=(6, 5, 7)).astype("<i2")
    aff = next(_affines(rng))
    reference = nifti_bytes(base, aff, slope=0.5, intercept=-3.0)
    layouts = {
        "big-endian": base.astype(">i2"),
        "transposed": np.ascontiguousarray(base.transpose(0, 2, 1)).transpose(0, 2, 1),
        "strided": np.repeat(base, 2, axis=2)[:, :, ::2],
    }
    for name, arr in layouts.items():
        assert not (arr.flags.c_contiguous and arr.dtype == base.dtype), name
        digests: dict[Path, str] = {}
        (out,) = write_nifti(
            tmp_path / f"{name}{suffix}", arr, aff, slope=0.5, intercept=-3.0,
            digests=digests,
        )  # fmt: skip
        raw = out.read_bytes()
        assert (gzip.decompress(raw) if suffix == ".nii.gz" else raw) == reference
        assert digests == {out: "blake3:" + blake3(raw).hexdigest()}
        if suffix == ".nii.gz":  # streamed gzip = one-shot gzip, byte for byte
            assert raw == gzip_bytes(reference)


def test_bool_and_float16_are_stored_widened(tmp_path: Path) -> None:
    nib = _nibabel()

    mask = np.zeros((2, 3, 4), dtype=bool)
    mask[1, 2, 3] = True
    half = np.linspace(0, 1, 24, dtype=np.float16).reshape(2, 3, 4)
    (m,) = write_nifti(tmp_path / "m.nii", mask, np.eye(4))
    (h,) = write_nifti(tmp_path / "h.nii", half, np.eye(4))
    assert nib.load(m).get_data_dtype() == np.uint8
    assert np.asarray(nib.load(m).dataobj)[3, 2, 1] == 1
    assert nib.load(h).get_data_dtype() == np.float32
    np.testing.assert_array_equal(
        np.asarray(nib.load(h).dataobj).transpose(2, 1, 0), half.astype(np.float32)
    )


@dataclass
class _Slabs:
    """A VolumeSource that hands out ``per`` slices at a time from one reused buffer."""

    data: np.ndarray
    per: int
    extra: int = 0  # slices more (or fewer) than declared: a faulty source

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    def slabs(self) -> Iterator[np.ndarray]:
        flat = self.data.reshape(-1, *self.data.shape[-2:])
        n = flat.shape[0] + self.extra
        buf = np.empty((self.per, *flat.shape[1:]), dtype=flat.dtype)
        for at in range(0, n, self.per):
            k = min(self.per, n - at)
            buf[:k] = flat[at % flat.shape[0] : at % flat.shape[0] + k]
            yield buf[:k]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".npy"])
def test_a_slab_source_writes_what_the_array_writes(
    tmp_path: Path, suffix: str
) -> None:
    data = np.arange(2 * 5 * 3 * 4, dtype="<u2").reshape(2, 5, 3, 4)
    side = {"RepetitionTime": 2000.0, "Modality": "MR"}
    writer = write_npy if suffix == ".npy" else write_nifti
    whole = writer(tmp_path / f"a{suffix}", data, np.eye(4), sidecar=side)
    source = _Slabs(data, per=3)
    assert isinstance(source, VolumeSource)
    digests: dict[Path, str] = {}
    streamed = writer(
        tmp_path / f"b{suffix}", source, np.eye(4), sidecar=side, digests=digests
    )
    for a, b in zip(whole, streamed, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert digests[b] == file_digest(b)


@pytest.mark.parametrize("extra", [-2, 2])
def test_a_source_of_the_wrong_size_leaves_no_file(tmp_path: Path, extra: int) -> None:
    data = np.zeros((4, 3, 2), dtype="<i2")
    with pytest.raises(ValueError, match="voxels"):
        write_nifti(tmp_path / "v.nii", _Slabs(data, per=3, extra=extra), np.eye(4))
    assert list(tmp_path.iterdir()) == []


def test_repetition_time_without_a_sidecar(tmp_path: Path) -> None:
    nib = _nibabel()

    data = np.zeros((3, 2, 2, 2), dtype="<i2")
    (out,) = write_nifti(tmp_path / "v.nii", data, np.eye(4), repetition_time_s=0.8)
    assert nib.load(out).header.get_zooms()[3] == pytest.approx(0.8)


def test_npy_bytes_match_numpy_save() -> None:
    rng = np.random.default_rng(5)
    for dt in ["<i2", ">i2", "u1", "<f4", "?", "<f8"]:
        base = rng.integers(0, 50, size=(3, 4, 5)).astype(dt)
        for arr in (base, base.transpose(0, 2, 1), base[:, ::2], base[:0]):
            ref = io.BytesIO()
            np.save(ref, np.ascontiguousarray(arr), allow_pickle=False)
            assert npy_bytes(arr) == ref.getvalue(), (dt, arr.shape)


@pytest.mark.parametrize("suffix", [".nii", ".npy"])
def test_a_callable_sidecar_is_built_after_the_image(
    tmp_path: Path, suffix: str
) -> None:
    data = np.zeros((2, 3, 2, 2), dtype="<i2")
    target = tmp_path / f"v{suffix}"
    seen: list[bool] = []

    def late() -> dict[str, Any]:
        seen.append(target.is_file())  # the image is already in place
        return {"Fact": "known after streaming", "RepetitionTime": 1500.0}

    writer = write_npy if suffix == ".npy" else write_nifti
    kwargs: dict[str, Any] = {} if suffix == ".npy" else {"repetition_time_s": 1.5}
    paths = writer(target, data, np.eye(4), sidecar=late, **kwargs)
    eager = writer(
        tmp_path / f"w{suffix}", data, np.eye(4),
        sidecar={"Fact": "known after streaming", "RepetitionTime": 1500.0},
    )  # fmt: skip
    assert seen == [True]
    for a, b in zip(paths, eager, strict=True):
        assert a.read_bytes() == b.read_bytes()
