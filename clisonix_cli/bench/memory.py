"""The machine's memory-copy bandwidth, measured in the same run as the ops.

Convention: **bytes moved = bytes read + bytes written**. ``np.copyto`` of an N-byte buffer
moves 2N bytes; an op that reads an N-byte volume and writes an M-byte result moves N + M.
Both sides of the "fraction of copy bandwidth" figure use this one convention, so a pointwise
op at fraction 1.0 moves data as fast as a plain copy can (it is purely memory-bound).

The all-cores figure splits the buffer in contiguous chunks copied by one thread each
(``np.copyto`` releases the GIL for plain dtypes).

Two destinations are measured (``fresh``):

- **warm** (``fresh=False``): ``np.copyto`` into one preallocated destination whose pages
  are already mapped. The machine's ceiling: memory traffic only.
- **fresh** (``fresh=True``): every copy goes into a new ``np.empty`` destination, as
  ``np.copy`` does and as every op does with its output. The kernel then maps and zeroes
  each destination page on first touch (with transparent huge pages, one 2 MiB fault per
  2 MiB; without them one 4 KiB fault per page, several times slower), which costs about
  one extra write of the destination. This is the like-for-like ceiling of an op that
  returns a new array.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from clisonix_cli.bench.harness import Timing, rate, time_call

#: Default buffer: large enough to defeat every cache level of current CPUs (L3 <= 512 MiB).
DEFAULT_BUFFER_MIB = 256
QUICK_BUFFER_MIB = 64


def _copy_fresh(src: np.ndarray, pool: ThreadPoolExecutor | None, n: int) -> np.ndarray:
    """Copy ``src`` into a new array (its pages faulted in by the copying threads)."""
    dst = np.empty_like(src)
    if pool is None:
        np.copyto(dst, src)
    else:
        _copy_chunks(dst, src, pool, n)
    return dst


def _copy_chunks(
    dst: np.ndarray, src: np.ndarray, pool: ThreadPoolExecutor, n: int
) -> None:
    bounds = np.linspace(0, src.size, n + 1).astype(np.int64)
    futures = [
        pool.submit(np.copyto, dst[lo:hi], src[lo:hi])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    for fut in futures:
        fut.result()


def copy_bandwidth(
    *,
    buffer_mib: int = DEFAULT_BUFFER_MIB,
    threads: int = 1,
    repeats: int = 5,
    fresh: bool = False,
) -> tuple[float, Timing]:
    """Measure memory-copy bandwidth with ``np.copyto`` on a large buffer.

    Parameters
    ----------
    buffer_mib : int
        Size of the source buffer in MiB (the destination has the same size).
    threads : int
        Threads copying disjoint chunks at once (1 = plain ``np.copyto``).
    repeats : int
        Timed copies after one warm-up copy (which also faults the pages in).
    fresh : bool
        Copy into a new ``np.empty`` destination every time (page faults included, as
        ``np.copy`` and every op's output) instead of one preallocated warm destination.

    Returns
    -------
    gbps : float
        Median bandwidth in GB/s (1e9 bytes), counting read + write.
    timing : Timing
        The copy times.
    """
    if buffer_mib < 1 or threads < 1:
        raise ValueError(
            f"buffer_mib and threads must be >= 1, got {buffer_mib}, {threads}"
        )
    n = buffer_mib * 1024 * 1024 // 8
    src = np.arange(n, dtype=np.float64)  # written once: every page is really backed
    dst = np.ones_like(src)
    if fresh:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            use = pool if threads > 1 else None
            timing = time_call(lambda: _copy_fresh(src, use, threads), repeats=repeats)
        dst = _copy_fresh(src, None, 1)
    elif threads == 1:
        timing = time_call(lambda: np.copyto(dst, src), repeats=repeats)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            timing = time_call(
                lambda: _copy_chunks(dst, src, pool, threads), repeats=repeats
            )
    if not np.array_equal(dst[-16:], src[-16:]):  # the copy really happened
        raise RuntimeError("memory-copy benchmark produced a wrong copy")
    return rate(2.0 * src.nbytes, timing.median) / 1e9, timing
