"""2-D and colour outputs are byte-identical across --jobs, backends, shards and resume;
a folder mixing every kind of object converts each image or names why it is not one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from clisonix_cli.dicom.synth import synthesize
from clisonix_cli.errors import NoPixelDataError
from clisonix_cli.taskarray.config import RunConfig, Shard
from clisonix_cli.taskarray.execute import run
from clisonix_cli.taskarray.manifest import read_manifest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PYDICOM = SHARED / "pydicom-data"
# 2-D greyscale and colour objects of different studies (shards split by study)
OBJECTS = (
    "SC_rgb.dcm",  # RGB, native
    "SC_rgb_dcmtk_ebcynp_dcmd.dcm",  # YBR_FULL_422, JPEG baseline
    "OBXXXX1A_2frame.dcm",  # palette, 2 frames
    "US1_J2KR.dcm",  # YBR_RCT, JPEG 2000 lossless
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # greyscale 2-D, JPEG lossless
    "vlut_04.dcm",  # greyscale with a VOI LUT
    "emri_small.dcm",  # legacy multi-frame MR: frames on the 4th axis
)


@pytest.fixture(scope="module")
def objects_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PYDICOM.is_dir():
        pytest.skip("../shared/data/pydicom-data is not present")
    root = tmp_path_factory.mktemp("objects_in")
    for name in OBJECTS:
        shutil.copy(PYDICOM / name, root / name)
    return root


def _cfg(in_dir: Path, out_dir: Path, fmt: str, **kw: Any) -> RunConfig:
    return RunConfig(
        in_dir=in_dir, out_dir=out_dir, format=fmt,
        op_specs=("resize:rows=24,cols=20",), **kw,
    )  # fmt: skip


@pytest.fixture(scope="module", params=["png", "nifti-gz", "npy"])
def reference(
    request: pytest.FixtureRequest,
    objects_in: Path,
    tmp_path_factory: pytest.TempPathFactory,
    fakes: ModuleType,
) -> Iterator[SimpleNamespace]:
    fmt = str(request.param)
    out = tmp_path_factory.mktemp(f"ref-{fmt}") / "out"
    result = run(_cfg(objects_in, out, fmt, jobs=1))
    assert result.exit_code == 0, [r["error"] for r in result.failed]
    assert len(result.records) == len(OBJECTS)
    yield SimpleNamespace(
        fmt=fmt, out=out, result=result, digest=fakes.tree_digest(out)
    )


def _outputs(digest: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in digest.items() if not k.startswith(("manifest", ".clisonix"))
    }


@pytest.mark.parametrize(("backend", "jobs"), [("loky", 2), ("threads", 2)])
def test_backends_and_jobs_give_identical_bytes(
    objects_in: Path,
    reference: SimpleNamespace,
    fakes: ModuleType,
    tmp_path: Path,
    backend: str,
    jobs: int,
) -> None:
    out = tmp_path / "out"
    result = run(_cfg(objects_in, out, reference.fmt, backend=backend, jobs=jobs))
    assert result.exit_code == 0
    assert fakes.tree_digest(out) == reference.digest


def test_shards_then_resume_give_identical_bytes(
    objects_in: Path, reference: SimpleNamespace, fakes: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for i in range(3):
        assert (
            run(
                _cfg(objects_in, out, reference.fmt, jobs=2, shard=Shard(i, 3))
            ).exit_code
            == 0
        )
    assert list(read_manifest(out).values()) == reference.result.records
    assert _outputs(fakes.tree_digest(out)) == _outputs(reference.digest)
    # delete one task's outputs: --resume redoes exactly those, with the same bytes
    victim = reference.result.records[0]["outputs"][0]["path"]
    (out / victim).unlink()
    again = run(_cfg(objects_in, out, reference.fmt, jobs=1, resume=True))
    assert again.exit_code == 0 and len(again.resumed) == len(OBJECTS) - 1
    assert _outputs(fakes.tree_digest(out)) == _outputs(reference.digest)


def test_mixed_export_converts_every_image_or_names_the_non_image(
    tmp_path: Path,
) -> None:
    """pydicom-data, deid-data, dcm_qa and synth output in one folder."""
    deid = pytest.importorskip("deid_data", reason="pip install deid-data (dev extra)")
    if not (SHARED / "dcm_qa").is_dir():
        pytest.skip("../shared/data/dcm_qa is not present")
    src = tmp_path / "in"
    shutil.copytree(PYDICOM, src / "pydicom")
    shutil.copytree(Path(deid.__file__).parent / "data", src / "deid")
    shutil.copytree(SHARED / "dcm_qa" / "In", src / "dcm_qa")
    synthesize(
        src / "synth",
        seed=1,
        patients=1,
        studies=1,
        series=2,
        slices=4,
        rows=16,
        cols=16,
    )
    out = tmp_path / "out"
    result = run(RunConfig(in_dir=src, out_dir=out, format="npy", jobs=2))
    failed = {tuple(r["inputs"][:1]): r["error"] for r in result.failed}
    # the only files that may fail are the deliberately broken ones of the pydicom set
    broken = {
        "pydicom/bad_sequence.dcm",
        "pydicom/emri_small_jpeg_2k_lossless_too_short.dcm",
    }
    assert {k[0] for k in failed} <= broken, failed
    for rec in result.skipped:
        if rec["error"]["code"] == NoPixelDataError.code:
            assert any(
                kind in rec["error"]["message"]
                for kind in (
                    "SR",
                    "RT Plan",
                    "Structure Set",
                    "Key Object",
                    "Presentation",
                    "PDF",
                    "Waveform",
                )
            ), rec
        else:  # duplicates of another copy, files that are not DICOM, damaged files
            assert rec["error"]["code"] in (
                "CLX-E122",
                "CLX-E100",
                "CLX-E101",
                "CLX-E112",
            ), rec
    kinds = {r.get("geometry", "volume") for r in result.records if r["status"] == "ok"}
    assert {"volume", "projection", "plane", "pixel", "frames"} <= kinds
    assert any(r.get("colour") for r in result.records if r["status"] == "ok")
    docs = [
        json.loads(p.read_text())
        for p in out.rglob("*.json")
        if "manifest" not in p.name
    ]
    assert docs and not any("PatientName" in d for d in docs)
