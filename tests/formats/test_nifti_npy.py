"""NIfTI and NumPy writers: voxel order, LPS -> RAS, scaling, determinism, atomicity."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.errors import UsageError
from clisonix_cli.formats.nifti import nifti_affine, write_nifti
from clisonix_cli.formats.npy import write_npy


def _oblique_affine() -> np.ndarray:
    """An (s, r, c) -> LPS affine with distinct steps on every axis and a translation."""
    a = np.radians(25.0)
    rot = np.array(
        [[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]]
    )
    aff = np.eye(4)
    aff[:3, 0] = rot[:, 2] * 3.0  # slice step
    aff[:3, 1] = rot[:, 1] * 0.8  # row step
    aff[:3, 2] = rot[:, 0] * 0.5  # column step
    aff[:3, 3] = [-100.0, 50.0, 12.5]
    return aff


def _volume(shape: tuple[int, ...], dtype: str = "int16") -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


def test_voxel_order_and_world_coordinates(tmp_path: Path) -> None:
    import nibabel as nib

    data = _volume((3, 4, 5))
    aff = _oblique_affine()
    (out,) = write_nifti(tmp_path / "v.nii", data, aff)
    img = nib.load(out)
    assert img.shape == (5, 4, 3)
    arr = np.asarray(img.dataobj)
    for s, r, c in ((0, 0, 0), (2, 1, 4), (1, 3, 2)):
        assert arr[c, r, s] == data[s, r, c]
        lps = aff @ [s, r, c, 1]
        ras = img.affine @ [c, r, s, 1]
        np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)
    hdr = img.header
    assert int(hdr["sform_code"]) == 1 and int(hdr["qform_code"]) == 1
    np.testing.assert_allclose(hdr.get_qform(), img.affine, atol=1e-5)
    np.testing.assert_allclose(hdr.get_zooms(), [0.5, 0.8, 3.0], atol=1e-6)


def test_nifti_affine_is_the_only_flip() -> None:
    aff = np.eye(4)
    aff[:3, 3] = [1.0, 2.0, 3.0]
    ras = nifti_affine(aff)
    np.testing.assert_allclose(ras[:3, 3], [-1.0, -2.0, 3.0])
    # (i, j, k) = (c, r, s): column 0 of the NIfTI affine is column 2 of the LPS affine
    np.testing.assert_allclose(ras[:3, :3], np.diag([-1.0, -1.0, 1.0])[:, [2, 1, 0]])


def test_scaling_and_integer_type_kept(tmp_path: Path) -> None:
    import nibabel as nib

    data = _volume((2, 3, 4), "uint16")
    (out,) = write_nifti(
        tmp_path / "v.nii", data, np.eye(4), slope=0.5, intercept=-1024.0
    )
    img = nib.load(out)
    assert img.get_data_dtype() == np.dtype("<u2")
    with open(out, "rb") as fh:  # nibabel moves the scaling off a loaded header
        raw_hdr = nib.Nifti1Header.from_fileobj(fh)
    assert (float(raw_hdr["scl_slope"]), float(raw_hdr["scl_inter"])) == (0.5, -1024.0)
    np.testing.assert_array_equal(
        img.get_fdata()[3, 2, 1], data[1, 2, 3] * 0.5 - 1024.0
    )


def test_4d_and_repetition_time(tmp_path: Path) -> None:
    import nibabel as nib

    data = _volume((2, 3, 4, 5))
    out, side = write_nifti(
        tmp_path / "v.nii.gz", data, np.eye(4), sidecar={"RepetitionTime": 2500.0}
    )
    img = nib.load(out)
    assert img.shape == (5, 4, 3, 2)
    assert np.asarray(img.dataobj)[4, 3, 2, 1] == data[1, 2, 3, 4]
    assert img.header.get_zooms()[3] == pytest.approx(2.5)
    assert json.loads(side.read_text()) == {"RepetitionTime": 2500.0}


def test_gz_is_deterministic_and_atomic(tmp_path: Path) -> None:
    data = _volume((3, 4, 5))
    side = {"b": 1, "a": np.float32(2.5), "c": (1, 2)}
    first = write_nifti(
        tmp_path / "one" / "v.nii.gz", data, _oblique_affine(), sidecar=side
    )
    second = write_nifti(
        tmp_path / "two" / "v.nii.gz", data, _oblique_affine(), sidecar=side
    )
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    raw = first[0].read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    assert gzip.decompress(raw)[344:348] == b"n+1\x00"
    text = first[1].read_text()
    assert list(json.loads(text)) == ["a", "b", "c"] and text.endswith("\n")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == [
        "v.json",
        "v.nii.gz",
    ]


def test_nifti_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.nii"):
        write_nifti(tmp_path / "v.img", _volume((2, 2, 2)), np.eye(4))
    with pytest.raises(UsageError, match="S, R, C"):
        write_nifti(tmp_path / "v.nii", _volume((2, 2)), np.eye(4))


def test_npy_roundtrip_with_geometry(tmp_path: Path) -> None:
    data = _volume((2, 3, 4, 5))
    aff = _oblique_affine()
    out, side = write_npy(
        tmp_path / "v.npy",
        data,
        aff,
        slope=2.0,
        intercept=-3.0,
        sidecar={"Modality": "MR"},
    )
    assert side == tmp_path / "v.json"
    np.testing.assert_array_equal(np.load(out), data)
    doc = json.loads(side.read_text())
    np.testing.assert_allclose(doc["affine_lps"], aff)
    assert (doc["slope"], doc["intercept"], doc["axes"]) == (2.0, -3.0, "TSRC")
    assert doc["shape"] == [2, 3, 4, 5] and doc["Modality"] == "MR"
    again = write_npy(
        tmp_path / "w.npy",
        data,
        aff,
        slope=2.0,
        intercept=-3.0,
        sidecar={"Modality": "MR"},
    )
    assert again[0].read_bytes() == out.read_bytes()
    assert again[1].read_bytes() == side.read_bytes()
