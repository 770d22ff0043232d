"""Machine-speed yardstick of a run: an in-cache memory copy, at 1 thread and every core.

``--compare`` divides each gated timing by this yardstick measured in the same run, so a
machine that is slower for everything (a busy neighbour, a lower clock, another VM on the
host) does not read as a regression, while code that got slower still does.

The work is fixed per thread: every thread copies its own 256 KiB buffer (it stays in the
core's L2 cache) 128 times with ``np.copyto``. At one thread the time tracks one core's
speed; at every core (all threads at once, as a parallel op runs) it tracks how much CPU
each core really gives: when another process keeps one core busy, the thread on that core
gets about half of it and the wall time doubles, exactly as it does for a parallel op. A
run restricted to fewer cores (``taskset``) runs fewer threads of the same work, so its
yardstick does not change while its all-cores figures do: fewer cores are not drift.

A large buffer (DRAM bandwidth, the ``memory`` suite) would not do: one thread nearly
saturates the memory bus, so a copy hardly slows down when a core is taken away.

The yardstick is measured before every op and every suite; the run's figure is the median
of those points (a burst of load during one point does not move it).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from clisonix_cli.bench.harness import quantile

BUFFER_BYTES = 256 * 1024
PASSES = 128
#: Timed repeats per point; the point is their minimum (the work itself, without bursts).
POINT_REPEATS = 5


class Calibrator:
    """Takes yardstick points during a run and summarises them for the document."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, int(cores))
        n = BUFFER_BYTES // 8
        self._src = [np.arange(n, dtype=np.float64) for _ in range(self.cores)]
        self._dst = [np.ones(n, dtype=np.float64) for _ in range(self.cores)]
        self.points: dict[str, list[float]] = {"1t": [], "all": []}

    def _work(self, i: int) -> None:
        src, dst = self._src[i], self._dst[i]
        for _ in range(PASSES):
            np.copyto(dst, src)

    def _time(self, pool: ThreadPoolExecutor | None) -> float:
        best = float("inf")
        for _ in range(POINT_REPEATS):
            t0 = time.perf_counter()
            if pool is None:
                self._work(0)
            else:
                for fut in [pool.submit(self._work, i) for i in range(self.cores)]:
                    fut.result()
            best = min(best, time.perf_counter() - t0)
        return best

    def point(self) -> None:
        """Measure one point at 1 thread and at every core."""
        self._work(0)  # warm the buffers into cache
        self.points["1t"].append(self._time(None))
        if self.cores == 1:
            self.points["all"].append(self.points["1t"][-1])
            return
        with ThreadPoolExecutor(max_workers=self.cores) as pool:
            for fut in [pool.submit(self._work, i) for i in range(self.cores)]:
                fut.result()
            self.points["all"].append(self._time(pool))

    def section(self) -> dict[str, Any]:
        """The ``calibration`` section: every point and the median per thread level."""
        if not self.points["1t"]:
            self.point()
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
