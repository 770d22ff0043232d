"""``clisonix deid`` end to end on a ``synth --phi`` set: nothing identifying survives,
references stay valid, pixels are untouched, and MIDI-B style scoring is 100 %."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from clisonix_cli.dicom.synth import plan
from clisonix_cli.dicom.synth_phi import canaries

from .conftest import (
    PHI_ARGS,
    Release,
    all_bytes,
    dicom_files,
    expected_offset,
    expected_uid,
    input_identifiers,
    leaks,
    shifted,
)

TABLE = Path(__file__).resolve().parents[2] / "clisonix_cli/dicom/deid/ps315_e11.csv"


def _plans() -> list:  # type: ignore[type-arg]
    args = {k: v for k, v in PHI_ARGS.items() if k != "seed"}
    return plan(phi=True, seed=int(PHI_ARGS["seed"]), **args)  # type: ignore[arg-type]


def _outputs(release: Release) -> dict[str, pydicom.Dataset]:
    """Released objects by SOP Instance UID."""
    return {
        str(ds.SOPInstanceUID): ds
        for ds in map(pydicom.dcmread, dicom_files(release.out))
    }


def test_release_succeeds_and_withholds_only_the_pdf(phi_release: Release) -> None:
    assert phi_release.exit_code == 0, phi_release.stderr
    report = json.loads((phi_release.out / "deid-report.json").read_text())
    # 2 patients x 2 studies: 8 image series of 3 slices, and per study KOS, SR, PR, PDF
    assert report["files"]["written"] == 8 * 3 + 4 * 3
    assert report["files"]["withheld"] == 4
    assert list(report["withheld"]) == ["CLX-E198"]  # the encapsulated PDFs
    assert report["files"]["failed"] == report["files"]["damaged"] == 0


def test_no_identifier_anywhere_in_out_dir_or_messages(
    phi_set: Path, phi_release: Release
) -> None:
    ids = input_identifiers(phi_set, canaries(int(PHI_ARGS["seed"]), _plans()))
    assert len(ids.canaries) > 60 and ids.uids and ids.dates and ids.names
    blobs = list(all_bytes(phi_release.out))
    blobs += [
        ("stdout", phi_release.stdout.encode()),
        ("stderr", phi_release.stderr.encode()),
    ]
    assert leaks(blobs, ids) == []
    # the folder names of the input appear nowhere either (they hold canaries)
    assert "IN_ZQXDIRNAME".lower() not in phi_release.stderr.lower()


def test_references_point_to_released_objects(phi_release: Release) -> None:
    out = _outputs(phi_release)
    series_of_study: dict[str, set[str]] = defaultdict(set)
    for ds in out.values():
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        series_of_study[str(ds.StudyInstanceUID)].add(str(ds.SeriesInstanceUID))
        for elem in ds.iterall():
            if elem.keyword == "ReferencedSOPInstanceUID":
                assert str(elem.value) in out, (
                    f"dangling reference in {ds.SOPClassUID.name}"
                )
            if elem.keyword in ("StudyInstanceUID", "SeriesInstanceUID"):
                assert str(elem.value).startswith("2.25.")
    assert len(series_of_study) == 4  # 2 patients x 2 studies
    images = [ds for ds in out.values() if "PixelData" in ds]
    by_series: dict[str, list[pydicom.Dataset]] = defaultdict(list)
    for ds in images:
        by_series[str(ds.SeriesInstanceUID)].append(ds)
    assert len(by_series) == 8 and all(len(v) == 3 for v in by_series.values())
    for ds_list in by_series.values():  # one series: one study, one frame of reference
        assert len({str(d.StudyInstanceUID) for d in ds_list}) == 1
        assert len({str(d.FrameOfReferenceUID) for d in ds_list}) == 1
    # the KOS evidence names every released image of its study
    for ds in out.values():
        if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.59":
            ev = ds.CurrentRequestedProcedureEvidenceSequence[0]
            assert str(ev.StudyInstanceUID) == str(ds.StudyInstanceUID)
            assert {
                str(s.SeriesInstanceUID) for s in ev.ReferencedSeriesSequence
            } <= set(series_of_study[str(ds.StudyInstanceUID)])


def _table_actions() -> dict[int, str]:
    """Basic Profile actions read straight from the shipped CSV (not through the code)."""
    lines = [ln for ln in TABLE.read_text().splitlines() if not ln.startswith("#")]
    out = {}
    for row in csv.DictReader(lines):
        tag = row["tag"]
        if "x" in tag or "g" in tag:
            continue
        out[int(tag[1:5] + tag[6:10], 16)] = (row["basic"], row["modified_dates"])
    return out  # type: ignore[return-value]


def test_midi_b_style_score_is_100_percent_per_action_class(
    phi_set: Path, phi_release: Release
) -> None:
    """Actions per instance, as the MIDI-B benchmark scores them (MICCAI 2024)."""
    table = _table_actions()
    out = _outputs(phi_release)
    score: dict[str, list[bool]] = defaultdict(list)
    pid_of_patient: dict[str, set[str]] = defaultdict(set)
    uid_map: dict[str, set[str]] = defaultdict(set)
    for path in dicom_files(phi_set):
        src = pydicom.dcmread(path)
        new_sop = expected_uid(str(src.SOPInstanceUID))
        if src.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1":
            assert new_sop not in out  # withheld PDF
            continue
        dst = out[new_sop]
        patient = str(src.PatientID)
        offset = expected_offset(patient)
        pid_of_patient[patient].add(str(dst.PatientID))
        score["PatientID consistent"].append(dst.PatientID == dst.PatientName)
        for elem in src:
            tag = int(elem.tag)
            basic, dates = table.get(tag, ("", ""))
            if elem.VR == "DA" and dates == "C" and elem.value:  # the option wins
                score["date shifted"].append(
                    str(dst[elem.tag].value) == shifted(str(elem.value), offset)
                )
            elif dates == "C":
                continue  # times: kept with modified dates
            elif elem.tag.is_private or basic == "X":
                score["tag removed"].append(elem.tag not in dst)
            elif elem.VR == "UI" and basic == "U":
                new = str(dst[elem.tag].value)
                score["UID changed"].append(
                    new == expected_uid(str(elem.value)) != elem.value
                )
                uid_map[str(elem.value)].add(new)
            elif elem.VR in ("PN", "LO", "SH", "LT", "ST", "UT") and "ZQX" in str(
                elem.value
            ):
                kept = elem.tag in dst and "ZQX" in str(dst[elem.tag].value)
                score["text removed"].append(not kept)
        if "PixelData" in src:
            score["pixels retained"].append(dst.PixelData == src.PixelData)
    score["UID consistent"] = [len(v) == 1 for v in uid_map.values()]
    news = [next(iter(v)) for v in pid_of_patient.values()]
    score["PatientID consistent"] += [len(v) == 1 for v in pid_of_patient.values()]
    score["PatientID consistent"].append(len(set(news)) == len(news))
    table_lines = [f"{k:22s} {sum(v)}/{len(v)}" for k, v in sorted(score.items())]
    print("\nMIDI-B style score per action class:\n" + "\n".join(table_lines))
    assert set(score) == {
        "tag removed", "text removed", "date shifted", "UID changed", "UID consistent",
        "PatientID consistent", "pixels retained",
    }  # fmt: skip
    for action, results in score.items():
        assert results and all(results), f"{action}: {sum(results)}/{len(results)}"


def test_marking_and_mapping(phi_release: Release) -> None:
    for ds in _outputs(phi_release).values():
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
        assert codes == ["113100", "113107"]
        assert "BurnedInAnnotation" not in ds or ds.BurnedInAnnotation != "NO"
    assert phi_release.mapping is not None
    assert phi_release.mapping.stat().st_mode & 0o777 == 0o600
    rows = [json.loads(line) for line in phi_release.mapping.read_text().splitlines()]
    studies = [r for r in rows if r["kind"] == "study"]
    assert all(r["new"] == expected_uid(r["original"]) for r in studies)
    assert {r["kind"] for r in rows} == {"patient", "study", "series", "file"}


def test_pixel_data_copied_byte_for_byte(phi_set: Path, phi_release: Release) -> None:
    out = _outputs(phi_release)
    n = 0
    for path in dicom_files(phi_set):
        src = pydicom.dcmread(path)
        if "PixelData" in src and src.SOPClassUID != "1.2.840.10008.5.1.4.1.1.104.1":
            dst = out[expected_uid(str(src.SOPInstanceUID))]
            assert dst.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
            assert dst.PixelData == src.PixelData
            n += 1
    assert n == 24


@pytest.mark.parametrize("name", ["deid-report.json", "manifest.jsonl"])
def test_report_and_manifest_name_no_input_path(
    phi_set: Path, phi_release: Release, name: str
) -> None:
    text = (phi_release.out / name).read_text()
    for p in phi_set.rglob("*"):
        assert p.name not in text
