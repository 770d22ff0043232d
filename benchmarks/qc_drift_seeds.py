"""False-alarm and detection rates of QC drift and series rules over many seeds (issue #14).

A script, not a test (see benchmarks/README.md): the test suite runs the same scenario on a
few seeds (tests/qc/test_qc_drift.py); this one runs it on many and prints the rates.

Each trial makes a baseline of ``--baseline-series`` synthetic CT series from one "scanner"
(seed ``1000 + trial``), then two batches of ``--batch`` series each: a control batch of the
same distribution (another seed) and a changed batch (kernel SHARP, +60 HU, noise 30 HU
instead of 10). It counts, over the trials, how often the control group is flagged as
drifted (false alarm), how many control series end ``warn`` or ``fail``, how many single
column tests of the control group drift, how often the changed group drifts and how many
changed series fail (detection)::

    .venv/bin/python benchmarks/qc_drift_seeds.py --trials 40
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from clisonix_cli.dicom.synth import synthesize
from clisonix_cli.qc.run import QcOptions
from clisonix_cli.taskarray.qcrun import QcRunConfig, run_qc

CT = {
    "studies": 1,
    "series": 1,
    "slices": 12,
    "rows": 128,
    "cols": 128,
    "modality": "CT",
}
CHANGED = {"kernel": "SHARP", "hu_offset": 60.0, "noise_sd": 30.0}


def _qc(src: Path, out: Path, baseline: Path | None = None) -> dict:  # type: ignore[type-arg]
    cfg = QcRunConfig(
        src, out, qc=QcOptions(baseline=baseline), jobs=1, backend="threads"
    )
    return run_qc(cfg).doc


def main() -> None:
    """Run the trials and print the rates."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--baseline-series", type=int, default=10)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qc-seeds-", dir="/dev/shm"))
    counts = dict.fromkeys(
        ("ctl_drift", "ctl_series_flagged", "chg_drift", "chg_series_failed",
         "ctl_cols_drifted", "ctl_cols_tested"), 0,
    )  # fmt: skip
    try:
        for t in range(args.trials):
            base = root / f"b{t}"
            synthesize(base, seed=1000 + t, patients=args.baseline_series, **CT)
            bdoc = root / f"qb{t}"
            _qc(base, bdoc)
            ctl = root / f"c{t}"
            chg = root / f"x{t}"
            synthesize(ctl, seed=5000 + t, patients=args.batch, **CT)
            synthesize(chg, seed=9000 + t, patients=args.batch, **CT, **CHANGED)
            c = _qc(ctl, root / f"qc{t}", bdoc / "qc.json")
            x = _qc(chg, root / f"qx{t}", bdoc / "qc.json")
            counts["ctl_drift"] += bool(c["summary"]["drifted_groups"])
            counts["ctl_series_flagged"] += c["summary"]["warn"] + c["summary"]["fail"]
            for g in c["groups"]:  # single columns: the per-test false-alarm rate
                cols = g["drift"]["columns"] if g["drift"] else []
                counts["ctl_cols_tested"] += len(cols)
                counts["ctl_cols_drifted"] += sum(bool(col["drifted"]) for col in cols)
            counts["chg_drift"] += bool(x["summary"]["drifted_groups"])
            counts["chg_series_failed"] += x["summary"]["fail"]
            for kind in (base, ctl, chg, bdoc):
                shutil.rmtree(kind, ignore_errors=True)
            print(f"trial {t + 1}/{args.trials}: {counts}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n, s = args.trials, args.trials * args.batch
    print(
        f"=> {n} trials, baseline {args.baseline_series} series, batches of {args.batch}: "
        f"control group drifted {counts['ctl_drift']}/{n}, control series warn or fail "
        f"{counts['ctl_series_flagged']}/{s}; changed group drifted "
        f"{counts['chg_drift']}/{n}, changed series failed {counts['chg_series_failed']}/{s}"
    )
    print(
        f"   single control columns drifted: {counts['ctl_cols_drifted']}/"
        f"{counts['ctl_cols_tested']} tests"
    )


if __name__ == "__main__":
    main()
