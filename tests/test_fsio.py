"""Atomic writes: streamed chunks, digests on the way, cleanup on failure, the fsync switch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3

from clisonix_cli import fsio
from clisonix_cli.digest import file_digest


def test_chunks_are_written_in_order_with_their_digest(tmp_path: Path) -> None:
    arr = np.arange(3 * 1000, dtype="<i2").reshape(3, 1000)
    parts: list[object] = [b"head", memoryview(b"-mid-"), arr, bytearray(b"tail")]
    expected = b"head-mid-" + arr.tobytes() + b"tail"
    target = tmp_path / "sub" / "out.bin"
    digest = fsio.atomic_write_chunks(target, parts, digest=True)
    assert target.read_bytes() == expected
    assert digest == "blake3:" + blake3(expected).hexdigest() == file_digest(target)
    assert fsio.atomic_write_chunks(tmp_path / "plain.bin", [b"x"]) is None
    assert fsio.atomic_write_bytes(tmp_path / "b.bin", b"abc", digest=True) == (
        "blake3:" + blake3(b"abc").hexdigest()
    )


def test_pieces_larger_than_the_write_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsio, "WRITE_CHUNK", 7)
    monkeypatch.setattr(fsio, "WRITEBACK_BYTES", 10)
    data = bytes(range(256)) * 3
    digest = fsio.atomic_write_chunks(
        tmp_path / "x", [data[:100], data[100:]], digest=True
    )
    assert (tmp_path / "x").read_bytes() == data
    assert digest == "blake3:" + blake3(data).hexdigest()


def test_a_failing_producer_leaves_no_file_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous run")

    def parts() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("reader failed mid-way")

    with pytest.raises(RuntimeError, match="mid-way"):
        fsio.atomic_write_chunks(target, parts(), digest=True)
    assert target.read_bytes() == b"previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no *.clxtmp left


def test_chunks_are_consumed_lazily(tmp_path: Path) -> None:
    seen: list[int] = []

    def parts() -> Iterator[bytes]:
        for i in range(3):
            seen.append(i)
            yield bytes([i]) * 4

    fsio.atomic_write_chunks(tmp_path / "x", parts())
    assert seen == [0, 1, 2]
    assert (tmp_path / "x").read_bytes() == b"\x00" * 4 + b"\x01" * 4 + b"\x02" * 4


@pytest.mark.parametrize(
    ("value", "synced"),
    [(None, False), ("1", True), ("on", True), ("0", False), ("off", False)],
)
def test_fsync_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, synced: bool
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    if value is None:
        monkeypatch.delenv("CLISONIX_FSYNC", raising=False)
    else:
        monkeypatch.setenv("CLISONIX_FSYNC", value)
    fsio.atomic_write_chunks(tmp_path / "a", [b"data"])

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"data")

    fsio.atomic_write(tmp_path / "b", write)
    assert bool(calls) is synced
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == b"data"
