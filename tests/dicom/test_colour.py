"""Colour and palette images decode to the RGB that pydicom's own conversion gives.

Every colour and palette file of ``../shared/data/pydicom-data`` is scanned alone (several
share a SOP Instance UID, which a joint scan sets aside as duplicates), loaded as a stack,
and compared with pydicom: ``pixel_array`` with the same decoder plugin, then
``convert_color_space`` for the YBR models pydicom leaves as they are and
``apply_color_lut`` for palettes. Lossless and lossy files alike are compared exactly: both
sides decode with the same plugin, so a lossy codec gives the same values on both.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clisonix_cli.dicom.colour import colour_problem, rgb_dtype, to_channels
from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.syntax import plugin_for
from clisonix_cli.dicom.volume import load_stack
from clisonix_cli.errors import ColourLayoutError

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "pydicom-data"
_GREY = ("MONOCHROME1", "MONOCHROME2")


def _colour_files() -> list[str]:
    if not DATA.is_dir():
        return []
    import pydicom

    out = []
    for path in sorted(DATA.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - the malformed test files
            continue
        if "PixelData" in ds or str(ds.get("PhotometricInterpretation", "")):
            if str(ds.get("PhotometricInterpretation", "")) not in ("", *_GREY):
                out.append(path.name)
    return out


COLOUR = _colour_files()


def _reference(path: Path) -> np.ndarray:
    """pydicom: decode with the plugin clisonix picks, then pydicom's colour conversion."""
    import pydicom
    from pydicom.pixels.processing import apply_color_lut, convert_color_space
    from pydicom.pixels.utils import pixel_array

    from clisonix_cli.dicom.pixels_pydicom import transfer_syntax_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        ts = transfer_syntax_of(ds)
        if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            ds.file_meta = pydicom.dataset.FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ts
        found = plugin_for(ts)
        raw: Any = pixel_array(ds, raw=True, decoding_plugin=found[0] if found else "")
        pi = str(ds.PhotometricInterpretation)
        if pi == "PALETTE COLOR":
            rgb = apply_color_lut(raw, ds)
        elif pi.startswith("YBR_FULL") and raw.shape[-1] == 3:
            # what pydicom reports as the decoded data's model (the codec may convert)
            rgb = pixel_array(ds, decoding_plugin=found[0] if found else "")
            assert np.array_equal(rgb, convert_color_space(raw, pi, "RGB")) or (
                ts != "1.2.840.10008.1.2.1"
            )
        else:
            rgb = raw
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    return np.asarray(rgb).reshape(frames, *np.asarray(rgb).shape[-3:])


@pytest.mark.skipif(not COLOUR, reason="../shared/data/pydicom-data is not present")
@pytest.mark.parametrize("name", COLOUR)
def test_colour_file_decodes_like_pydicom(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / name, folder / name)
    result = scan(folder)
    assert not result.skipped, result.skipped
    (stack,) = result.stacks
    assert stack.colour
    vol = load_stack(folder, stack)
    assert vol.data.dtype.names == ("R", "G", "B")
    got = to_channels(vol.data)
    want = _reference(DATA / name)
    if got.ndim == 5:  # (T, 1, R, C, 3): frames of a legacy multi-frame on the 4th axis
        got = got[:, 0]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def _info(photometric: str, samples: int, bits: int = 8) -> PixelInfo:
    return PixelInfo(
        "1.2.840.10008.1.2.1", 4, 4, 1, bits, bits, 0, samples, photometric
    )


def test_layouts_that_contradict_themselves_get_a_code() -> None:
    assert colour_problem(_info("MONOCHROME2", 3))[0] == ColourLayoutError.code  # type: ignore[index]
    assert colour_problem(_info("RGB", 1))[0] == ColourLayoutError.code  # type: ignore[index]
    assert colour_problem(_info("PALETTE COLOR", 3))[0] == ColourLayoutError.code  # type: ignore[index]
    assert colour_problem(_info("HSV", 3))[0] == ColourLayoutError.code  # type: ignore[index]
    assert colour_problem(_info("RGB", 3)) is None
    assert colour_problem(_info("MONOCHROME1", 1, 16)) is None


def test_rgb_dtype_is_interleaved_bytes() -> None:
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rgb = arr.view(rgb_dtype(1)).reshape(2, 3)
    assert rgb.dtype.itemsize == 3
    np.testing.assert_array_equal(to_channels(rgb), arr)
