"""Does ``clisonix bench --compare`` cry wolf, and does it see a real loss? (issue #12)

Two experiments, four ``clisonix bench --quick`` runs of the same build, one after another:

1. **noise**: a run, then a second run ``--compare``-d with the first while another process
   keeps one core busy (``python -c "while True: pass"``). Expected: exit 0, nothing
   regressed.
2. **fewer cores**: a normal run, then a run pinned to one core (``taskset -c 0``)
   ``--compare``-d with it. Expected: exit 1; the regressed figures are all-cores figures
   (``"calibrate": "all"``), none of the one-thread figures.

Prints one JSON object: per experiment the commands, the exit code, the load average
before and after, and the figures that regressed or improved with their level (``1t`` or
``all``), change and p-value. Documents and printed tables go to ``--work``::

    .venv/bin/python benchmarks/bench_compare_gate.py [--work /dev/shm/gate]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from clisonix_cli.bench.compare import timing_nodes

CLISONIX = [sys.executable, "-m", "clisonix_cli", "bench", "--quick"]


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def bench(
    out: Path, *, compare: Path | None = None, pin: bool = False
) -> dict[str, Any]:
    """One quick run writing ``out``; with ``compare``, judged against that document."""
    argv = [*CLISONIX, "--output", str(out)]
    if compare is not None:
        argv += ["--compare", str(compare)]
    if pin:
        taskset = shutil.which("taskset")
        if taskset is None:
            sys.exit("taskset is missing (util-linux)")
        argv = [taskset, "-c", "0", *argv]
    before = load()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    out.with_suffix(".txt").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    shown = " ".join(argv).replace(sys.executable + " -m clisonix_cli", "clisonix")
    return {
        "command": shown,
        "exit": proc.returncode,
        "load_before": round(before, 2),
        "load_after": round(load(), 2),
    }


def verdicts(old: Path, new: Path) -> dict[str, Any]:
    """The figures of ``new``'s comparison that moved, with their yardstick level."""
    doc = json.loads(new.read_text(encoding="utf-8"))
    levels = {k: str(v["calibrate"]) for k, v in timing_nodes(doc).items()}
    section = doc["comparison"]
    moved = [
        {
            "figure": c["figure"],
            "level": levels.get(c["figure"], "?"),
            "status": c["status"],
            "relative": c["relative"],
            "p_slower": c["p_slower"],
        }
        for c in section["changes"]
        if c["status"] in ("regressed", "improved")
    ]
    judged = [c for c in section["changes"] if c["status"] not in ("too small",)]
    return {
        "regressions": section["regressions"],
        "gated_judged": len(judged),
        "regressed_levels": sorted(
            {m["level"] for m in moved if m["status"] == "regressed"}
        ),
        "moved": moved,
        "config_differences": section["config_differences"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/clisonix-gate"))
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}

    a, b = work / "noise_a.json", work / "noise_b.json"
    first = bench(a)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        second = bench(b, compare=a)
    finally:
        busy.kill()
        busy.wait()
    result["noise"] = {
        "runs": [first, second],
        "note": "second run with one core kept busy",
        **verdicts(a, b),
    }

    n, p = work / "normal.json", work / "pinned.json"
    normal = bench(n)
    pinned = bench(p, compare=n, pin=True)
    result["fewer_cores"] = {"runs": [normal, pinned], **verdicts(n, p)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
