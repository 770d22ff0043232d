"""``make fuzz``: seed each target's corpus from the test data, fuzz it, keep the findings.

Usage: ``python fuzz/run.py [--runs N] [--seconds S] [--jobs J] [TARGET ...]`` (default:
every target, 100000 runs each, no time limit). The corpus grows in ``.fuzz/<target>/`` (not versioned); inputs that
crash, hang (10 s) or pass the memory limit (2 GB RSS) are written to
``tests/data/fuzz-regressions/<target>/``, which ``make test`` replays. The last line per
target says how many inputs ran and what was found.

Seeds: ``sample_data/`` and ``../shared/data/pydicom-data`` files up to 256 KB for the
``file`` target; the first frame of every compressed pydicom-data file, behind the 8-byte
header ``targets.codec_file`` reads, for the ``codec`` target; and every kept finding.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data" / "pydicom-data"
REGRESSIONS = ROOT / "tests" / "data" / "fuzz-regressions"
WORK = ROOT / ".fuzz"
SEED_MAX = 256 << 10

sys.path.insert(0, str(HERE))


def _small_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and 0 < p.stat().st_size <= SEED_MAX
    )


def _codec_seeds() -> list[bytes]:
    """First frames of the compressed test files, behind a matching 8-byte header."""
    import pydicom
    import targets
    from pydicom.encaps import generate_frames

    seeds: list[bytes] = []
    for path in sorted(SHARED.glob("*.dcm")) if SHARED.is_dir() else []:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                syntax = str(ds.file_meta.TransferSyntaxUID)
                if syntax not in targets.SYNTAXES or syntax in targets.NATIVE:
                    continue
                frames = int(ds.get("NumberOfFrames", 1) or 1)
                frame = next(generate_frames(ds.PixelData, number_of_frames=frames))
                rows, cols = int(ds.Rows) - 1, int(ds.Columns) - 1
                bits = {1: 0, 8: 1, 16: 2, 32: 6}.get(int(ds.BitsAllocated), 1)
            except Exception:  # noqa: BLE001 - a file that cannot seed is skipped
                continue
        if len(frame) > SEED_MAX:
            continue
        head = bytes([targets.SYNTAXES.index(syntax)]) + (
            rows.to_bytes(2, "little") + cols.to_bytes(2, "little")
        )
        seeds.append(head + bytes([bits, 0, 0]) + frame)
    return seeds


def seed(target: str) -> Path:
    """Fill ``.fuzz/<target>/corpus`` with the seeds (kept findings included)."""
    corpus = WORK / target / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    kept = _small_files(REGRESSIONS / target)
    if target == "file":
        files = _small_files(ROOT / "sample_data") + _small_files(SHARED) + kept
        for i, path in enumerate(files):
            shutil.copyfile(path, corpus / f"seed-{i:04d}")
    else:
        for i, data in enumerate(_codec_seeds()):
            (corpus / f"seed-{i:04d}").write_bytes(data)
        for i, path in enumerate(kept):
            shutil.copyfile(path, corpus / f"kept-{i:04d}")
    return corpus


def fuzz(target: str, runs: int, jobs: int, seconds: int = 0) -> tuple[int, list[str]]:
    """Run ``fuzz.py TARGET`` on its corpus; return (inputs run, findings)."""
    corpus = seed(target)
    out = REGRESSIONS / target
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    args = [
        sys.executable, str(HERE / "fuzz.py"), target, f"-runs={runs}",
        "-rss_limit_mb=2048", "-timeout=10", "-max_len=16384", "-print_final_stats=1",
        "-report_slow_units=3600",  # a slow input is a finding only past -timeout
        f"-max_total_time={seconds}", f"-artifact_prefix={out}/", str(corpus),
    ]  # fmt: skip
    if jobs > 1:
        args[3:3] = [f"-jobs={jobs}", f"-workers={jobs}"]
    env = dict(os.environ, RUST_BACKTRACE="0")  # a Rust decoder's panic: one line
    log_path = WORK / target / "last.log"  # follow it with tail -f while it runs
    with open(log_path, "w") as log_file:
        proc = subprocess.run(
            args, stdout=log_file, stderr=subprocess.STDOUT, check=False, env=env
        )
    log = log_path.read_text(errors="replace")
    done = [int(n) for n in re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)]
    found = sorted(p.name for p in set(out.iterdir()) - before if p.name != ".gitkeep")
    if proc.returncode not in (0,) and not found:
        found = [f"(fuzzer exited {proc.returncode}; see .fuzz/{target}/last.log)"]
    return sum(done), found


def main() -> None:
    """Parse the arguments, fuzz each target, print one summary line per target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=["file", "codec"])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--seconds", type=int, default=0, help="stop after (0: no limit)"
    )
    ns = parser.parse_args()
    failed = False
    for target in ns.targets:
        runs, found = fuzz(target, ns.runs, ns.jobs, ns.seconds)
        print(f"fuzz {target}: {runs} inputs run, {len(found)} finding(s)"
              + (": " + ", ".join(found) if found else ""))  # fmt: skip
        failed = failed or bool(found)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
