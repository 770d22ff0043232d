"""Every registered op against its reference, and the registry's contracts.

Generic on purpose: an op added to ``clisonix_cli/transforms/ops`` is picked up here with no
test edit (its ``examples``, ``atol``/``rtol`` and ``extra`` drive the checks).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from operator import attrgetter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from clisonix_cli.errors import PipelineError
from clisonix_cli.transforms._declare import Kernel, Op
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.registry import all_ops

OPS = list(all_ops().values())
CASES = [(op, k) for op in OPS for k in range(len(op.examples))]
IDS = [f"{op.name}-{k}" for op, k in CASES]
AFFINE = np.array(
    [
        [0.0, 0.0, 0.7, -100.0],
        [0.0, 0.7, 0.0, -90.0],
        [2.5, 0.0, 0.0, 30.0],
        [0, 0, 0, 1],
    ]
)


def check_against_reference(op: Op, img: Image, params: Mapping[str, Any]) -> None:
    """``op.apply`` equals ``op.reference`` within the op's declared tolerances."""
    got = op.apply(img, **params)
    want = op.reference(img, **params)
    assert isinstance(got, Image)
    assert got.vol.shape == want.vol.shape, (got.vol.shape, want.vol.shape)
    assert got.vol.dtype == want.vol.dtype, (got.vol.dtype, want.vol.dtype)
    np.testing.assert_allclose(got.affine_lps, want.affine_lps, rtol=0, atol=1e-9)
    assert got.slope == pytest.approx(want.slope, rel=1e-12, abs=1e-300)
    assert got.intercept == pytest.approx(want.intercept, rel=1e-12, abs=1e-9)
    compare = op.extra.get("compare")
    if compare is not None:
        compare(got, want, img, dict(params))
        return
    if np.issubdtype(got.vol.dtype, np.integer):
        atol = float(op.extra.get("int_atol", op.atol))
        diff = np.abs(got.vol.astype(np.int64) - want.vol.astype(np.int64))
        assert diff.max(initial=0) <= atol, f"{op.name} {dict(params)}: {diff.max()}"
    else:
        np.testing.assert_allclose(
            got.vol,
            want.vol,
            atol=op.atol,
            rtol=op.rtol,
            equal_nan=True,
            err_msg=f"{op.name} {dict(params)}",
        )


def test_registry_is_sorted_unique_and_light() -> None:
    ops = all_ops()
    assert list(ops) == sorted(ops)
    assert {
        "rescale",
        "window",
        "clip",
        "normalize",
        "cast",
        "threshold",
        "matrix",
        "svd",
    } <= set(ops)
    for name, op in ops.items():
        assert op.name == name
        assert op.version >= 1
        assert op.summary and "\n" not in op.summary
        assert op.examples, f"{name} declares no examples"
        names = [p.name for p in op.params]
        assert len(names) == len(set(names)), name
        for p in op.params:
            assert p.doc, f"{name}.{p.name} has no doc"
            if p.choices is not None:
                assert p.type is str
            if not p.required and p.default is not None:
                assert p.convert(p.default, op=name) == p.default


@pytest.mark.parametrize("op", OPS, ids=attrgetter("name"))
def test_examples_bind_and_are_canonical(op: Op) -> None:
    for example in op.examples:
        bound = op.bind(example)
        assert list(bound) == [p.name for p in op.params]
        assert op.bind(bound) == bound  # resolving is idempotent
        json.dumps(bound)  # canonical params are JSON data


@pytest.mark.parametrize("op", OPS, ids=attrgetter("name"))
def test_unknown_parameter_lists_valid_keys(op: Op) -> None:
    with pytest.raises(PipelineError) as info:
        op.bind({"no_such_param": "1"})
    assert "no_such_param" in info.value.message
    for p in op.params:
        assert p.name in info.value.message


# Small volumes (sides 1..12): every op, every example; the first call compiles.
float_vols = arrays(
    np.float32,
    array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=12),
    elements=st.floats(-2000, 3000, width=32),
)
int_vols = arrays(
    np.int16,
    array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=12),
    elements=st.integers(-1024, 3071),
)


@pytest.mark.parametrize(("op", "k"), CASES, ids=IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vol=float_vols)
def test_apply_matches_reference_float32(op: Op, k: int, vol: np.ndarray) -> None:
    check_against_reference(op, Image(vol, AFFINE), op.bind(op.examples[k]))


@pytest.mark.parametrize(("op", "k"), CASES, ids=IDS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vol=int_vols, rescale=st.sampled_from([(1.0, -1024.0), (0.5, 3.25), (1.0, 0.0)]))
def test_apply_matches_reference_int16_rescaled(
    op: Op, k: int, vol: np.ndarray, rescale: tuple[float, float]
) -> None:
    img = Image(vol, AFFINE, slope=rescale[0], intercept=rescale[1])
    check_against_reference(op, img, op.bind(op.examples[k]))


@pytest.mark.parametrize("op", OPS, ids=attrgetter("name"))
def test_apply_on_odd_layouts(op: Op) -> None:
    """Non-contiguous input (a transposed view) gives the same result as a copy."""
    rng = np.random.default_rng(1)
    base = rng.uniform(-1000, 2000, size=(9, 7, 5)).astype(np.float32)
    view = base.transpose(0, 2, 1)[:, ::-1]
    params = op.bind(op.examples[0])
    a = op.apply(Image(view, AFFINE), **params)
    b = op.apply(Image(np.ascontiguousarray(view), AFFINE), **params)
    assert a.vol.tobytes() == b.vol.tobytes()


@pytest.mark.parametrize("op", OPS, ids=attrgetter("name"))
def test_same_bytes_whatever_the_thread_count(op: Op) -> None:
    import numba

    rng = np.random.default_rng(2)
    vol = rng.uniform(-1000, 2000, size=(6, 40, 33)).astype(np.float32)
    img = Image(vol, AFFINE, slope=1.0, intercept=-3.0)
    outputs = []
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):  # type: ignore[attr-defined]
            numba.set_num_threads(threads)
            for example in op.examples:
                out = op.apply(img, **op.bind(example))
                outputs.append((threads, out.vol.tobytes(), out.affine_lps.tobytes()))
    finally:
        numba.set_num_threads(before)
    half = len(outputs) // 2
    assert [o[1:] for o in outputs[:half]] == [o[1:] for o in outputs[half:]]


def test_listing_ops_imports_no_numba_and_compiles_nothing() -> None:
    code = (
        "import sys\n"
        "from clisonix_cli.transforms.registry import all_ops\n"
        "from clisonix_cli.transforms.pipeline import Pipeline\n"
        "from clisonix_cli.transforms.docs import ops_catalogue, ops_markdown\n"
        "ops = all_ops(); ops_catalogue(); ops_markdown()\n"
        "Pipeline.from_cli(['rescale', 'window:preset=brain'])\n"
        "bad = [m for m in ('numba', 'scipy', 'skimage', 'pydicom') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(len(ops))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(OPS)


def test_kernels_are_lazy() -> None:
    """Every op module's kernels are :class:`Kernel` objects, compiled on first call."""
    import importlib

    for op in OPS:
        module = importlib.import_module(op.apply.__module__)
        for value in vars(module).values():
            if callable(value) and type(value).__name__ == "CPUDispatcher":
                pytest.fail(f"{module.__name__} compiles a kernel at import time")
            if isinstance(value, Kernel):
                assert value.py_func.__module__ == value.__module__
