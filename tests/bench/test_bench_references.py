"""Every speed reference of ``clisonix bench`` computes what its op computes.

The per-op suite's speed-ups are only honest if each reference does the same work: here
each candidate of :data:`clisonix_cli.bench.references.REFERENCES` runs on a CT-like volume
with the bench's own parameters (and each op's examples) and is compared with the op's
``apply`` within the tolerance the candidate states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clisonix_cli.bench import references as refs
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.registry import all_ops

OPS = all_ops()


def _ct(slope: float = 1.0, intercept: float = -1024.0) -> Image:
    """A smooth CT-like volume (int16, air around a body) with noise, 2.5 x 0.7 x 0.7 mm."""
    rng = np.random.default_rng(1)
    s, r, c = np.mgrid[0:7, 0:41, 0:37]
    body = ((r - 20) ** 2 + (c - 18) ** 2) < 15**2
    vol = np.where(body, 1064 + 40 * np.sin(s + r / 5.0), 24).astype(np.float64)
    vol += rng.normal(0, 12, vol.shape)
    affine = np.diag([2.5, 0.7, 0.7, 1.0])
    return Image(
        vol=np.rint(vol).astype(np.int16),
        affine_lps=affine,
        slope=slope,
        intercept=intercept,
    )


def _cases() -> list[tuple[str, refs.SpeedRef, dict[str, Any]]]:
    out = []
    for name, cands in refs.REFERENCES.items():
        op = OPS[name]
        params = [refs.bench_params(op)]
        params += [op.bind(dict(ex)) for ex in op.examples]
        for ref in cands:
            for k, p in enumerate(params):
                out.append((f"{name}-{ref.name}-{k}", ref, {"op": name, "params": p}))
    return out


CASES = _cases()


def test_every_op_has_a_reference_or_a_reason() -> None:
    for name in OPS:
        assert name in refs.REFERENCES or name in refs.NOT_COMPARABLE, name
    for cands in refs.REFERENCES.values():
        assert len({c.name for c in cands}) == len(cands)
        for ref in cands:
            assert ref.label and ref.atol >= 0 and ref.rtol >= 0


@pytest.mark.parametrize(
    ("ref", "case"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("slope", [1.0, 0.5])
def test_reference_matches_apply(
    ref: refs.SpeedRef, case: dict[str, Any], slope: float
) -> None:
    if not ref.available():
        pytest.skip(f"{ref.requires} is not installed")
    op, params = OPS[case["op"]], case["params"]
    img = _ct(slope, -1024.0 if slope == 1.0 else -1000.25)
    if not ref.handles(img, params):
        assert params != refs.bench_params(op)  # the timed parameters are covered
        pytest.skip(f"{ref.label} does not compute {op.name} with {params}")
    got = op.apply(img, **params)
    for threads in (1, 2) if ref.threaded else (1,):
        want = ref.func(img, params, threads)
        assert want.shape == got.vol.shape
        if not ref.same_algorithm:
            # another randomized algorithm: the op's own acceptance test instead
            op.extra["compare"](Image(want, img.affine_lps), got, img, dict(params))
            continue
        assert want.dtype == got.vol.dtype, (want.dtype, got.vol.dtype)
        np.testing.assert_allclose(
            want.astype(np.float64),
            got.vol.astype(np.float64),
            atol=ref.atol,
            rtol=ref.rtol,
        )


def test_bench_params_are_realistic() -> None:
    crop = refs.bench_params(OPS["crop_pad"])
    assert crop["shape"] == (0.0, 576.0, 576.0)  # a pad of 512x512 slices
    assert refs.bench_params(OPS["window"]) == OPS["window"].bind(
        dict(OPS["window"].examples[0])
    )
