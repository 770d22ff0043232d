"""Timing primitives: warm-up, repeats, robust summaries, peak memory of a child process.

A figure is always the summary of several timed calls after an untimed warm-up call (which
absorbs numba compilation, page-cache misses and lazy imports; its duration is kept apart as
``first_call_ms``). The summary is the median with the interquartile range, plus min and max,
so a busy machine shows up as a wide spread rather than a silently wrong mean.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

#: Receives one line per step of a suite (the CLI prints them to stderr).
Progress = Callable[[str], None]


class ChildProcessFailed(RuntimeError):
    """A measuring subprocess failed; the message carries the tail of its stderr.

    The suites catch it and record the failure in the section it belongs to, so one broken
    measurement does not lose the others.
    """


@dataclass(frozen=True)
class Timing:
    """Summary of repeated wall-clock samples, in seconds.

    Attributes
    ----------
    samples : tuple of float
        Every timed call, in the order they ran (the warm-up call excluded).
    first_call : float or None
        Duration of the untimed warm-up call (compilation and caches included), if any.
    yardsticks : tuple of float or None
        Per sample, the machine-speed yardstick measured just before it (seconds, see
        :mod:`clisonix_cli.bench.calibrate`): ``--compare`` divides each sample by its own.
    rounds : tuple of int or None
        Per sample, the round of :func:`time_rounds` it was taken in.
    """

    samples: tuple[float, ...]
    first_call: float | None = None
    yardsticks: tuple[float, ...] | None = None
    rounds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a Timing needs at least one sample")
        if not all(math.isfinite(s) and s >= 0 for s in self.samples):
            raise ValueError(f"samples must be finite and >= 0, got {self.samples}")

    @property
    def median(self) -> float:
        """Median sample (seconds)."""
        return quantile(self.samples, 0.5)

    @property
    def q1(self) -> float:
        """First quartile (seconds)."""
        return quantile(self.samples, 0.25)

    @property
    def q3(self) -> float:
        """Third quartile (seconds)."""
        return quantile(self.samples, 0.75)

    @property
    def iqr(self) -> float:
        """Interquartile range (seconds)."""
        return self.q3 - self.q1

    @property
    def min(self) -> float:
        """Fastest sample (seconds)."""
        return min(self.samples)

    @property
    def max(self) -> float:
        """Slowest sample (seconds)."""
        return max(self.samples)

    def as_ms(self) -> dict[str, Any]:
        """The summary in milliseconds, as stored in the benchmark document.

        ``samples_ms`` keeps every timed call (in run order): ``--compare`` tests whether two
        runs' distributions differ, which a median alone cannot tell.
        """
        out: dict[str, Any] = {
            "median_ms": self.median * 1e3,
            "q1_ms": self.q1 * 1e3,
            "q3_ms": self.q3 * 1e3,
            "iqr_ms": self.iqr * 1e3,
            "min_ms": self.min * 1e3,
            "max_ms": self.max * 1e3,
            "repeats": len(self.samples),
            "samples_ms": [round(v * 1e3, 6) for v in self.samples],
        }
        if self.yardsticks is not None:
            out["yardstick_ms"] = [round(v * 1e3, 6) for v in self.yardsticks]
        if self.rounds is not None:
            out["round"] = list(self.rounds)
        if self.first_call is not None:
            out["first_call_ms"] = self.first_call * 1e3
        return out


#: Timed calls after a warm-up slower than ``slow_s`` (see :func:`time_call`).
SLOW_REPEATS = 3
#: Most timed calls one figure takes, however short the call (``min_time_s``).
MAX_REPEATS = 200
#: Minimum measurement time of a gated figure (seconds of timed calls): full and --quick.
MIN_TIME_S = 1.0
QUICK_MIN_TIME_S = 0.25
#: Seconds of timed calls between two yardstick measurements (see ``time_call``).
YARD_EVERY_S = 0.25
#: Rounds of a gated figure's measurement, spread over its suite (see ``time_rounds``).
ROUNDS = 5
#: Fewest samples of a gated figure: with 5 against 5, a one-sided Mann-Whitney U test can
#: reach p = 1/252 < 0.01 (with 3 against 3 it never goes below 0.05).
MIN_GATED_REPEATS = 5
#: A reference or peer call slower than this (seconds) is timed 3 times, not --repeats.
SLOW_S = 2.0


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of a non-empty sequence.

    Parameters
    ----------
    values : sequence of float
        Samples, any order.
    q : float
        Quantile in [0, 1].

    Returns
    -------
    float
        The interpolated quantile.
    """
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    frac = pos - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


