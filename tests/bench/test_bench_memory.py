"""The memory-copy figures of ``clisonix bench``: warm and fresh destinations."""

from __future__ import annotations

import pytest

from clisonix_cli.bench.memory import copy_bandwidth
from clisonix_cli.bench.suite_memory import memory_suite


@pytest.mark.parametrize("threads", [1, 2])
def test_fresh_copy_bandwidth_is_measured(threads: int) -> None:
    gbps, timing = copy_bandwidth(buffer_mib=4, threads=threads, repeats=2, fresh=True)
    assert gbps > 0
    assert len(timing.samples) == 2


def test_memory_suite_reports_warm_and_fresh_copies() -> None:
    sec = memory_suite(quick=True, cores=2, repeats=1)
    for key in (
        "copy_gbps_1t",
        "copy_gbps_all",
        "copy_fresh_gbps_1t",
        "copy_fresh_gbps_all",
    ):
        assert sec[key] > 0, key
    assert sec["copy_fresh_1t"]["repeats"] == 1
