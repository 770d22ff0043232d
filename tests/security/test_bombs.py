"""Problems 1-3: decompression bombs and pixel data that does not match its header.

Each bomb must fail its file with a stable code while the whole run peaks under 300 MB
(the process tree: clisonix and any decode process it starts), and the input folder must
stay byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from clisonix_cli.dicom import limits
from clisonix_cli.dicom.index import read_header
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.errors import (
    BitDepthError,
    CodestreamMismatchError,
    DecodeLimitError,
    PixelDataLengthError,
    PixelDataSizeError,
)

PEAK_LIMIT = 300 * 2**20
BOMB_SIDE = 16384


def _transform_measured(
    crafted: SimpleNamespace, in_dir: Path, out_dir: Path
) -> tuple[dict[str, object], list[dict[str, object]]]:
    before = crafted.tree_digest(in_dir)
    run = crafted.run_measured(
        ["transform", str(in_dir), str(out_dir), "--backend", "threads", "--jobs", "1",
         "--format", "nifti"]
    )  # fmt: skip
    assert crafted.tree_digest(in_dir) == before, "IN_DIR changed"
    records = [
        json.loads(line)
        for line in (out_dir / "manifest.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return run, records


def test_jpeg_frame_bomb_fails_its_file_within_300_mb(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    frame = crafted.jpeg_frame(BOMB_SIDE, BOMB_SIDE)
    bomb = crafted.write_encapsulated(
        tmp_path / "in" / "bomb.dcm", crafted.JPEG_BASELINE, frame, BOMB_SIDE,
        BOMB_SIDE, 8,
    )  # fmt: skip
    assert bomb.stat().st_size < 1300  # a 1.2 KB file claiming 256 MB
    run, records = _transform_measured(crafted, tmp_path / "in", tmp_path / "out")
    assert run["rc"] == 1, run["err"]
    assert [r["error"]["code"] for r in records] == [DecodeLimitError.code]
    assert "decompression bomb" in records[0]["error"]["message"]
    assert run["peak"] < PEAK_LIMIT, f"peak {run['peak'] / 2**20:.0f} MiB"
    assert not list((tmp_path / "out").rglob("*.nii"))


def test_j2k_frame_bomb_fails_its_file_within_300_mb(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    frame = crafted.j2k_frame(BOMB_SIDE, BOMB_SIDE)
    crafted.write_encapsulated(
        tmp_path / "in" / "bomb.dcm", crafted.J2K_LOSSLESS, frame, BOMB_SIDE,
        BOMB_SIDE, 16,
    )  # fmt: skip
    run, records = _transform_measured(crafted, tmp_path / "in", tmp_path / "out")
    assert run["rc"] == 1, run["err"]
    assert [r["error"]["code"] for r in records] == [DecodeLimitError.code]
    assert run["peak"] < PEAK_LIMIT, f"peak {run['peak'] / 2**20:.0f} MiB"


def test_deflate_bomb_scan_stays_in_the_header_and_transform_fails_it(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    # 16384 x 32768 16-bit zeros: 1 GiB inflated from about 1 MB
    bomb = crafted.write_deflate_bomb(
        tmp_path / "in" / "bomb.dcm", BOMB_SIDE, 2 * BOMB_SIDE, 1
    )
    assert bomb.stat().st_size < 1_200_000
    before = crafted.tree_digest(tmp_path / "in")
    scan = crafted.run_measured(["scan", str(tmp_path / "in"), "--json"])
    assert scan["rc"] == 0, scan["err"]
    doc = json.loads(scan["out"])
    assert doc["counts"]["stacks"] == 1  # the header was read, the pixels were not
    assert scan["peak"] < PEAK_LIMIT, f"scan peak {scan['peak'] / 2**20:.0f} MiB"
    run, records = _transform_measured(crafted, tmp_path / "in", tmp_path / "out")
    assert run["rc"] == 1, run["err"]
    assert [r["error"]["code"] for r in records] == [DecodeLimitError.code]
    assert run["peak"] < PEAK_LIMIT, f"peak {run['peak'] / 2**20:.0f} MiB"
    assert crafted.tree_digest(tmp_path / "in") == before


def _one_series(
    crafted: SimpleNamespace, in_dir: Path, frame: bytes, side: int, n: int
) -> None:
    for i in range(1, n + 1):
        crafted.write_encapsulated(
            in_dir / f"s{i}.dcm", crafted.JPEG_BASELINE, frame, side, side, 8,
            instance=i,
        )  # fmt: skip


def _records(out_dir: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for line in (out_dir / "manifest.jsonl").read_text().splitlines()
        if line.strip()
    ]


def test_bombs_of_one_series_fail_on_its_parallel_decode_path(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    # One series of JPEG bombs: one task, run in the driver (--backend auto), its
    # compressed slices decoded on --jobs worker processes.
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    _one_series(crafted, in_dir, crafted.jpeg_frame(BOMB_SIDE, BOMB_SIDE), BOMB_SIDE, 3)
    before = crafted.tree_digest(in_dir)
    run = crafted.run_measured(
        ["transform", str(in_dir), str(out_dir), "--backend", "auto", "--jobs", "2",
         "--format", "nifti", "--json"]
    )  # fmt: skip
    assert run["rc"] == 1, run["err"]
    assert json.loads(run["out"])["counts"]["planned"] == 1  # one task: the pool path
    assert [r["error"]["code"] for r in _records(out_dir)] == [DecodeLimitError.code]
    assert run["peak"] < PEAK_LIMIT, f"peak {run['peak'] / 2**20:.0f} MiB"
    assert crafted.tree_digest(in_dir) == before
    assert not list(out_dir.rglob("*.nii"))


def test_the_run_caps_reach_the_decode_workers(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    # 1100 x 1100 slices are within the default caps (the 64 MiB floor) but over
    # --max-decoded-mib 1: the worker processes that decode them must apply the run's cap.
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    frame = crafted.jpeg_frame(1100, 1100, scan_bytes=4800)  # covers all 19,044 blocks
    _one_series(crafted, in_dir, frame, 1100, 3)
    run = crafted.run_measured(
        ["transform", str(in_dir), str(out_dir), "--backend", "auto", "--jobs", "2",
         "--format", "nifti", "--max-decoded-mib", "1"]
    )  # fmt: skip
    assert run["rc"] == 1, run["err"]
    records = _records(out_dir)
    assert [r["error"]["code"] for r in records] == [DecodeLimitError.code]
    assert "--max-decoded-mib 1)" in str(records[0]["error"]["message"])


def test_native_pixel_data_sized_for_other_bits_is_rejected(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    # BitsAllocated 8 over pixel data written at 16 bits: twice the bytes the header needs
    wide = np.arange(16 * 16, dtype="<u2").tobytes()
    path = crafted.write_native(tmp_path / "in" / "a.dcm", 16, 16, 8, wide)
    got = read_header(path, "a.dcm")
    assert getattr(got, "code", None) == PixelDataLengthError.code, got
    with pytest.raises(PixelDataLengthError):
        read_frames(path)
    run, records = _transform_measured(crafted, tmp_path / "in", tmp_path / "out")
    assert run["rc"] == 1
    assert [r["error"]["code"] for r in records] == [PixelDataLengthError.code]
    assert not list((tmp_path / "out").rglob("*.nii"))


def test_one_pad_byte_is_accepted(tmp_path: Path, crafted: SimpleNamespace) -> None:
    pixels = np.arange(3 * 5, dtype=np.uint8)
    path = crafted.write_native(tmp_path / "a.dcm", 3, 5, 8, pixels.tobytes() + b"\0")
    np.testing.assert_array_equal(read_frames(path)[0], pixels.reshape(3, 5))


@pytest.mark.parametrize(
    ("bits", "stored", "high"), [(8, 8, 3), (16, 12, 15), (12, 12, 11), (16, 17, 16)]
)
def test_bit_depths_outside_ps35_are_errors(
    tmp_path: Path, crafted: SimpleNamespace, bits: int, stored: int, high: int
) -> None:
    n = 4 * 4 * ((bits + 7) // 8)
    path = crafted.write_native(tmp_path / "a.dcm", 4, 4, bits, bytes(n), high_bit=high)
    from pydicom import dcmread

    ds = dcmread(path)
    ds.BitsStored = stored
    ds.save_as(path)
    got = read_header(path, "a.dcm")
    assert getattr(got, "code", None) == BitDepthError.code, got


def test_codestream_header_must_match(tmp_path: Path, crafted: SimpleNamespace) -> None:
    # the DICOM header says 64x64, the JPEG frame header 64x80
    frame = crafted.jpeg_frame(64, 80, scan_bytes=8)
    path = crafted.write_encapsulated(
        tmp_path / "a.dcm", crafted.JPEG_BASELINE, frame, 64, 64, 8
    )
    with pytest.raises(PixelDataSizeError, match="64x80"):
        read_frames(path)
    # cut short: no end-of-image marker
    path = crafted.write_encapsulated(
        tmp_path / "b.dcm", crafted.JPEG_BASELINE, frame[:-2] + b"\0\0", 64, 80, 8
    )
    with pytest.raises(CodestreamMismatchError, match="end marker"):
        read_frames(path)


def test_a_jpeg_too_short_for_its_matrix_is_not_filled_in(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    # 2048 x 2048 (4 MiB, well within the caps) from 330 bytes of scan: at two bits per
    # 8x8 block at least, the 65,536 blocks need 16 KiB. The decoders fill the rest.
    short = crafted.jpeg_frame(2048, 2048)
    path = crafted.write_encapsulated(
        tmp_path / "in" / "a.dcm", crafted.JPEG_BASELINE, short, 2048, 2048, 8
    )
    with pytest.raises(CodestreamMismatchError, match="cut short"):
        read_frames(path)
    run, records = _transform_measured(crafted, tmp_path / "in", tmp_path / "out")
    assert run["rc"] == 1, run["err"]
    assert [r["error"]["code"] for r in records] == [CodestreamMismatchError.code]
    # the same matrix with enough scan data (4 blocks per zero byte) is a real image
    whole = crafted.jpeg_frame(2048, 2048, scan_bytes=16384)
    path = crafted.write_encapsulated(
        tmp_path / "b.dcm", crafted.JPEG_BASELINE, whole, 2048, 2048, 8
    )
    assert read_frames(path).shape == (1, 2048, 2048)


def test_the_caps_are_configurable(tmp_path: Path, crafted: SimpleNamespace) -> None:
    frame = crafted.jpeg_frame(64, 64, scan_bytes=64)
    path = crafted.write_encapsulated(
        tmp_path / "a.dcm", crafted.JPEG_BASELINE, frame, 64, 64, 8
    )
    assert read_frames(path).shape == (1, 64, 64)  # within the default caps
    tight = limits.DecodeLimits(max_ratio=1.0, floor_bytes=0)
    with limits.decode_limits(tight), pytest.raises(DecodeLimitError):
        read_frames(path)
    assert limits.current_limits() == limits.DEFAULT_LIMITS


def test_inflating_reader_stops_at_its_limit() -> None:
    import io
    import zlib

    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = z.compress(bytes(10 << 20)) + z.flush()
    reader = limits.InflatingReader(io.BytesIO(data), 3 << 20, "x")
    assert reader.read(100) == bytes(100)
    assert reader.inflated < 2 << 20  # inflated as far as it was read, not further
    with pytest.raises(DecodeLimitError):
        reader.read()
    assert reader.inflated <= (3 << 20) + (1 << 20)


def test_the_shortest_jpeg_counts_every_component() -> None:
    # YCbCr 4:2:0 at 64 x 64: 64 luma blocks + 16 + 16 chroma, two bits each
    specs = bytes((1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1))
    assert limits._jpeg_min_bytes(0xC0, 64, 64, specs) == 2 * 96 // 8
    assert limits._jpeg_min_bytes(0xC3, 10, 10, bytes((1, 0x11, 0))) == 100 // 8
    assert limits._jpeg_min_bytes(0xC2, 64, 64, specs) == 0  # progressive: no bound
    assert limits._jpeg_min_bytes(0xC0, 0, 64, specs) == 0  # height set later (DNL)
