"""--peers: whole jobs process vs process; the SimpleITK pipeline does clisonix's work."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.bench import peers
from clisonix_cli.bench import workload as wl


def _writer(out: Path, name: str) -> peers.Side:
    """A side that starts a fresh interpreter and writes one .nii file."""
    code = (
        f"import pathlib,sys; pathlib.Path(sys.argv[1], '{name}.nii').write_text('x')"
    )
    return peers.Side(name, [sys.executable, "-c", code, str(out)], out, 1)


def test_interleaved_runs_fresh_processes_in_alternating_order(tmp_path: Path) -> None:
    a, b = _writer(tmp_path / "a", "a"), _writer(tmp_path / "b", "b")
    ta, tb = peers.interleaved([a, b], repeats=3)
    for t in (ta, tb):
        assert len(t.samples) == 3
        assert t.first_call is not None and t.first_call > 0
    assert list((tmp_path / "a").iterdir()) == [tmp_path / "a" / "a.nii"]


def test_a_side_that_writes_nothing_fails(tmp_path: Path) -> None:
    side = peers.Side("quiet", [sys.executable, "-c", "pass"], tmp_path / "q", 1)
    with pytest.raises(peers.ChildProcessFailed, match="wrote no"):
        side.run()


def test_rows_state_both_timing_modes_and_equal_cores_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema of the section (commands faked: timing them is the bench's job)."""
    pytest.importorskip("SimpleITK")
    if peers.find_dcm2niix() is None:
        pytest.skip("dcm2niix is not installed (pip install dcm2niix)")
    runs: list[tuple[str, int, dict[str, str]]] = []

    def fake_run(self: peers.Side) -> float:
        runs.append((self.name, self.cores, dict(self.env)))
        return 2.0 if self.name == "clisonix" else 1.0

    monkeypatch.setattr(peers.Side, "run", fake_run)
    root = tmp_path / "wl"
    wl.synthesize_ct(root, patients=1, series=1, slices=2)
    sec = peers.peers_suite(root, cores=2, repeats=1, tmp=tmp_path)
    rows = sec["rows"]
    assert list(rows) == [
        "conversion_1v1",
        "pipeline_1v1",
        "pipeline_all",
        "conversion_all_v1",
    ]
    for key, row in rows.items():
        assert row["clisonix"]["timing"] == row["peer"]["timing"] == "process"
        assert row["clisonix"]["warm"]["calibrate"] in ("1t", "all")
        assert "calibrate" not in row["peer"]["warm"]  # peers are information
        assert row["ratio_warm"] == pytest.approx(0.5)
        assert row["slices"] == 2
        assert row["equal_cores"] == (key != "conversion_all_v1")
        if not row["equal_cores"]:
            assert "more cores for clisonix" in row["label"]
        assert row["clisonix"]["slices_per_s_per_core"] == pytest.approx(
            2 / 2.0 / row["clisonix"]["cores"]
        )
    # one core each: every thread pool of the clisonix process at 1
    one = [env for name, cores, env in runs if name == "clisonix" and cores == 1]
    assert one and all(env.get("NUMBA_NUM_THREADS") == "1" for env in one)
    # each row starts with an empty numba cache of its own (its cold run compiles)
    caches = {env["NUMBA_CACHE_DIR"] for name, _, env in runs if name == "clisonix"}
    assert len(caches) == 4


def _canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(path))
    return np.asarray(img.dataobj, dtype=np.float64), img.affine


def test_sitk_pipeline_writes_what_clisonix_writes(tmp_path: Path) -> None:
    """The peer of the CT-pipeline row does the same work: same grid, same voxels."""
    pytest.importorskip("SimpleITK")
    from clisonix_cli.bench import sitk_pipeline
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.execute import run

    root = tmp_path / "ct"
    wl.synthesize_ct(root, patients=1, series=1, slices=6)
    sitk_pipeline.main([str(root), str(tmp_path / "sitk"), "--threads", "1"])
    result = run(
        RunConfig(
            in_dir=root,
            out_dir=tmp_path / "mine",
            op_specs=sitk_pipeline.CLISONIX_OPS,
            format="nifti",
            jobs=1,
        )
    )
    assert not result.failed
    (theirs,) = (tmp_path / "sitk").glob("*.nii")
    (mine,) = (tmp_path / "mine").rglob("*.nii")
    a, aff_a = _canonical(mine)
    b, aff_b = _canonical(theirs)
    assert a.shape == b.shape
    np.testing.assert_allclose(aff_a, aff_b, atol=1e-3)
    # z-scores: clisonix's population std against ITK's sample std (n - 1), float32
    np.testing.assert_allclose(a, b, atol=2e-3, rtol=1e-4)
