"""Block-parallel gzip: the same bytes for any thread count and any split of the input,
valid for every gzip reader (Python's gzip, zlib, ``gzip -t``, nibabel)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clisonix_cli import runtime
from clisonix_cli.formats import _gzip
from clisonix_cli.formats._gzip import HEADER, gzip_bytes, gzip_chunks
from clisonix_cli.formats.nifti import write_nifti


def _ct_like(n_bytes: int) -> bytes:
    rng = np.random.default_rng(7)
    ramp = np.linspace(-1000, 1500, n_bytes // 2)
    return (ramp + rng.normal(0, 20, ramp.size)).astype("<i2").tobytes()


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 5000), max_size=6),
    threads=st.integers(1, 5),
    block=st.sampled_from([1, 7, 64, 1000, 4096]),
)
def test_bytes_do_not_depend_on_threads_or_parts(
    cuts: list[int], threads: int, block: int
) -> None:
    data = _ct_like(5000)
    at = sorted(min(c, len(data)) for c in cuts)
    parts = [data[a:b] for a, b in zip([0, *at], [*at, len(data)], strict=True)]
    got = b"".join(gzip_chunks(parts, threads=threads, block_bytes=block))
    assert got == gzip_bytes(data, block_bytes=block)
    assert gzip.decompress(got) == data
    assert zlib.decompress(got, 31) == data


def test_header_trailer_and_empty_input() -> None:
    data = _ct_like(3 * _gzip.BLOCK_BYTES + 123)
    raw = b"".join(gzip_chunks([memoryview(data)], threads=3))
    assert raw[:10] == HEADER and raw[4:8] == b"\0\0\0\0"  # mtime 0: no clock
    assert raw == gzip_bytes(data)
    assert int.from_bytes(raw[-4:], "little") == len(data)
    assert int.from_bytes(raw[-8:-4], "little") == zlib.crc32(data)
    assert len(raw) < 0.8 * len(data)  # it compresses
    assert gzip.decompress(gzip_bytes(b"")) == b""


def test_parts_may_reuse_their_buffer() -> None:
    """A producer refills one buffer per part (as a stack stream does)."""
    data = _ct_like(40_000)
    buf = bytearray(3000)

    def refilled():  # type: ignore[no-untyped-def]
        for at in range(0, len(data), len(buf)):
            piece = data[at : at + len(buf)]
            buf[: len(piece)] = piece
            yield memoryview(buf)[: len(piece)]

    got = b"".join(gzip_chunks(refilled(), threads=4, block_bytes=1000))
    assert gzip.decompress(got) == data


@pytest.mark.parametrize("budget", [1, 2, 4])
def test_nii_gz_is_valid_and_identical_for_any_budget(
    tmp_path: Path, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel as nib

    monkeypatch.setattr(_gzip, "BLOCK_BYTES", 4096)  # several blocks in a small file
    rng = np.random.default_rng(1)
    vol = rng.integers(-1000, 2000, size=(9, 20, 24)).astype(np.int16)
    with runtime.task_threads(None, limit_blas=False, budget=budget):
        assert runtime.cpu_budget() == budget
        (out,) = write_nifti(tmp_path / f"v{budget}.nii.gz", vol, np.eye(4))
    ref = tmp_path / "ref.nii.gz"
    with runtime.task_threads(None, limit_blas=False, budget=1):
        write_nifti(ref, vol, np.eye(4))
    assert out.read_bytes() == ref.read_bytes()
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), vol)
    gz = shutil.which("gzip")
    if gz is not None:
        assert subprocess.run([gz, "-t", str(out)], check=False).returncode == 0
