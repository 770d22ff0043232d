"""median: exact against scipy, the generated selection networks are current and correct."""

from __future__ import annotations

import inspect
import itertools

import numba
import numpy as np
import pytest
from scipy import ndimage

from clisonix_cli.errors import ParameterRangeError
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.ops import median

AFFINE = np.diag([2.5, 0.7, 0.7, 1.0])
rng = np.random.default_rng(0)


def forgetful_selection(n: int) -> tuple[list[str], str]:
    """The generator of the kernels' networks: compare-exchange lines and the result."""
    names = [f"v{i}" for i in range(n)]
    lines: list[str] = []
    cand, rest = names[: n // 2 + 2], names[n // 2 + 2 :]
    while len(cand) > 1:
        lows, highs = [], []
        for i in range(0, len(cand) - 1, 2):  # pairs: low first
            lines.append(
                f"{cand[i]}, {cand[i + 1]} = min({cand[i]}, {cand[i + 1]}), max({cand[i]}, {cand[i + 1]})"
            )
            lows.append(cand[i])
            highs.append(cand[i + 1])
        extra = [cand[-1]] if len(cand) % 2 else []
        lmins = lows + extra
        for x in lmins[1:]:  # minimum to lmins[0]
            lines.append(
                f"{lmins[0]}, {x} = min({lmins[0]}, {x}), max({lmins[0]}, {x})"
            )
        hmax = highs + [e for e in extra if e != lmins[0]]
        for x in hmax[:-1]:  # maximum to hmax[-1]
            lines.append(
                f"{x}, {hmax[-1]} = min({x}, {hmax[-1]}), max({x}, {hmax[-1]})"
            )
        cand = [v for v in cand if v not in (lmins[0], hmax[-1])]  # forget both
        if rest:
            cand.append(rest.pop(0))
    return lines, cand[0]


@pytest.mark.parametrize(
    ("kernel", "window"), [("_median_3x3x3", (3, 3, 3)), ("_median_1x3x3", (1, 3, 3))]
)
def test_generated_networks_are_current(
    kernel: str, window: tuple[int, int, int]
) -> None:
    body = [
        line.strip()
        for line in inspect.getsource(getattr(median, kernel).py_func).splitlines()
    ]
    n = int(np.prod(window))
    lines, result = forgetful_selection(n)
    loads = [
        f"v{k} = p[{'s + ' + str(a) if a else 's'}, {'r + ' + str(b) if b else 'r'}, "
        f"{'c + ' + str(d) if d else 'c'}]"
        for k, (a, b, d) in enumerate(itertools.product(*[range(w) for w in window]))
    ]
    start = body.index(loads[0])
    assert body[start : start + n] == loads
    assert body[start + n : start + n + len(lines)] == lines
    assert body[start + n + len(lines)] == f"out[s, r, c] = {result}"


@pytest.mark.parametrize("n", [9, 27])
def test_networks_select_the_median(n: int) -> None:
    lines, result = forgetful_selection(n)
    if n == 9:  # 0-1 principle: every 0/1 input is enough for a comparator network
        values = np.array(list(itertools.product((0, 1), repeat=9)), dtype=np.int8).T
    else:
        values = rng.integers(0, 4, (27, 50_000)).astype(np.int8)
    env = {f"v{i}": values[i].copy() for i in range(n)}
    env.update(min=np.minimum, max=np.maximum)
    for line in lines:
        exec(line, {}, env)  # our own generated compare-exchanges
    np.testing.assert_array_equal(env[result], np.sort(values, axis=0)[n // 2])


@pytest.mark.parametrize(
    ("size", "per_slice"),
    [(1, False), (3, False), (3, True), (5, False), (5, True), (7, True)],
)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 1), (7, 9, 11), (16, 5, 4)])
def test_exactly_scipy_with_many_ties(
    size: int, per_slice: bool, shape: tuple[int, int, int]
) -> None:
    vol = rng.integers(-3, 4, shape).astype(np.int16)
    img = Image(vol, AFFINE, slope=0.5, intercept=-1024.0)
    out = median.apply(img, size=size, per_slice=per_slice)
    window = (1, size, size) if per_slice else (size, size, size)
    real = (vol * 0.5 - 1024.0).astype(np.float32)
    want = ndimage.median_filter(real, size=window, mode="nearest")
    assert out.vol.dtype == np.float32 and (out.slope, out.intercept) == (1.0, 0.0)
    np.testing.assert_array_equal(out.vol, want)


def test_float_values_and_per_slice_never_mixes_slices() -> None:
    vol = rng.normal(0, 500, (6, 13, 10)).astype(np.float32)
    np.testing.assert_array_equal(
        median.apply(Image(vol, AFFINE)).vol,
        ndimage.median_filter(vol, 3, mode="nearest"),
    )
    stack = np.zeros((3, 6, 6), np.float32)
    stack[1] = 5.0
    out = median.apply(Image(stack, AFFINE), per_slice=True).vol
    np.testing.assert_array_equal(out, stack)


@pytest.mark.parametrize("size", ["2", "4", "17", "0", "-3"])
def test_size_must_be_odd_and_bounded(size: str) -> None:
    with pytest.raises(ParameterRangeError, match="odd"):
        median.OP.bind({"size": size})


@pytest.mark.parametrize(
    "params", [{"size": 3}, {"size": 3, "per_slice": True}, {"size": 5}]
)
def test_same_bytes_with_one_or_two_threads(params: dict[str, object]) -> None:
    vol = rng.normal(size=(16, 12, 15)).astype(np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(median.apply(Image(vol, AFFINE), **params).vol.tobytes())
    finally:
        numba.set_num_threads(before)
    assert results[0] == results[1]
