"""``clisonix scan`` end to end with CliRunner: JSON schema, --files-from, skips, privacy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clisonix_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("ZZSECRET", "SYNTH^P", "SYNTH-P", "SYNTHETIC HOSPITAL")


@pytest.fixture
def study(synth_study: Path, tmp_path: Path) -> Path:
    """The synthetic study plus a renamed patient, an SR-like object and junk files."""
    import pydicom

    root = tmp_path / "in"
    shutil.copytree(synth_study, root)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    ds = pydicom.dcmread(files[0])
    ds.PatientName = "ZZSECRET^NAME"
    ds.save_as(files[0])
    ds = pydicom.dcmread(files[1])
    del ds.PixelData
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    (root / "extra").mkdir()
    ds.save_as(root / "extra" / "no_pixels.dcm")
    (root / "extra" / "notes.txt").write_text("ZZSECRET notes, not DICOM\n")
    (root / "extra" / "empty.dcm").write_bytes(b"")
    return root


def _run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["scan", *args], input=stdin)


def _keys(doc: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(doc, dict):
        for key, val in doc.items():
            if not re.fullmatch(r"CLX-E\d+", key):  # codes are data, not field names
                out.add(key)
            out |= _keys(val, f"{prefix}.{key}")
    elif isinstance(doc, list):
        for val in doc:
            out |= _keys(val, prefix + "[]")
    return out


def test_json_document(study: Path) -> None:
    result = _run(str(study), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "clisonix.scan/1"
    counts = doc["counts"]
    n_dicom_synth = 2 * 3 * 8
    assert counts["files"] == n_dicom_synth + 3
    assert counts["dicom"] == n_dicom_synth + 1
    assert (counts["non_dicom"], counts["unreadable"]) == (1, 1)
    assert (counts["studies"], counts["series"], counts["stacks"]) == (2, 6, 6)
    assert counts["convertible_stacks"] == 6
    assert doc["non_dicom"] == ["extra/notes.txt"]
    assert {s["path"]: s["code"] for s in doc["skipped"]} == {
        "extra/empty.dcm": "CLX-E100",
        "extra/no_pixels.dcm": "CLX-E102",
    }
    assert doc["skipped_by_code"]["CLX-E102"]["count"] == 1
    syntaxes = {t["uid"]: t for t in doc["transfer_syntaxes"]}
    assert syntaxes["1.2.840.10008.1.2.5"]["decoder"]  # RLE series of the mixed study
    assert sum(t["files"] for t in doc["transfer_syntaxes"]) == n_dicom_synth
    for study_doc in doc["studies"]:
        for series in study_doc["series"]:
            (stack,) = series["stacks"]
            assert stack["shape"] == [8, 32, 32] and stack["n_files"] == 8
            assert stack["problems"] == [] and stack["convertible"]
            assert len(stack["spacing_mm"]) == 3 and len(stack["orientation"]) == 6


def test_every_json_field_is_documented(study: Path) -> None:
    doc = json.loads(_run(str(study), "--json").stdout)
    text = (ROOT / "docs" / "scan.md").read_text()
    missing = sorted(k for k in _keys(doc) if f"`{k}`" not in text)
    assert not missing, f"fields not documented in docs/scan.md: {missing}"


def test_no_patient_identifier_in_any_output(study: Path) -> None:
    for args in ((str(study), "--json"), (str(study),)):
        result = _run(*args)
        assert result.exit_code == 0
        for secret in SECRETS:
            assert secret not in result.stdout
            assert secret not in result.stderr


def test_files_from_file_and_stdin(study: Path, tmp_path: Path) -> None:
    series_dir = sorted(p for p in study.rglob("*.dcm") if "extra" not in p.parts)[
        0
    ].parent
    wanted = sorted(series_dir.glob("*.dcm"))[:5]
    lines = [str(p.relative_to(study)) for p in wanted[:3]] + [
        str(p) for p in wanted[3:]
    ]
    listing = tmp_path / "list.txt"
    listing.write_text("# five slices\n" + "\n".join(lines) + "\n\n")
    for args, stdin in (
        (["--files-from", str(listing)], None),
        (["--files-from", "-"], "\n".join(lines)),
    ):
        result = _run(str(study), "--json", *args, stdin=stdin)
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["counts"]["files"] == 5 and doc["counts"]["stacks"] == 1
        assert doc["studies"][0]["series"][0]["stacks"][0]["n_slices"] == 5


@pytest.mark.parametrize("command", ["scan", "transform"])
def test_files_from_outside_in_dir_exits_2_for_scan_and_transform(
    study: Path, tmp_path: Path, command: str
) -> None:
    """One policy for both commands: a listed file must lie under IN_DIR."""
    inside = sorted(study.rglob("*.dcm"))[0]
    outside = tmp_path / "elsewhere.dcm"
    shutil.copy(inside, outside)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{inside.relative_to(study)}\n../elsewhere.dcm\n")
    args = [str(study), "--files-from", str(listing)]
    if command == "transform":
        args.insert(1, str(tmp_path / "out"))
    result = CliRunner().invoke(app, [command, *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "CLX-E001" in result.stderr and "outside IN_DIR" in result.stderr
    assert "../elsewhere.dcm" in result.stderr


def test_text_report(study: Path) -> None:
    result = _run(str(study))
    assert result.exit_code == 0
    assert "6 stack(s) in 6 series" in result.stdout
    assert "Decoder preflight" in result.stdout
    assert "CLX-E102: 1 file(s)" in result.stderr
    assert "not DICOM" in result.stderr


def test_unreadable_input_exits_3(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "missing"))
    assert result.exit_code == 3
    assert "CLX-E034" in result.stderr
    result = _run(str(tmp_path), "--files-from", str(tmp_path / "nolist.txt"))
    assert result.exit_code == 3 and "CLX-E034" in result.stderr


def test_empty_folder_is_a_scan(tmp_path: Path) -> None:
    refused = _run(str(tmp_path), "--json")  # no DICOM image at all: a usage error
    assert refused.exit_code == 2 and refused.stderr.startswith("CLX-E214")
    result = _run(str(tmp_path), "--json", "--allow-empty")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["counts"]["files"] == 0 and doc["studies"] == []


def test_grouped_skip_line_does_not_give_one_reason_for_all(
    synth_study: Path, tmp_path: Path
) -> None:
    import pydicom

    root = tmp_path / "colour"
    root.mkdir()
    src = sorted(synth_study.rglob("*.dcm"))
    for k, (photometric, samples) in enumerate([("YBR_FULL", 1), ("RGB", 1)]):
        ds = pydicom.dcmread(src[k])
        ds.PhotometricInterpretation = photometric
        ds.SamplesPerPixel = samples
        ds.save_as(root / f"c{k}.dcm")
    result = _run(str(root))
    assert result.exit_code == 0, result.stderr
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("CLX-E172"))
    assert "2 file(s) skipped in ./ for 2 different reasons" in line
    assert "e.g. c0.dcm: " in line and "YBR_FULL" in line


def test_json_reports_object_kinds_geometry_and_colour(
    shared_data: Path, tmp_path: Path
) -> None:
    import shutil

    src = shared_data / "pydicom-data"
    for name in ("SC_rgb.dcm", "OBXXXX1A.dcm", "emri_small.dcm", "RG1_J2KI.dcm"):
        shutil.copy(src / name, tmp_path / name)
    result = _run(str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    stacks = {
        st["object"] + "/" + st["geometry"] + "/" + st["colour"]
        for study in doc["studies"]
        for series in study["series"]
        for st in series["stacks"]
    }
    assert "secondary capture/plane/RGB" in stacks
    assert "enhanced MR/frames/greyscale" in stacks
    assert any(s.endswith("/PALETTE COLOR") for s in stacks)
    assert {"name": "frames", "count": 1} in doc["geometry_kinds"]
    assert {"name": "RGB", "count": 1} in doc["colour_models"]
    table = _run(str(tmp_path))
    assert "geometry: " in table.stdout and "PALETTE COLOR" in table.stdout