def time_call(
    func: Callable[[], object],
    *,
    repeats: int,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
    slow_s: float | None = None,
    min_time_s: float = 0.0,
    max_repeats: int = MAX_REPEATS,
    yardstick: Callable[[], float] | None = None,
) -> Timing:
    """Time ``func()`` after ``warmup`` untimed calls; return the summary of ``repeats`` calls.

    Parameters
    ----------
    func : callable
        The work to time, with no arguments (close over the inputs).
    repeats : int
        Number of timed calls, >= 1.
    warmup : int
        Untimed calls first; the duration of the first one is kept as ``first_call``.
    setup : callable, optional
        Called before every call (timed or not), outside the timed region (e.g. to empty an
        output folder).
    slow_s : float, optional
        When the warm-up call took longer than this, run at most :data:`SLOW_REPEATS`
        timed calls (a median of 3 is enough for a call that takes seconds).
    min_time_s : float
        Minimum measurement time: after ``repeats`` calls, keep calling until the timed
        calls add up to this many seconds (at most ``max_repeats`` calls). A figure then
        has enough samples to be judged however fast the call is.
    max_repeats : int
        Cap on the timed calls that ``min_time_s`` may add.
    yardstick : callable, optional
        Returns the machine-speed yardstick now (seconds); measured before the first
        timed call and again after every :data:`YARD_EVERY_S` seconds of timed calls (and
        before every call slower than that), so each sample is paired with a yardstick
        taken at most a fraction of a second before it (``Timing.yardsticks``).

    Returns
    -------
    Timing
        Samples in seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    first: float | None = None
    for i in range(warmup):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        func()
        if i == 0:
            first = time.perf_counter() - t0
    if slow_s is not None and first is not None and first > slow_s:
        repeats = min(repeats, SLOW_REPEATS)
    samples: list[float] = []
    yards: list[float] = []
    since = math.inf  # timed seconds since the last yardstick
    current = 0.0
    gc_was_enabled = gc.isenabled()
    # As timeit does: no cyclic collection inside a sample (arrays are freed by reference
    # counting anyway). No gc.collect() either: with numba and scipy loaded, a full
    # collection takes ~0.1 s, longer than most samples.
    gc.disable()
    try:
        while len(samples) < repeats or (
            sum(samples) < min_time_s and len(samples) < max(max_repeats, repeats)
        ):
            if setup is not None:
                setup()
            if yardstick is not None and since >= YARD_EVERY_S:
                current, since = yardstick(), 0.0
            t0 = time.perf_counter()
            func()
            samples.append(time.perf_counter() - t0)
            yards.append(current)
            since += samples[-1]
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing(
        tuple(samples),
        first_call=first,
        yardsticks=tuple(yards) if yardstick is not None else None,
    )


@dataclass(frozen=True)
class Gated:
    """One gated figure for :func:`time_rounds`: what to call, in which setting."""

    key: str
    func: Callable[[], object]
    yardstick: Callable[[], float] | None = None
    context: Callable[[], AbstractContextManager[object]] | None = None
    setup: Callable[[], object] | None = None


def time_rounds(
    calls: Sequence[Gated],
    *,
    repeats: int = MIN_GATED_REPEATS,
    min_time_s: float = 0.0,
    rounds: int = ROUNDS,
) -> dict[str, Timing]:
    """Time several figures in ``rounds`` interleaved rounds, as asv does.

    A figure measured in one stretch shares one moment's load: on a shared machine a
    burst of another job's work then moves all its samples at once, and two runs differ by
    more than their samples' spread says. Here each round times every figure in turn
    (order rotated by one each round) for ``min_time_s / rounds`` of timed calls (at least
    ``ceil(repeats / rounds)`` calls), so each figure's samples span the whole stretch;
    ``--compare`` tests on the per-round medians (independent draws of the load), not on
    the calls.

    Returns
    -------
    dict
        ``key`` -> Timing with every sample, its yardstick and its round; the first
        round's warm-up call is ``first_call``.
    """
    per_round = max(1, math.ceil(repeats / rounds))
    out: dict[str, list[Timing]] = {c.key: [] for c in calls}
    for r in range(rounds):
        shift = r % max(1, len(calls))
        for c in [*calls[shift:], *calls[:shift]]:
            ctx = c.context() if c.context is not None else contextlib.nullcontext()
            with ctx:
                t = time_call(
                    c.func,
                    repeats=per_round,
                    warmup=1 if r == 0 else 0,
                    setup=c.setup,
                    min_time_s=min_time_s / rounds,
                    max_repeats=max(per_round, MAX_REPEATS // rounds),
                    yardstick=c.yardstick,
                )
            out[c.key].append(t)
    result: dict[str, Timing] = {}
    for key, parts in out.items():
        samples = tuple(v for p in parts for v in p.samples)
        yards: tuple[float, ...] | None = ()
        for p in parts:
            yards = (
                None if yards is None or p.yardsticks is None else yards + p.yardsticks
            )
        result[key] = Timing(
            samples,
            first_call=parts[0].first_call,
            yardsticks=yards,
            rounds=tuple(r for r, p in enumerate(parts) for _ in p.samples),
        )
    return result


def rate(amount: float, seconds: float) -> float:
    """``amount / seconds``; raises on a non-positive duration rather than returning inf."""
    if not seconds > 0:
        raise ValueError(f"duration must be > 0 s to form a rate, got {seconds}")
    return amount / seconds


def timing_figures(
    t: Timing, *, voxels: int | None = None, nbytes: int | None = None
) -> dict[str, Any]:
    """A timing in ms plus ``voxels_per_s`` and ``gbps`` (bytes read + written) when given."""
    out: dict[str, Any] = dict(t.as_ms())
    if voxels is not None:
        out["voxels_per_s"] = rate(voxels, t.median)
    if nbytes is not None:
        out["gbps"] = rate(nbytes, t.median) / 1e9
    return out


def run_child(
    module_args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run ``python -m clisonix_cli.bench.child ARGS`` and return the JSON it prints.

    The child reports its own peak resident set size (the kernel's RSS high-water mark of
    its process image, see :func:`peak_rss_mib_self`: nothing between samples is missed)
    and the wall time of what it measured; see :mod:`clisonix_cli.bench.child`.

    Parameters
    ----------
    module_args : sequence of str
        Arguments after the module name.
    env : mapping, optional
        Extra environment variables (e.g. ``NUMBA_CACHE_DIR``).
    timeout : float
        Seconds before the child is killed.

    Returns
    -------
    dict
        The child's last stdout line, parsed as JSON, plus ``process_s``: the wall time of
        the whole subprocess (interpreter start to exit) seen from here.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    cmd = [sys.executable, "-m", "clisonix_cli.bench.child", *module_args]
    t0 = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        cmd, capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])
        raise ChildProcessFailed(
            f"benchmark subprocess '{' '.join(module_args[:1])}' exited {proc.returncode}: {tail}"
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise ChildProcessFailed(
            f"benchmark subprocess '{' '.join(module_args[:1])}' printed no result"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_s"] = wall
    return result


def peak_rss_mib_self() -> float:
    """This process's peak resident set size in MiB.

    On Linux, ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process
    image's memory. Not ``getrusage().ru_maxrss``: Linux carries the *parent's* high-water
    mark across ``fork`` + ``exec`` into it, so a child started by a big benchmark process
    would report the parent's peak (measured: 921 MiB instead of 227 MiB). Elsewhere,
    ``ru_maxrss`` (bytes on macOS, KiB on other systems).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / 2**20 if sys.platform == "darwin" else float(peak) / 1024


def current_rss_mib() -> float:
    """This process's resident set size now, in MiB (psutil)."""
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20
