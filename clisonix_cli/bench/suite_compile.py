"""The compile suite (``compile``): numba compile time of the ops, cold and cached."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clisonix_cli.bench.harness import run_child


def compile_suite(op_names: Sequence[str], *, tmp: Path) -> dict[str, Any]:
    """numba compile time: cold (empty ``NUMBA_CACHE_DIR``) and cached (same dir again).

    Each run is a fresh interpreter that imports the registry, then calls every op's
    ``apply`` once on a 4x32x32 int16 volume; the first call of an op is its compile (or
    cache load) plus a negligible run.
    """
    cache = tmp / "numba_cache"
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    args = ["compile", "--ops", ",".join(op_names)]
    env = {"NUMBA_CACHE_DIR": str(cache)}
    cold = run_child(args, env=env)
    cached = run_child(args, env=env)
    section: dict[str, Any] = {
        "ops": list(op_names),
        "cache": "NUMBA_CACHE_DIR (temporary)",
    }
    for label, res in (("cold", cold), ("cached", cached)):
        section[label] = {
            "import_s": res["import_s"],
            "compile_total_s": res["total_s"],
            "process_s": res["process_s"],
            "peak_rss_mib": res["peak_rss_mib"],
            "per_op": {
                name: {"compile_ms": ms} for name, ms in res["per_op_ms"].items()
            },
        }
    return section
