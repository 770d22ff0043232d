"""2-D objects end to end: DX, ultrasound and colour from deid-data, LUT files from
pydicom-data, through ``clisonix transform`` into PNG, NIfTI and NumPy.

References: pydicom's display functions (``apply_modality_lut`` -> ``apply_voi_lut`` ->
MONOCHROME1 inversion, scaled from pydicom's output range to 0..255) and dcm2niix (the PyPI
package) for NIfTI shape and values after ``as_closest_canonical``.
"""

from __future__ import annotations

import importlib
import json
import shutil
import struct
import subprocess
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from clisonix_cli.cli.app import app

deid_data = pytest.importorskip("deid_data", reason="pip install deid-data (dev extra)")
DEID = Path(deid_data.__file__).parent / "data"
DX = DEID / "animals" / "cat.dcm"
US_GREY = DEID / "ultrasounds" / "GREYSCALE_IMAGE.dcm"
US_RGB = DEID / "ultrasounds" / "RGB_IMAGE.dcm"
US_CINE = DEID / "ultrasounds" / "ultrasound-multiframe.dcm"
SC_JPEG = DEID / "dicom-cookies" / "image1.dcm"
CT_JPEG = DEID / "humans" / "ctbrain1.dcm"


def _run(args: list[str]) -> Any:
    result = CliRunner().invoke(app, ["transform", *args, "--jobs", "1"])
    assert result.exit_code == 0, result.output
    return result


def _folder(tmp_path: Path, *files: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for f in files:
        shutil.copy(f, src / f.name)
    return src


def _records(out: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (out / "manifest.jsonl").read_text().splitlines()
        if line.strip()
    ]


def _png(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    return np.asarray(PILImage.open(path))


def _pydicom_display(path: Path) -> np.ndarray:
    """pydicom: modality LUT -> VOI LUT/window -> inversion, scaled to 0..255 (float)."""
    import pydicom
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        stored = ds.pixel_array
        modality = apply_modality_lut(stored, ds)
        out = apply_voi_lut(modality, ds, prefer_lut=True)
    if "VOILUTSequence" in ds:
        top = 2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
        y = out.astype(np.float64) / top
    elif "WindowCenter" in ds:
        bits = int(ds.BitsStored)
        lo, hi = (
            (0, 2**bits - 1)
            if not ds.PixelRepresentation
            else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        )
        if "ModalityLUTSequence" in ds:
            lo, hi = 0, 2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
        elif "RescaleSlope" in ds:
            s, i = float(ds.RescaleSlope), float(ds.RescaleIntercept)
            lo, hi = lo * s + i, hi * s + i
        y = (out.astype(np.float64) - lo) / (hi - lo)
    else:  # no VOI: clisonix windows the image's own range
        m = modality.astype(np.float64)
        y = (m - m.min()) / (m.max() - m.min())
    invert = ds.PhotometricInterpretation == "MONOCHROME1" or (
        ds.get("PresentationLUTShape") == "INVERSE"
    )
    return (1.0 - y if invert else y) * 255.0


def test_dx_png_equals_pydicom_display_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run([str(_folder(tmp_path, DX)), str(out), "--format", "png"])
    (rec,) = [r for r in _records(out) if r.get("status") == "ok"]
    assert rec["geometry"] == "projection"
    assert rec["pipeline"][0]["name"] == "voi"  # the display pipeline ran by default
    png = next(p for p in out.rglob("*.png"))
    got = _png(png)
    assert got.dtype == np.uint8 and got.shape == (2614, 3072)
    want = _pydicom_display(DX)
    assert np.abs(got.astype(np.float64) - want).max() <= 1.0
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["Geometry"] == "projection"
    assert side["PatientOrientation"] == ["L", "F"]
    assert side["PresentationIntentType"] == "FOR PRESENTATION"
    assert side["SpacingSource"] == "PixelSpacing"
    assert side["VoxelSpacing"][1:] == [0.14, 0.14]


@pytest.mark.parametrize("name", ["vlut_04.dcm", "mlut_18.dcm"])
def test_lut_files_png_equal_pydicom(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    path = shared_data / "pydicom-data" / name
    out = tmp_path / "out"
    _run([str(_folder(tmp_path, path)), str(out), "--format", "png"])
    got = _png(next(out.rglob("*.png"))).astype(np.float64)
    assert np.abs(got - _pydicom_display(path)).max() <= 1.0


def test_voi_then_resize_png_is_deterministic(tmp_path: Path) -> None:
    src = _folder(tmp_path, DX)
    args = ["--op", "voi", "--op", "resize:rows=256,cols=256", "--format", "png"]
    _run([str(src), str(tmp_path / "a"), *args])
    _run([str(src), str(tmp_path / "b"), *args])
    (a,) = (tmp_path / "a").rglob("*.png")
    (b,) = (tmp_path / "b").rglob("*.png")
    raw = a.read_bytes()
    assert raw == b.read_bytes()
    chunks = []
    pos = 8
    while pos < len(raw):
        (n,) = struct.unpack(">I", raw[pos : pos + 4])
        chunks.append(raw[pos + 4 : pos + 8])
        pos += 12 + n
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]  # no time, text or gamma chunks
    assert zlib.decompress(raw[41 : 41 + struct.unpack(">I", raw[33:37])[0]])
    assert _png(a).shape == (256, 256)


@pytest.mark.parametrize("fmt", ["nifti", "nifti-gz", "npy", "png"])
def test_deid_data_converts_to_every_format(tmp_path: Path, fmt: str) -> None:
    src = _folder(tmp_path, DX, US_GREY, US_RGB, US_CINE, SC_JPEG, CT_JPEG)
    out = tmp_path / fmt
    _run([str(src), str(out), "--format", fmt])
    recs = [r for r in _records(out) if "task" in r]
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs), recs
    kinds = {Path(r["inputs"][0]).name: r.get("geometry", "") for r in recs}
    assert kinds["cat.dcm"] == "projection"
    assert kinds["ultrasound-multiframe.dcm"] == "pixel"
    assert kinds["RGB_IMAGE.dcm"] == "plane"
    assert kinds["ctbrain1.dcm"] == ""  # a colour CT capture placed by its headers
    if fmt == "npy":
        shapes = {p: np.load(p, mmap_mode="r").shape for p in out.rglob("*.npy")}
        cine = next(p for p, shape in shapes.items() if shape[0] == 30)
        arr = np.load(cine)
        assert arr.shape == (30, 600, 800, 3) and arr.dtype == np.uint8
        side = json.loads(cine.with_suffix(".json").read_text())
        assert (
            side["UltrasoundRegions"]
            and "PhysicalDeltaX" in side["UltrasoundRegions"][0]
        )


def _dcm2niix(path: Path, tmp: Path) -> Any:
    nib = importlib.import_module("nibabel")
    exe = shutil.which("dcm2niix") or str(
        Path(__import__("sys").executable).parent / "dcm2niix"
    )
    src = tmp / "d2n_in"
    dst = tmp / "d2n_out"
    src.mkdir()
    dst.mkdir()
    shutil.copy(path, src / path.name)
    subprocess.run(
        [exe, "-o", str(dst), "-f", "ref", str(src)], check=True, capture_output=True
    )
    return nib.as_closest_canonical(nib.load(dst / "ref.nii"))


@pytest.mark.parametrize(
    "path", [DX, US_GREY, US_RGB, US_CINE, SC_JPEG], ids=lambda p: p.name
)
def test_nifti_agrees_with_dcm2niix(tmp_path: Path, path: Path) -> None:
    nib = importlib.import_module("nibabel")
    out = tmp_path / "out"
    _run([str(_folder(tmp_path, path)), str(out), "--format", "nifti"])
    ours = nib.as_closest_canonical(nib.load(next(out.rglob("*.nii"))))
    ref = _dcm2niix(path, tmp_path)
    assert ours.shape == ref.shape
    a, b = np.asanyarray(ours.dataobj), np.asanyarray(ref.dataobj)
    if a.dtype.names:  # RGB24: compare the channels
        a = np.ascontiguousarray(a).view(np.uint8).reshape(*a.shape, 3)
        b = np.ascontiguousarray(b).view(np.uint8).reshape(*b.shape, 3)
    if path == SC_JPEG:
        # lossy JPEG baseline: dcm2niix's decoder and pylibjpeg-libjpeg (pydicom's) round
        # the IDCT and the chroma upsampling differently: within 4 grey levels, rarely
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 4 and diff.mean() < 0.2
    else:
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)


