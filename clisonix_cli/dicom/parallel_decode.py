"""Decode the compressed files of one stack on worker processes, delivered in stack order.

A JPEG 2000 slice takes 25-33 ms to decode and the decoders hold the GIL, so one series
decodes on one core unless its files go to processes. :func:`ordered_frames` hands the
files to an executor (any object with ``submit``, e.g. a loky ``ProcessPoolExecutor``
owned by the task array) a few at a time, keeps at most ``2 x workers`` batches in flight
(memory stays bounded whatever the series length), and yields the decoded frames in the
order asked. Each worker runs the very function the serial path runs
(:func:`~clisonix_cli.dicom.pixels.read_frames`), so the values, and the digests of the
files, are byte-identical to a serial read.

A worker that dies (a crash in a native decoder) breaks the pool: the task fails with
``CLX-E150`` naming the files of the batch that was being decoded, and the process that
runs the task lives on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clisonix_cli.dicom.limits import DecodeLimits, current_limits, decode_limits
from clisonix_cli.dicom.model import PixelInfo
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.digest import finish, hasher
from clisonix_cli.errors import WorkerDiedError

__all__ = ["BATCH_BYTES", "DecodePool", "FileItem", "decode_files", "ordered_frames"]

#: Decoded bytes per batch sent to a worker (at least one file, at most 4): enough work per
#: round trip (the pickling of a batch costs about 1 ms) and little memory in flight.
BATCH_BYTES = 4 << 20

#: One file to decode: (path relative to the root, its PixelInfo, the frames wanted).
FileItem = tuple[str, PixelInfo | None, tuple[int, ...]]


def decode_files(
    root: str,
    items: Sequence[FileItem],
    digest: bool,
    limits: DecodeLimits | None = None,
) -> list[tuple[np.ndarray, str | None]]:
    """Worker side: the frames of each file, and the file's digest when asked.

    ``limits`` are the decoding caps of the task that sent the batch (a worker process
    does not inherit them); errors are raised as the serial read raises them (the stable
    ``CLX-E`` types: a bomb fails its file with its code here as well).
    """
    out: list[tuple[np.ndarray, str | None]] = []
    with decode_limits(limits):
        for rel, info, frames in items:
            h = hasher() if digest else None
            arr = read_frames(
                Path(root) / rel, frames=list(frames), info=info, label=rel, sha256=h
            )
            out.append((arr, None if h is None else finish(h)))
    return out


def _batches(items: Sequence[FileItem], per: int) -> list[list[FileItem]]:
    return [list(items[at : at + per]) for at in range(0, len(items), per)]


def _per_batch(items: Sequence[FileItem]) -> int:
    info = items[0][1] if items else None
    if info is None:
        return 1
    frame = info.rows * info.cols * max(1, info.bits_allocated // 8)
    frames = max(1, len(items[0][2]))
    return max(1, min(4, BATCH_BYTES // max(1, frame * frames)))


def ordered_frames(
    executor: Any,
    workers: int,
    root: Path,
    items: Sequence[FileItem],
    *,
    digest: bool,
) -> Iterator[tuple[np.ndarray, str | None]]:
    """Decode ``items`` on ``executor``; yield ``(frames, digest)`` per item, in order.

    Parameters
    ----------
    executor : concurrent.futures.Executor-like
        Runs :func:`decode_files` in worker processes.
    workers : int
        Its number of workers (sets how many batches are kept in flight).
    root : Path
        The scan root (``items`` are relative to it).
    items : sequence of FileItem
        The files, in the order their frames are wanted.
    digest : bool
        Also return each file's labelled digest (:mod:`clisonix_cli.digest`).

    Yields
    ------
    ((F, R, C) ndarray, str or None)
        What ``read_frames`` returns for the file, and its digest.

    Raises
    ------
    WorkerDiedError
        A worker process died (CLX-E150).
    ClisonixError
        The reading error of the first file that failed, as the serial read raises it.
    """
    from concurrent.futures.process import BrokenProcessPool  # loky's is a subclass

    batches = _batches(items, _per_batch(items))
    limits = current_limits()  # the task's caps travel with every batch
    pending: deque[tuple[list[FileItem], Future[Any]]] = deque()
    at = 0
    try:
        while at < len(batches) or pending:
            while at < len(batches) and len(pending) < 2 * max(1, workers):
                fut = executor.submit(
                    decode_files, str(root), batches[at], digest, limits
                )
                pending.append((batches[at], fut))
                at += 1
            batch, fut = pending.popleft()
            try:
                results = fut.result()
            except BrokenProcessPool:
                names = ", ".join(rel for rel, _i, _f in batch)
                raise WorkerDiedError(
                    f"{names}: a decoder process died while decoding these files (a "
                    "crash in a native decoder, or an out-of-memory kill); check these "
                    "files, or give each worker more memory (fewer --jobs)"
                ) from None
            yield from results
    finally:
        for _batch, fut in pending:  # a failure or an early stop: drop the rest
            fut.cancel()


@dataclass(frozen=True)
class DecodePool:
    """Worker processes a reader may decode compressed files on (see the module).

    Parameters
    ----------
    executor : concurrent.futures.Executor-like
        Process pool owned by the caller (the task array sizes and closes it).
    workers : int
        Its number of workers.
    """

    executor: Any
    workers: int

    def frames(
        self, root: Path, items: Sequence[FileItem], *, digest: bool
    ) -> Iterator[tuple[np.ndarray, str | None]]:
        """:func:`ordered_frames` on this pool."""
        return ordered_frames(self.executor, self.workers, root, items, digest=digest)
