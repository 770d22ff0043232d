"""The timing harness: quantiles, summaries, warm-up, child processes, copy bandwidth."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from clisonix_cli.bench import harness
from clisonix_cli.bench.harness import Timing, quantile, rate, time_call
from clisonix_cli.bench.memory import copy_bandwidth


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
@pytest.mark.parametrize(
    "values", [[3.0], [2.0, 1.0], [5.0, 1.0, 4.0, 2.0, 3.0], [1, 1, 2, 9]]
)
def test_quantile_matches_numpy(values: list[float], q: float) -> None:
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_quantile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_timing_summary_in_ms() -> None:
    t = Timing((0.004, 0.001, 0.003, 0.002, 0.005), first_call=0.5)
    ms = t.as_ms()
    assert ms["median_ms"] == pytest.approx(3.0)
    assert ms["min_ms"] == pytest.approx(1.0)
    assert ms["max_ms"] == pytest.approx(5.0)
    assert ms["q1_ms"] == pytest.approx(2.0)
    assert ms["q3_ms"] == pytest.approx(4.0)
    assert ms["iqr_ms"] == pytest.approx(2.0)
    assert ms["repeats"] == 5
    assert ms["first_call_ms"] == pytest.approx(500.0)
    assert ms["samples_ms"] == pytest.approx([4.0, 1.0, 3.0, 2.0, 5.0])  # run order


def test_time_call_minimum_measurement_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short call is repeated until the timed calls add up to min_time_s.

    The clock is one that only the work advances (2 ms a call), so the count is exact.
    """
    now = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: now[0])

    def work() -> None:
        now[0] += 0.002

    t = time_call(work, repeats=3, min_time_s=0.05)
    assert len(t.samples) == 25
    assert sum(t.samples) == pytest.approx(0.05)
    monkeypatch.undo()
    capped = time_call(lambda: None, repeats=3, min_time_s=10.0, max_repeats=20)
    assert len(capped.samples) == 20


@pytest.mark.parametrize("samples", [(), (float("nan"),), (-1.0,), (float("inf"),)])
def test_timing_rejects_bad_samples(samples: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        Timing(samples)


def test_time_call_measures_a_trivial_function() -> None:
    calls: list[int] = []
    setups: list[int] = []

    def work() -> None:
        calls.append(1)
        time.sleep(0.01 if len(calls) > 1 else 0.03)  # the warm-up is slower

    t = time_call(work, repeats=4, setup=lambda: setups.append(1))
    assert (
        len(calls) == 5 and len(setups) == 5
    )  # one warm-up + 4 timed, each with setup
    assert len(t.samples) == 4
    assert all(s >= 0.01 for s in t.samples)
    assert t.first_call is not None and t.first_call >= 0.03


def test_time_call_keeps_the_warm_up_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]  # a clock that only the work advances: exact samples, no wall time
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        clock[0] += 3.0 if len(calls) == 1 else len(calls) / 100

    t = time_call(work, repeats=4)
    assert t.first_call == pytest.approx(3.0)
    assert t.samples == pytest.approx((0.02, 0.03, 0.04, 0.05))
    assert t.median == pytest.approx(0.035)


def test_time_call_times_the_work() -> None:
    small = time_call(lambda: time.sleep(0.002), repeats=3)
    large = time_call(lambda: time.sleep(0.02), repeats=3)
    assert small.min >= 0.002 and large.min >= 0.02  # a sample never misses the work


def test_time_call_needs_a_repeat() -> None:
    with pytest.raises(ValueError):
        time_call(lambda: None, repeats=0)


def test_rate() -> None:
    assert rate(10.0, 2.0) == 5.0
    with pytest.raises(ValueError):
        rate(1.0, 0.0)


def test_copy_bandwidth_is_measured() -> None:
    gbps, timing = copy_bandwidth(buffer_mib=8, threads=1, repeats=3)
    assert math.isfinite(gbps) and gbps > 0
    assert gbps == pytest.approx(2 * 8 * 2**20 / timing.median / 1e9)
    gbps2, _ = copy_bandwidth(buffer_mib=8, threads=2, repeats=3)
    assert math.isfinite(gbps2) and gbps2 > 0


