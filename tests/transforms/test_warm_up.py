"""``Pipeline.warm_up``: a tiny run loads every kernel the real run calls, changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.pipeline import Pipeline

CT = ["rescale", "window:center=40,width=400", "resample:spacing=1.5", "normalize"]
FILTERS = ["gaussian:sigma=1", "median:size=3", "threshold:method=otsu"]


@pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
    reason="no kernels are loaded with NUMBA_DISABLE_JIT",
)
@pytest.mark.parametrize(
    ("ops", "dtype"),
    [(CT, "int16"), (CT, "uint16"), (CT, "float32"), (FILTERS, "int16")],
    ids=["ct-int16", "ct-uint16", "ct-float32", "filters-int16"],
)
def test_after_warm_up_a_real_run_loads_nothing(ops: list[str], dtype: str) -> None:
    """In a fresh process (kernels not yet loaded): warm up on the stack's type, then a
    full-size run must not compile or load any kernel specialization."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from numba.core.dispatcher import Dispatcher
        from clisonix_cli.transforms.image import Image
        from clisonix_cli.transforms.pipeline import Pipeline

        pipe = Pipeline.from_cli({ops!r}, None)
        pipe.warm_up(np.dtype("{dtype}"), (2.5, 0.7, 0.7), slope=1.0, intercept=-1024.0)
        loads = []
        original = Dispatcher._compile_for_args
        def spy(self, *args, **kw):
            loads.append(self.py_func.__name__)
            return original(self, *args, **kw)
        Dispatcher._compile_for_args = spy
        vol = (np.arange(30 * 70 * 60) % 3000 - 1000).astype("{dtype}").reshape(30, 70, 60)
        aff = np.diag([2.5, 0.7, 0.7, 1.0])
        pipe.run(Image(vol=vol, affine_lps=aff, slope=1.0, intercept=-1024.0))
        print("LOADED", sorted(set(loads)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout


def test_warm_up_changes_nothing_and_swallows_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipe = Pipeline.from_cli(CT, None)
    vol = (np.arange(6 * 20 * 24) % 2000).astype(np.int16).reshape(6, 20, 24)
    img = Image(vol=vol, affine_lps=np.diag([3.0, 0.8, 0.8, 1.0]), intercept=-1024.0)
    before = pipe.run(img)
    pipe.warm_up(np.int16, (3.0, 0.8, 0.8), intercept=-1024.0)
    after = pipe.run(img)
    assert after.vol.tobytes() == before.vol.tobytes()
    np.testing.assert_array_equal(after.affine_lps, before.affine_lps)
    Pipeline.from_cli([], None).warm_up(np.int16)  # no steps: nothing to load

    def refuse(self: Pipeline, img: Image) -> Image:
        raise ValueError("too small")

    monkeypatch.setattr(Pipeline, "run", refuse)
    pipe.warm_up(np.int16)  # the real run reports its own errors
