"""Machine-speed yardstick of a run: an in-cache memory copy, at 1 thread and every core.

``--compare`` divides each gated timing by this yardstick measured in the same run, so a
machine that is slower for everything (a busy neighbour, a lower clock, another VM on the
host) does not read as a regression, while code that got slower still does.

The work is fixed per thread: every thread copies its own 256 KiB buffer (it stays in the
core's L2 cache) 512 times with ``np.copyto`` (5-10 ms on an idle core). At one thread the time tracks one core's
speed; at every core (all threads at once, as a parallel op runs) it tracks how much CPU
each core really gives: when another process keeps one core busy, the thread on that core
gets about half of it and the wall time doubles, exactly as it does for a parallel op. A
run restricted to fewer cores (``taskset``) runs fewer threads of the same work, so its
yardstick does not change while its all-cores figures do: fewer cores are not drift.

A large buffer (DRAM bandwidth, the ``memory`` suite) would not do: one thread nearly
saturates the memory bus, so a copy hardly slows down when a core is taken away.

The yardstick is measured next to the figures it calibrates: ``time_call`` takes one
before the first sample and after every 0.25 s of timed calls, and stores it with each
sample (``yardstick_ms``), so a burst of load from another job that slows a figure's samples
slows their yardsticks too. The run-level median (``calibration``) is the fallback for
timings without their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np

from clisonix_cli.bench.harness import quantile

BUFFER_BYTES = 256 * 1024
#: Copies per thread per measurement: 5-10 ms of work, a few scheduler time
#: slices, so that sharing a core with another process shows in its wall time (a 1 ms
#: measurement fits in one slice and would not see it).
PASSES = 512
#: Measurements per yardstick (their median); one keeps the cost to a few per cent.
POINT_REPEATS = 1


class Calibrator:
    """Measures the yardstick during a run; summarises every measurement for the document."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, int(cores))
        n = BUFFER_BYTES // 8
        self._src: list[np.ndarray] = []
        self._dst: list[np.ndarray] = []
        for _ in range(self.cores):
            # one block per thread, destination 64 bytes past a page multiple from the
            # source: separately mapped buffers can sit a multiple of 4 KiB apart, and
            # then every store aliases a load of the same cache set (measured: 10x slower)
            block = np.arange(2 * n + 8, dtype=np.float64)
            self._src.append(block[:n])
            self._dst.append(block[n + 8 :])
        self._pool: ThreadPoolExecutor | None = None
        self.points: dict[str, list[float]] = {"1t": [], "all": []}

    def _work(self, i: int) -> None:
        src, dst = self._src[i], self._dst[i]
        for _ in range(PASSES):
            np.copyto(dst, src)

    def _once(self, level: str) -> float:
        t0 = time.perf_counter()
        if level == "1t" or self.cores == 1:
            self._work(0)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.cores)
            for fut in [self._pool.submit(self._work, i) for i in range(self.cores)]:
                fut.result()
        return time.perf_counter() - t0

    def measure(self, level: str) -> float:
        """The yardstick now at ``level`` (``1t`` or ``all``), in seconds; recorded."""
        value = quantile([self._once(level) for _ in range(POINT_REPEATS)], 0.5)
        self.points[level].append(value)
        return value

    def probe(self, level: str) -> Callable[[], float]:
        """``measure`` at ``level`` as a callable for :func:`.harness.time_call`."""
        return partial(self.measure, level)

    def point(self) -> None:
        """Measure the yardstick at 1 thread and at every core."""
        self.measure("1t")
        self.measure("all")

    def close(self) -> None:
        """Stop the thread pool of the all-cores measurement."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def section(self) -> dict[str, Any]:
        """The ``calibration`` section: every measurement and the median per level."""
        if not self.points["1t"]:
            self.point()
        self.close()
        out: dict[str, Any] = {
            "work": f"np.copyto of {BUFFER_BYTES // 1024} KiB x {PASSES} per thread, "
            "in cache",
            "threads_all": self.cores,
        }
        for level, values in self.points.items():
            out[level] = {
                "points_ms": [v * 1e3 for v in values],
                "median_ms": quantile(values, 0.5) * 1e3,
            }
        return out
