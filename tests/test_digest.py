"""The manifest's content digests: BLAKE3 written, sha256 of older manifests still read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from blake3 import blake3

from clisonix_cli import digest


def test_file_digest_names_its_algorithm(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # several read chunks, not a multiple of one
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert digest.file_digest(f) == "blake3:" + blake3(data).hexdigest()
    assert (
        digest.file_digest(f, "sha256") == "sha256:" + hashlib.sha256(data).hexdigest()
    )
    h = digest.hasher()
    h.update(data[:5])
    h.update(memoryview(data)[5:])
    assert digest.finish(h) == digest.file_digest(f)


def test_parse_reads_labelled_and_bare_values() -> None:
    assert digest.parse("blake3:ab12") == ("blake3", "ab12")
    assert digest.parse("sha256:cd34") == ("sha256", "cd34")
    assert digest.parse("ef56" * 16) == ("sha256", "ef56" * 16)  # earlier manifests
    for bad in ("md5:00", "", None, 7):
        with pytest.raises(ValueError):
            digest.parse(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown digest algorithm"):
        digest.hasher("md5")


def test_matches_uses_the_recorded_algorithm(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"voxels")
    sha = hashlib.sha256(b"voxels").hexdigest()
    for recorded in (
        "blake3:" + blake3(b"voxels").hexdigest(),
        "sha256:" + sha,
        sha,
    ):
        assert digest.matches(f, recorded)
    assert not digest.matches(f, "blake3:" + blake3(b"other").hexdigest())
    assert not digest.matches(f, "md5:" + hashlib.md5(b"voxels").hexdigest())
    assert not digest.matches(f, None)
