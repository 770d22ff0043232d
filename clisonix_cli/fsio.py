"""Atomic, idempotent file writes and content hashes (shared by every writer).

A killed run never leaves a partial file under a final name: bytes go to a temporary name in
the destination folder, are flushed to disk, then renamed into place. Writing the same bytes
twice (a task re-run after a worker loss) is safe.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".clxtmp"


def tmp_name(final: Path) -> Path:
    """The temporary sibling of ``final``; unique per process so that two writers never clash."""
    return final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")


def atomic_write(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it to ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    atomic_write(final, write)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_within(path: Path, root: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (guards every output path)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