def test_peak_rss_grows_with_allocation() -> None:
    before = harness.peak_rss_mib_self()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    after = harness.peak_rss_mib_self()
    assert block.sum() > 0
    assert after >= before
    assert after > 10


def test_child_failure_is_reported() -> None:
    with pytest.raises(harness.ChildProcessFailed, match="exited 2"):
        harness.run_child(["no-such-command"])


def test_time_call_caps_repeats_of_slow_calls() -> None:
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.03)

    t = time_call(slow, repeats=7, slow_s=0.01)
    assert len(t.samples) == harness.SLOW_REPEATS == 3
    assert len(calls) == 4
    fast = time_call(lambda: None, repeats=7, slow_s=0.5)
    assert len(fast.samples) == 7


def test_child_peak_rss_is_its_own_not_the_parents() -> None:
    # Linux's ru_maxrss of an exec'd child starts at the parent's high-water mark; the
    # child must report the peak of its own image (VmHWM).
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB, touched, in this (parent) process
    parent_now = harness.current_rss_mib()
    res = harness.run_child(["compile", "--ops", "flip"])
    assert ballast[-1] == 1.0
    assert parent_now > 400
    assert 20 < res["peak_rss_mib"] < parent_now - 200
    assert res["process_s"] > 0 and set(res["per_op_ms"]) == {"flip"}


def test_time_call_pairs_each_sample_with_a_recent_yardstick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: now[0])

    def work() -> None:
        now[0] += 0.1

    calls: list[float] = []

    def yard() -> float:
        calls.append(float(len(calls) + 1))
        return calls[-1]

    t = time_call(work, repeats=7, warmup=0, yardstick=yard)
    monkeypatch.undo()
    assert t.yardsticks is not None and len(t.yardsticks) == len(t.samples) == 7
    # measured before the first sample, then after each 0.25 s of timed calls
    assert t.yardsticks == (1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0)
    assert t.as_ms()["yardstick_ms"] == [v * 1e3 for v in t.yardsticks]


def test_calibrator_measures_both_levels() -> None:
    from clisonix_cli.bench.calibrate import Calibrator

    cal = Calibrator(2)
    assert cal.probe("all")() > 0
    cal.point()
    sec = cal.section()
    assert len(sec["1t"]["points_ms"]) == 1 and len(sec["all"]["points_ms"]) == 2
    assert sec["all"]["median_ms"] > 0 and sec["threads_all"] == 2


def test_time_rounds_interleaves_the_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each round times every figure in turn (order rotated); samples keep their round."""
    now = [0.0]
    order: list[str] = []
    monkeypatch.setattr(harness.time, "perf_counter", lambda: now[0])

    def work(key: str, cost: float) -> None:
        order.append(key)
        now[0] += cost

    calls = [
        harness.Gated("a", lambda: work("a", 1 / 64)),  # exact in binary
        harness.Gated("b", lambda: work("b", 0.25)),
    ]
    t = harness.time_rounds(calls, repeats=5, min_time_s=0.625, rounds=5)
    monkeypatch.undo()
    # a: 0.125 s of timed calls per round -> 8 calls; b: one 0.25 s call per round
    assert len(t["a"].samples) == 40 and len(t["b"].samples) == 5
    assert t["a"].rounds == tuple(r for r in range(5) for _ in range(8))
    assert t["b"].rounds == (0, 1, 2, 3, 4)
    assert t["a"].first_call == pytest.approx(1 / 64)  # round 0's warm-up, kept apart
    # round 0: a (warm-up + 8), b (warm-up + 1); round 1 starts with b, then a
    assert order[:9] == ["a"] * 9
    assert order[9:12] == ["b"] * 3
    assert order[12:20] == ["a"] * 8