def test_mosaic_whose_tiles_do_not_fill_it_matches_dcm2niix(tmp_path: Path) -> None:
    nib = importlib.import_module("nibabel")
    mosaic = Path(nib.__file__).parent / "nicom" / "tests" / "data" / "0.dcm"
    if not mosaic.is_file():
        pytest.skip("nibabel's test data (nicom/tests/data/0.dcm) is not installed")
    out = tmp_path / "out"
    _run([str(_folder(tmp_path, mosaic)), str(out), "--format", "nifti"])
    ours = nib.as_closest_canonical(nib.load(next(out.rglob("*.nii"))))
    ref = _dcm2niix(mosaic, tmp_path)
    assert ours.shape == ref.shape == (36, 36, 48)
    np.testing.assert_allclose(ours.affine[:3, :3], ref.affine[:3, :3], atol=1e-3)
    # dcm2niix shifts the origin by (256 - 256 / 7) / 2 pixels, a fractional tile; we
    # shift by (256 - 36) / 2, whole pixels: 2/7 of a pixel (0.51 mm) apart
    np.testing.assert_allclose(ours.affine[:3, 3], ref.affine[:3, 3], atol=0.6)
    # the tiles: grid row k // 7, column k % 7, 36x36 each, the 4-pixel margin unused;
    # dcm2niix agrees on the first grid row and places later rows elsewhere (open question)
    import pydicom

    raw = pydicom.dcmread(mosaic).pixel_array
    want = np.stack(
        [raw[(k // 7) * 36 :][:36, (k % 7) * 36 :][:, :36] for k in range(48)]
    )
    got = np.asanyarray(nib.load(next(out.rglob("*.nii"))).dataobj)  # (C, R, S)
    np.testing.assert_array_equal(got.transpose(2, 1, 0), want)
    first_row = np.asanyarray(ref.dataobj)[..., :7]
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj)[..., :7], first_row)


def test_deid_data_greyscale_to_derived_dicom_and_colour_refused_in_one_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "dicom"
    result = CliRunner().invoke(
        app,
        ["transform", str(_folder(tmp_path, DX, US_GREY, US_RGB)), str(out)]
        + ["--format", "dicom", "--jobs", "1"],
    )
    assert result.exit_code == 1  # the colour image fails, the batch goes on
    recs = {Path(r["inputs"][0]).name: r for r in _records(out) if "task" in r}
    assert recs["cat.dcm"]["status"] == recs["GREYSCALE_IMAGE.dcm"]["status"] == "ok"
    assert recs["RGB_IMAGE.dcm"]["error"]["code"] == "CLX-E176"
    import pydicom

    written = sorted(out.rglob("IM*.dcm"))
    assert len(written) == 2
    assert {pydicom.dcmread(p).Rows for p in written} == {2614, 768}
