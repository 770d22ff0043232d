"""Reading without copies: ``read_frames(out=, sha256=)``, hashing inputs from the pixel
reads, and the streamed stack (``open_stack``) against ``load_stack``."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.dicom import volume
from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.dicom.pixels_native import native_fast_path
from clisonix_cli.dicom.syntax import _SYNTAX_NAMES, syntax_name
from clisonix_cli.dicom.volume import load_stack, open_stack
from clisonix_cli.digest import file_digest, finish, hasher
from clisonix_cli.errors import ClisonixError, PixelDataSizeError, TruncatedFileError

MakeSlice = Callable[..., Path]
PixelInfoOf = Callable[[Path], PixelInfo]

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pydicom-data"
# native single and multi-frame, big endian, 8/32-bit, compressed (RLE, J2K, JPEG-LS)
FILES = [
    "CT_small.dcm",
    "MR_small_bigendian.dcm",
    "emri_small.dcm",
    "emri_small_big_endian.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "liver.dcm",
    "693_UNCR.dcm",
    "MR2_UNCI.dcm",
]


def _present() -> list[str]:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent (shared test data)")
    return [n for n in FILES if (DATA / n).is_file()]


def test_out_and_sha256_give_the_same_frames_and_the_file_digest(
    pixel_info: PixelInfoOf,
) -> None:
    for name in _present():
        path = DATA / name
        info = pixel_info(path)
        plain = read_frames(path, info=info)
        out = np.full_like(plain, 7)
        h = hasher()
        got = read_frames(path, info=info, out=out, sha256=h)
        assert got is out
        np.testing.assert_array_equal(out, plain, err_msg=name)
        assert finish(h) == file_digest(path), name
        if plain.shape[0] > 1:  # a frame subset: the digest is still the whole file's
            h2 = hasher()
            sub = read_frames(path, info=info, frames=[1, 0], sha256=h2)
            np.testing.assert_array_equal(sub, plain[[1, 0]])
            assert finish(h2) == file_digest(path), name


def test_out_of_the_wrong_shape_or_type_is_refused(pixel_info: PixelInfoOf) -> None:
    names = _present()
    path = DATA / names[0]
    info = pixel_info(path)
    plain = read_frames(path, info=info)
    with pytest.raises(ValueError, match="out="):
        read_frames(path, info=info, out=np.empty(plain.shape, dtype=np.float64))
    with pytest.raises(ValueError, match="out="):
        read_frames(
            path, info=info, out=np.empty((plain.shape[0] + 1, *plain.shape[1:]))
        )


def test_truncated_file_still_rejected_before_reading(
    tmp_path: Path, pixel_info: PixelInfoOf
) -> None:
    names = _present()
    src = DATA / ("CT_small.dcm" if "CT_small.dcm" in names else names[0])
    info = pixel_info(src)
    assert native_fast_path(info)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src.read_bytes()[: (info.offset or 0) + 100])
    with pytest.raises((PixelDataSizeError, TruncatedFileError)):
        read_frames(cut, info=info, sha256=hashlib.sha256())


def _series(make_slice: MakeSlice, root: Path, n: int = 5, **kw: object) -> None:
    for k in range(n):
        make_slice(root / f"s{k:02d}.dcm", ipp=(0.0, 0.0, 2.0 * k), instance=k + 1,
                   fill=1000 * k, **kw)  # fmt: skip


def _same(root: Path, slab_bytes: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """open_stack == load_stack for every stack under root; digests == file_digest."""
    monkeypatch.setattr(volume, "SLAB_BYTES", slab_bytes)
    stacks = scan(root).stacks
    for st in stacks:
        vol = load_stack(root, st)
        digests: dict[str, str] = {}
        stream = open_stack(root, st, digests=digests)
        assert (stream.shape, stream.dtype) == (vol.data.shape, vol.data.dtype)
        assert (stream.slope, stream.intercept, stream.meta) == (
            vol.slope,
            vol.intercept,
            vol.meta,
        )
        np.testing.assert_array_equal(stream.affine_lps, vol.affine_lps)
        pieces = [np.array(s) for s in stream.slabs()]  # copies: the buffer is reused
        stored = max(1, st.bits_allocated // 8)  # the buffer holds stored values
        per = max(1, slab_bytes // (st.rows * st.cols * stored))
        if st.kind == "slices":
            assert max(len(p) for p in pieces) <= per
        np.testing.assert_array_equal(
            np.concatenate(pieces).reshape(vol.data.shape), vol.data
        )
        loaded: dict[str, str] = {}
        load_stack(root, st, digests=loaded)
        for rel in set(st.files):
            assert digests[rel] == loaded[rel] == file_digest(root / rel)
    return len(stacks)


@pytest.mark.parametrize("slab_bytes", [1, 200, volume.SLAB_BYTES])
def test_stream_equals_load_on_the_synthetic_study(
    synth_study: Path, slab_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _same(synth_study, slab_bytes, monkeypatch) == 6  # explicit and RLE series


def test_stream_equals_load_on_real_data(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = shared_data / "dcm_qa"
    if not root.is_dir():
        pytest.skip("dcm_qa is absent")
    assert _same(root, 1 << 16, monkeypatch) > 0  # mosaics, enhanced, 4-D


def test_stream_with_per_slice_rescale_is_float32_like_load(
    tmp_path: Path, make_slice: MakeSlice, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(4):
        make_slice(tmp_path / f"s{k}.dcm", ipp=(0.0, 0.0, float(k)), instance=k + 1,
                   fill=10 * k, slope=1.0 + k, intercept=-5.0 * k)  # fmt: skip
    assert _same(tmp_path, 2 * 4 * 6 * 2, monkeypatch) == 1
    stream = open_stack(tmp_path, scan(tmp_path).stacks[0])
    assert stream.dtype == np.float32 and (stream.slope, stream.intercept) == (1.0, 0.0)


def test_stream_read_errors_match_load(
    tmp_path: Path, make_slice: MakeSlice, monkeypatch: pytest.MonkeyPatch
) -> None:
    _series(make_slice, tmp_path)
    st = scan(tmp_path).stacks[0]
    victim = tmp_path / st.files[3]
    victim.write_bytes(victim.read_bytes()[:-20])  # truncated after the scan
    with pytest.raises(ClisonixError) as loaded:
        load_stack(tmp_path, st)
    stream = open_stack(tmp_path, st)  # the header checks pass; reading fails
    with pytest.raises(type(loaded.value)) as streamed:
        for _ in stream.slabs():
            pass
    assert streamed.value.message == loaded.value.message


def test_stream_of_a_compressed_stack(
    synth_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rle = [st for st in scan(synth_study).stacks if st.transfer_syntax.endswith(".5")]
    assert rle, "the synthetic study has RLE series"
    root = tmp_path / "rle"
    for rel in rle[0].files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_study / rel, root / rel)
    assert _same(root, 32 * 32 * 2 * 3, monkeypatch) == 1


def test_syntax_names_match_pydicom() -> None:
    from pydicom.uid import UID

    for uid, name in _SYNTAX_NAMES.items():
        assert UID(uid).name == name
    assert syntax_name("1.2.840.10008.1.2.4.100") == UID("1.2.840.10008.1.2.4.100").name
    assert syntax_name("1.2.3.4") == "1.2.3.4"
