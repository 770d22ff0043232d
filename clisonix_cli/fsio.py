"""Atomic, idempotent file writes and content hashes (shared by every writer).

A killed run never leaves a partial file under a final name: bytes go to a temporary name in
the destination folder, are flushed to disk, then renamed into place. Writing the same bytes
twice (a task re-run after a worker loss) is safe.

Large outputs are written by :func:`atomic_write_chunks` straight from the caller's buffers
(no joined copy), hashed on the way when asked (no second read to fill the manifest), and
handed to the kernel's writeback every :data:`WRITEBACK_BYTES` so that the closing fsync
waits for the tail of the file only, not for all of it.

The fsync is what makes an output survive a power loss; it costs the disk's write time
(here about 470 MB/s: 2 s per GB of output), which no in-memory work can hide. It is off by
default; the environment variable ``CLISONIX_FSYNC=1`` turns it (and the writeback hints)
on. Without it the rename stays atomic for every process, a killed run still leaves no
partial file under a final name, and after a power loss ``--resume``/``clisonix verify``
find a damaged output by its recorded digest (:mod:`clisonix_cli.digest`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from clisonix_cli.digest import finish, hasher
from clisonix_cli.errors import EnvironmentProblem

TMP_SUFFIX = ".clxtmp"
#: Bytes handed to ``write(2)`` (and to the hash) at a time: they stay in the CPU cache
#: between the hash and the copy into the page cache.
WRITE_CHUNK = 4 << 20
#: Every this many bytes written, start the writeback of what was written so far
#: (``posix_fadvise(POSIX_FADV_DONTNEED)``: asynchronous, it does not wait).
WRITEBACK_BYTES = 32 << 20

Buffer = bytes | bytearray | memoryview


def fsync_enabled() -> bool:
    """True when ``CLISONIX_FSYNC`` is ``1``/``yes``/``true``/``on``: wait for the disk.

    Off by default: on this class of disk fsync cost about 1 s per GB of output (measured),
    dcm2niix does not pay it, and the manifest (which is always fsynced) records every
    output's digest, so ``--resume`` and ``verify`` find an output damaged by a power loss.
    A killed process never leaves a partial file under a final name either way (rename).
    """
    value = os.environ.get("CLISONIX_FSYNC", "0").strip().lower()
    return value in ("1", "yes", "true", "on")


def prepare_out_dir(out_dir: Path) -> None:
    """Create an output folder if needed and prove it writable (``transform``, ``synth``).

    Parameters
    ----------
    out_dir : Path
        The output folder; its missing parents are created too.

    Raises
    ------
    EnvironmentProblem
        It is a file, or it cannot be created or written (exit 3).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise EnvironmentProblem(
            f"{out_dir}: exists and is not a folder; give a folder path for OUT_DIR"
        ) from None
    except OSError as exc:
        raise EnvironmentProblem(
            f"{out_dir}: cannot create the output folder ({exc.strerror or exc}); check "
            "the path and the permissions of its parent"
        ) from None
    probe = out_dir / f".clisonix-probe.{os.getpid()}{TMP_SUFFIX}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EnvironmentProblem(
            f"{out_dir}: the output folder is not writable ({exc.strerror or exc}); "
            "check its permissions and free space, or choose another folder"
        ) from None


def tmp_name(final: Path) -> Path:
    """The temporary sibling of ``final``; unique per process so that two writers never clash."""
    return final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")


def atomic_write(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it to ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    try:
        write(tmp)
        if fsync_enabled():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _start_writeback(fd: int, start: int, length: int) -> None:
    if length > 0 and hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)
        except OSError:  # advisory only
            pass


def atomic_write_chunks(
    final: Path, chunks: Iterable[Any], *, digest: bool = False
) -> str | None:
    """Write the concatenation of ``chunks`` to ``final`` atomically, without joining them.

    Parameters
    ----------
    final : Path
        Destination; its folder is created.
    chunks : iterable of bytes-like
        Written in order; each must be C-contiguous (bytes, memoryview, numpy array).
        A generator is consumed lazily, so a caller can produce the file slab by slab.
    digest : bool
        Also compute the digest of the bytes written (the manifest's algorithm).

    Returns
    -------
    str or None
        The labelled digest (``"blake3:<hex>"``) of the file's bytes when ``digest``,
        else None.

    Raises
    ------
    OSError
        The file cannot be written; nothing is left under ``final`` or the temporary name.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    h = hasher() if digest else None
    sync = fsync_enabled()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
        try:
            written = flushed = 0
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                for at in range(0, len(view), WRITE_CHUNK):
                    piece = view[at : at + WRITE_CHUNK]
                    if h is not None:
                        h.update(piece)
                    _write_all(fd, piece)
                    written += len(piece)
                    if sync and written - flushed >= WRITEBACK_BYTES:
                        _start_writeback(fd, flushed, written - flushed)
                        flushed = written
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return None if h is None else finish(h)


def atomic_write_bytes(
    final: Path, data: Buffer, *, digest: bool = False
) -> str | None:
    """Write ``data`` to ``final`` atomically; return its labelled digest when ``digest``."""
    return atomic_write_chunks(final, (data,), digest=digest)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def is_within(path: Path, root: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (guards every output path)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
