"""Deterministic, block-parallel gzip (RFC 1952) for ``.nii.gz``: the bytes never depend on
the number of threads.

The stream is cut into fixed blocks of :data:`BLOCK_BYTES` of uncompressed data (the last
one shorter). Each block is compressed on its own as raw deflate (RFC 1951) by ISA-L's igzip
(the PyPI ``isal`` package) at :data:`LEVEL`, and every block but the last ends with a sync
flush (an empty stored block: the stream stays byte-aligned and not final), as pigz does.
The concatenation of the blocks, in order, between a fixed 10-byte header (mtime 0, no
name, OS "unknown") and the CRC-32/size trailer is one valid gzip member: ``gzip -t``,
zlib, nibabel and every gzip reader read it. A block's bytes depend only on its input, so
the file is the same whether one thread or eight compressed it, and on every run.

Measured on CT data (512x512 int16 phantoms, one core): igzip level 2 compresses 3.4x
faster than zlib level 1 (nibabel's default, used before) to the same size (0.498 vs 0.497
of the input); float32 output 3.7x faster, 1 % larger. Resetting the history every 1 MiB
costs under 0.1 % of size. Threads help because igzip, like zlib, releases the GIL.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["BLOCK_BYTES", "LEVEL", "gzip_bytes", "gzip_chunks"]

#: Uncompressed bytes per independently compressed block (fixed: it decides the bytes).
BLOCK_BYTES = 1 << 20
#: ISA-L compression level (0-3; 2 matched zlib level 1's size on CT data at 3x its speed).
LEVEL = 2
#: ID1 ID2, CM deflate, no flags, MTIME 0, XFL 0, OS 255 (unknown): no clock, no platform.
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _deflate(block: bytes, final: bool) -> bytes:
    """Raw deflate of one block: sync-flushed (byte-aligned, not final) unless ``final``."""
    from isal import isal_zlib

    comp = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)
    out = comp.compress(block)
    return out + comp.flush(isal_zlib.Z_FINISH if final else isal_zlib.Z_SYNC_FLUSH)


def _blocks(parts: Iterable[Any], block_bytes: int) -> Iterator[bytes]:
    """The concatenated parts cut into ``block_bytes`` pieces (copies: a part's buffer may
    be reused by its producer once the next part is asked for)."""
    pending = bytearray()
    for part in parts:
        view = memoryview(part).cast("B")
        at = 0
        if pending:
            take = min(block_bytes - len(pending), len(view))
            pending += view[:take]
            at = take
            if len(pending) < block_bytes:
                continue
            yield bytes(pending)
            pending.clear()
        while len(view) - at >= block_bytes:
            yield bytes(view[at : at + block_bytes])
            at += block_bytes
        pending += view[at:]
    if pending:
        yield bytes(pending)


def _with_last(blocks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each block with a flag telling whether it is the last (one block of look-ahead)."""
    prev: bytes | None = None
    for block in blocks:
        if prev is not None:
            yield prev, False
        prev = block
    yield (prev if prev is not None else b""), True


def gzip_chunks(
    parts: Iterable[Any], *, threads: int = 1, block_bytes: int = BLOCK_BYTES
) -> Iterator[bytes]:
    """gzip of the concatenated ``parts``, streamed, compressed on up to ``threads`` threads.

    Parameters
    ----------
    parts : iterable of bytes-like
        C-contiguous buffers (bytes, memoryview, numpy arrays), consumed in order.
    threads : int
        Blocks compressed at once; 1 compresses in the calling thread. The output bytes
        are the same for every value.
    block_bytes : int
        Uncompressed bytes per block; part of the format's definition (tests only).

    Yields
    ------
    bytes
        The header, each compressed block in order, then the 8-byte trailer. At most
        ``2 * threads`` blocks are in memory at once.
    """
    from isal import isal_zlib

    yield HEADER
    crc = 0
    size = 0
    blocks = _with_last(_blocks(parts, block_bytes))
    if threads <= 1:
        for block, last in blocks:
            crc = isal_zlib.crc32(block, crc)
            size += len(block)
            yield _deflate(block, last)
    else:
        window: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clx-gz") as ex:
            for block, last in blocks:
                crc = isal_zlib.crc32(block, crc)
                size += len(block)
                window.append(ex.submit(_deflate, block, last))
                while len(window) >= 2 * threads:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def gzip_bytes(data: Any, *, block_bytes: int = BLOCK_BYTES) -> bytes:
    """:func:`gzip_chunks` of one buffer, in memory (the reference for tests)."""
    return b"".join(gzip_chunks([data], threads=1, block_bytes=block_bytes))
