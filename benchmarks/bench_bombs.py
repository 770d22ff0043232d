"""Peak memory and outcome of the crafted decompression bombs, whole-process runs.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_bombs.py [--repeats 3] [--work /dev/shm/clx-bombs]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/bench_bombs.py

Crafts the three bombs of ``tests/security/test_bombs.py`` (a 1,180-byte JPEG whose SOF
claims 16384 x 16384, a JPEG 2000 codestream whose SIZ claims 16384 x 16384 x 16 bits, a
1 MB deflated dataset that inflates to 1 GiB), then runs ``clisonix scan`` and ``clisonix
transform --backend threads --jobs 1`` on each, ``--repeats`` times interleaved, in fresh
processes; and ``transform --backend auto --jobs 2`` on a series of three JPEG bombs (one
task in the driver, its slices decoded on two worker processes). Prints one JSON line per
(bomb, command): exit codes, the failure code of the file, and the median and spread (min,
max) of the peak memory in MiB: the larger of the largest process's peak resident set and
the largest sum over the process tree (``run_measured`` in the tests' conftest). The
clisonix that runs is the one Python imports (``PYTHONPATH`` selects another checkout, e.g.
``git archive main clisonix_cli | tar -x -C /tmp/main``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _crafting() -> Any:
    spec = importlib.util.spec_from_file_location(
        "clisonix_security_conftest", ROOT / "tests" / "security" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Craft, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/clx-bombs"))
    ns = parser.parse_args()
    sc = _crafting()
    side = 16384
    shutil.rmtree(ns.work, ignore_errors=True)
    bombs = {
        "jpeg": sc.write_encapsulated(
            ns.work / "jpeg" / "in" / "bomb.dcm", sc.JPEG_BASELINE,
            sc.jpeg_frame(side, side), side, side, 8,
        ),
        "j2k": sc.write_encapsulated(
            ns.work / "j2k" / "in" / "bomb.dcm", sc.J2K_LOSSLESS,
            sc.j2k_frame(side, side), side, side, 16,
        ),
        "deflate": sc.write_deflate_bomb(
            ns.work / "deflate" / "in" / "bomb.dcm", side, 2 * side, 1
        ),
    }  # fmt: skip
    for i in (1, 2, 3):  # one series of three slices: the parallel decode path
        bombs["jpeg-series"] = sc.write_encapsulated(
            ns.work / "jpeg-series" / "in" / f"s{i}.dcm", sc.JPEG_BASELINE,
            sc.jpeg_frame(side, side), side, side, 8, instance=i,
        )  # fmt: skip
    peaks: dict[tuple[str, str], list[float]] = {}
    outcome: dict[tuple[str, str], Any] = {}
    for _ in range(ns.repeats):
        for name, path in bombs.items():
            in_dir = path.parent
            out_dir = in_dir.parent / "out"
            for command in ("scan", "transform"):
                shutil.rmtree(out_dir, ignore_errors=True)
                args = [command, str(in_dir)]
                if command == "transform":
                    backend = (
                        ["auto", "--jobs", "2"]
                        if name == "jpeg-series"
                        else ["threads", "--jobs", "1"]
                    )
                    args += [str(out_dir), "--backend", *backend,
                             "--format", "nifti"]  # fmt: skip
                else:
                    args += ["--json"]
                run = sc.run_measured(args)
                peaks.setdefault((name, command), []).append(run["peak"] / 2**20)
                codes = None
                manifest = out_dir / "manifest.jsonl"
                if command == "transform" and manifest.exists():
                    codes = [
                        (json.loads(line).get("error") or {}).get("code")
                        for line in manifest.read_text().splitlines()
                    ]
                outcome[(name, command)] = {"rc": run["rc"], "codes": codes}
    for (name, command), values in peaks.items():
        print(json.dumps({
            "bomb": name, "file_bytes": bombs[name].stat().st_size, "command": command,
            **outcome[(name, command)],
            "peak_mib_median": round(statistics.median(values), 1),
            "peak_mib_min": round(min(values), 1), "peak_mib_max": round(max(values), 1),
            "runs": len(values),
        }))  # fmt: skip


if __name__ == "__main__":
    main()
