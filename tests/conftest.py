"""Shared fixtures: a small synthetic study, and the real test data when present."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Small but complete: 2 patients x 3 series (CT axial explicit, MR oblique RLE,
# CT coronal explicit), 8 slices of 32x32 each.
SYNTH_ARGS: dict[str, int | str] = {
    "seed": 0,
    "patients": 2,
    "studies": 1,
    "series": 3,
    "slices": 8,
    "rows": 32,
    "cols": 32,
    "modality": "mixed",
    "syntax": "mixed",
}


@pytest.fixture(scope="session")
def synth_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder written by ``clisonix synth`` with :data:`SYNTH_ARGS` (read-only: copy it
    before changing anything)."""
    from clisonix_cli.dicom.synth import synthesize

    out = tmp_path_factory.mktemp("synth_study")
    synthesize(out, **SYNTH_ARGS)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (pydicom-data, dcm_qa); skips the test when it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(
            f"real test data not found at {SHARED_DATA} (see docs on test data)"
        )
    return SHARED_DATA
