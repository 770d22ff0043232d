"""Synthetic batches for QC: a baseline from one CT "scanner", a batch of two series with
a changed kernel, +60 HU and 3x noise, and a control batch of the same distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CT: dict[str, Any] = {
    "studies": 1,
    "series": 1,
    "slices": 12,
    "rows": 128,
    "cols": 128,
    "modality": "CT",
}
CHANGED: dict[str, Any] = {"kernel": "SHARP", "hu_offset": 60.0, "noise_sd": 30.0}


def synth(out: Path, **kw: Any) -> Path:
    from clisonix_cli.dicom.synth import synthesize

    synthesize(out, **kw)
    return out


def run_qc(in_dir: Path, out: Path, **qc: Any) -> Any:
    from clisonix_cli.qc.run import QcOptions
    from clisonix_cli.taskarray.qcrun import QcRunConfig
    from clisonix_cli.taskarray.qcrun import run_qc as run

    jobs = qc.pop("jobs", 1)
    backend = qc.pop("backend", "threads")
    return run(QcRunConfig(in_dir, out, qc=QcOptions(**qc), jobs=jobs, backend=backend))


@pytest.fixture(scope="session")
def qc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Baseline (10 series, seed 1000) and its qc.json under ``root/qc-base``."""
    root = tmp_path_factory.mktemp("qc")
    synth(root / "base", seed=1000, patients=10, **CT)
    run_qc(root / "base", root / "qc-base")
    return root


@pytest.fixture(scope="session")
def baseline_json(qc_root: Path) -> Path:
    return qc_root / "qc-base" / "qc.json"


@pytest.fixture(scope="session")
def changed_batch(qc_root: Path) -> Path:
    return synth(qc_root / "changed", seed=7, patients=2, **CT, **CHANGED)


@pytest.fixture(scope="session")
def control_batch(qc_root: Path) -> Path:
    return synth(qc_root / "control", seed=8, patients=2, **CT)
