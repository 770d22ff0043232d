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

OUT_DIR hygiene: temporary files get random names and are created with
``O_CREAT|O_EXCL|O_NOFOLLOW``; inside :func:`confined` (a task, the driver's manifest and
run log) every folder below OUT_DIR is opened one component at a time without following
links, so a symbolic link planted in OUT_DIR is refused (:class:`OutputLinkError`, exit 3)
and never written through. Inputs are opened by :func:`open_regular` only when they are
regular files, so a FIFO never blocks a run.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from clisonix_cli.digest import file_digest, finish, hasher
from clisonix_cli.errors import EnvironmentProblem, OutputLinkError
from clisonix_cli.regular import open_regular as open_regular

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

    The probe file has a random name and is created with ``O_CREAT|O_EXCL|O_NOFOLLOW``, so
    a file or link planted in OUT_DIR is never opened, let alone truncated.

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
    probe = f".clisonix-probe.{secrets.token_hex(8)}{TMP_SUFFIX}"
    try:
        dfd = os.open(out_dir, _DIR_FLAGS)
        try:
            os.close(os.open(probe, _NEW_FILE, 0o600, dir_fd=dfd))
            os.unlink(probe, dir_fd=dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise EnvironmentProblem(
            f"{out_dir}: the output folder is not writable ({exc.strerror or exc}); "
            "check its permissions and free space, or choose another folder"
        ) from None


def tmp_name(final: Path) -> Path:
    """A fresh temporary sibling of ``final``: a random name, so that no one can plant it."""
    return final.with_name(f".{final.name}.{secrets.token_hex(8)}{TMP_SUFFIX}")


# --- writing confined to OUT_DIR: no symbolic link is ever followed below it ---------------

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_ROOT: ContextVar[str | None] = ContextVar("clisonix_write_root", default=None)


@contextmanager
def confined(root: Path | str) -> Iterator[None]:
    """Every write of this module inside the block lands under ``root``, through no link.

    A task wraps its writes in ``confined(OUT_DIR)``: folders below ``root`` are opened one
    component at a time with ``O_NOFOLLOW`` (created when missing), files are created with
    ``O_CREAT|O_EXCL|O_NOFOLLOW`` and renamed inside the opened folder, so a symbolic link
    planted anywhere below ``root`` (even while the run goes on) is refused, never followed.
    ``root`` itself may be a link: that is the user's choice of OUT_DIR.
    """
    token = _ROOT.set(os.path.abspath(root))
    try:
        yield
    finally:
        _ROOT.reset(token)


def _link_error(path: str, root: str) -> OutputLinkError:
    return OutputLinkError(
        f"{path}: is a symbolic link (or lies under one) inside OUT_DIR {root}; clisonix "
        "writes only to real files and folders there - remove the link or choose another "
        "output folder"
    )


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _open_folder(folder: Path, *, create: bool) -> int:
    """A descriptor of ``folder``; under the confining root, opened without following links."""
    root = _ROOT.get()
    target = os.path.abspath(folder)
    if root is None:
        if create:
            os.makedirs(target, exist_ok=True)
        return os.open(target, _DIR_FLAGS)
    rel = os.path.relpath(target, root)
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise OutputLinkError(
            f"{target}: lies outside OUT_DIR {root}; refusing to write there"
        )
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in [] if rel == "." else rel.split(os.sep):
            try:
                nfd = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                nfd = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, fd):
                    raise _link_error(target, root) from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_no_links(root: Path, rel_paths: Iterable[str]) -> None:
    """Refuse (exit 3) when a path below ``root`` clisonix will write is a link or under one.

    Parameters
    ----------
    root : Path
        OUT_DIR.
    rel_paths : iterable of str
        POSIX paths relative to ``root`` (existing or not): each component that exists must
        be a real file or folder.

    Raises
    ------
    OutputLinkError
        One of them is a symbolic link or lies under one.
    """
    base = os.path.abspath(root)
    for rel in rel_paths:
        path = base
        for part in rel.split("/"):
            path = os.path.join(path, part)
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                raise _link_error(path, base)
            if not stat.S_ISDIR(mode):
                break


def open_append(path: Path) -> IO[str]:
    """Open a log or manifest for appending (UTF-8), never through a symbolic link.

    Under :func:`confined` the folders are checked as for every write; the file itself is
    opened with ``O_NOFOLLOW`` in any case.
    """
    dfd = _open_folder(path.parent, create=True)
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(path.name, flags, 0o666, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _link_error(str(path), _ROOT.get() or str(path.parent)) from None
            raise
    finally:
        os.close(dfd)
    return os.fdopen(fd, "a", encoding="utf-8")


def atomic_write(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it to ``final``.

    The temporary file is created first (random name, ``O_EXCL|O_NOFOLLOW``) and handed to
    ``write`` to fill.
    """
    dfd = _open_folder(final.parent, create=True)
    tmp = tmp_name(final)
    try:
        if _is_link(final.name, dfd):
            raise _link_error(str(final), _ROOT.get() or str(final.parent))
        os.close(os.open(tmp.name, _NEW_FILE, 0o666, dir_fd=dfd))
        write(tmp)
        if fsync_enabled():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp.name, final.name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp.name, dir_fd=dfd)
        os.close(dfd)


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
    OutputLinkError
        Under :func:`confined`: ``final`` or a folder above it is a symbolic link.
    """
    dfd = _open_folder(final.parent, create=True)
    tmp = tmp_name(final).name
    h = hasher() if digest else None
    sync = fsync_enabled()
    try:
        if _is_link(final.name, dfd):
            raise _link_error(str(final), _ROOT.get() or str(final.parent))
        fd = os.open(tmp, _NEW_FILE, 0o666, dir_fd=dfd)
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
        os.replace(tmp, final.name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dfd)
        os.close(dfd)
    return None if h is None else finish(h)


def atomic_write_bytes(
    final: Path, data: Buffer, *, digest: bool = False
) -> str | None:
    """Write ``data`` to ``final`` atomically; return its labelled digest when ``digest``."""
    return atomic_write_chunks(final, (data,), digest=digest)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (a regular file only: a FIFO is never opened)."""
    return file_digest(path, "sha256").partition(":")[2]


def is_within(path: Path, root: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (guards every output path)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
