"""Thread and process policy (runtime.py): cores, threads per worker, OpenMP waiting."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import pytest

from clisonix_cli import runtime


def _policy_after(code: str, env: dict[str, str]) -> str:
    """``OMP_WAIT_POLICY`` in a fresh interpreter after running ``code`` (or ``unset``)."""
    code += "\nimport os\nprint(os.environ.get('OMP_WAIT_POLICY', 'unset'))\n"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _env_without_policy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}


KERNEL_CALL = (
    "import numpy as np, sys\n"
    "from clisonix_cli import liam\n"
    "liam.rescale(np.zeros((2, 4, 4), np.int16), intercept=1.0)\n"
    "assert 'numba' in sys.modules\n"
)
CLI_ENTRY = (
    "import sys\n"
    "from clisonix_cli.cli.app import main\n"
    "sys.argv = ['clisonix', '--version']\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
)


def test_importing_the_transforms_leaves_the_environment_alone() -> None:
    code = "import clisonix_cli.transforms.registry as r, sys\nr.all_ops()\n"
    code += "assert 'numba' not in sys.modules\n"
    assert _policy_after(code, _env_without_policy()) == "unset"


@pytest.mark.parametrize("code", [KERNEL_CALL, CLI_ENTRY], ids=["kernel", "cli"])
def test_passive_by_default_where_work_starts(code: str) -> None:
    assert _policy_after(code, _env_without_policy()) == "PASSIVE"


@pytest.mark.parametrize("code", [KERNEL_CALL, CLI_ENTRY], ids=["kernel", "cli"])
def test_user_setting_wins(code: str) -> None:
    env = {**_env_without_policy(), "OMP_WAIT_POLICY": "ACTIVE"}
    assert _policy_after(code, env) == "ACTIVE"


def test_numba_thread_setting_applies_the_policy_first() -> None:
    code = "from clisonix_cli import runtime\nruntime.set_numba_threads(1)\n"
    assert _policy_after(code, _env_without_policy()) == "PASSIVE"


def test_cpu_cores_within_the_machine() -> None:
    assert 1 <= runtime.cpu_cores() <= (os.cpu_count() or 1)


def test_cpu_cores_agrees_with_joblib(monkeypatch: pytest.MonkeyPatch) -> None:
    from joblib import cpu_count

    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)
    assert runtime.cpu_cores() == cpu_count()
    if hasattr(os, "sched_getaffinity"):
        one = {min(os.sched_getaffinity(0))}
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: one)
        assert runtime.cpu_cores() == 1


def test_threads_per_worker_shares_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_cores", lambda: 8)
    assert runtime.threads_per_worker(3) == 2
    assert runtime.threads_per_worker(8) == 1
    assert runtime.threads_per_worker(16) == 1  # never 0
    assert runtime.threads_per_worker(0) == 8


def test_worker_env_keeps_the_users_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_cores", lambda: 8)
    for var in runtime.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = runtime.worker_env(4)
    assert set(env) == set(runtime.THREAD_VARS)
    assert env["OMP_NUM_THREADS"] == "3"
    assert {v for k, v in env.items() if k != "OMP_NUM_THREADS"} == {"2"}


def test_task_numba_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_cores", lambda: 8)
    assert runtime.task_numba_threads(3, {}) == 3  # fixed by the driver
    assert runtime.task_numba_threads(None, {}) is None  # numba's default
    monkeypatch.setattr(runtime, "dask_host_threads", lambda hosts: hosts["h"])
    assert runtime.task_numba_threads(None, {"h": 4}) == 2  # 4 Dask threads on 8 cores


def test_dask_host_threads_outside_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    assert runtime.dask_host_threads({"127.0.0.1": 2}) is None


def test_numba_threads_capped_and_restored() -> None:
    before = numba.get_num_threads()
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    with runtime.numba_threads(limit + 5) as used:
        assert used == limit == numba.get_num_threads()
    with runtime.numba_threads(0) as used:
        assert used == 1 == numba.get_num_threads()
    assert numba.get_num_threads() == before


def test_task_threads_limits_blas_only_when_asked() -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    import numpy  # noqa: F401 - loads the BLAS library threadpoolctl inspects

    if not blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with runtime.task_threads(None, limit_blas=True):
        assert blas_threads() == {1}
    outside = blas_threads()
    with runtime.task_threads(None, limit_blas=False):
        assert blas_threads() == outside
