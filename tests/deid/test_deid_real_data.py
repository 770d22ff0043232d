"""Real files: deid-data (synthetic PHI in CT, DX, US objects), pydicom-data and dcm_qa;
outputs stay valid DICOM (dciodvfy reports no error it did not report on the input)."""

from __future__ import annotations

import gzip
import json
import re
import struct
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from clisonix_cli.dicom.deid.guard import Terms
from clisonix_cli.dicom.deid.instance import deidentify_file
from clisonix_cli.dicom.deid.keys import DeidKey
from clisonix_cli.dicom.deid.settings import DeidSettings

from .conftest import (
    KEY,
    dciodvfy_errors,
    dicom_files,
    expected_uid,
    input_identifiers,
    invoke,
    leaks,
)

BIG = ("ultrasound-multiframe.dcm",)  # 43 MB: read in the streaming test only


def _deid_data_inputs(deid_data: Path, tmp_path: Path) -> Path:
    """deid-data's DICOM files (the 43 MB cine left out), linked into one folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(deid_data.rglob("*.dcm")):
        if p.name not in BIG:
            (folder / f"{p.parent.name}_{p.name}").symlink_to(p)
    return folder


def test_deid_data_release_policy_and_no_phi(
    deid_data: Path, key_file: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted(deid_data.rglob("*.dcm")):
        if p.name not in BIG:
            (src / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
    out = tmp_path / "out"
    result = invoke(["deid", str(src), str(out), "--key-file", str(key_file), "--json"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    entries = [e for r in records for e in r["inputs"]]
    withheld = [e for e in entries if e["status"] == "withheld"]
    # the two US files that say YES, the US RGB image that says nothing, and the
    # secondary captures (CT brain JPEGs, dicom-cookies) that do not say NO
    assert {e["code"] for e in withheld} == {"CLX-E197"}
    released = [pydicom.dcmread(p) for p in dicom_files(out)]
    assert [ds.Modality for ds in released] == ["DX"]  # the cat radiograph
    assert released[0].BurnedInAnnotation == "NO"  # it said NO itself
    allowed = invoke(
        ["deid", str(src), str(tmp_path / "all"), "--key-file", str(key_file),
         "--allow-burned-in"]
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.stderr
    outputs = {p.name: p for p in dicom_files(tmp_path / "all")}
    assert len(outputs) == len(list(src.iterdir())) - 1  # the two CT brains share a UID
    for path in sorted(src.iterdir()):  # each output against its own input's values
        ids = input_identifiers([path])
        ids.names -= {"ANON", "ANONYMIZED"}
        ds = pydicom.dcmread(path)
        out = outputs[expected_uid(str(ds.SOPInstanceUID)) + ".dcm"]
        # pixel data are copied byte for byte: 3-letter words occur in JPEG bytes by chance
        header = out.read_bytes().replace(ds.PixelData, b"")
        stderr = allowed.stderr.replace(str(tmp_path), "TMP")  # pytest's folder name
        blobs = [(path.name, header), ("stderr", stderr.encode())]
        assert leaks(blobs, ids) == [], path.name


def _deidentify_each(
    files: list[Path], tmp_path: Path, options: tuple[str, ...]
) -> list[tuple[Path, Path]]:
    settings = DeidSettings(DeidKey(KEY), options, allow_burned_in=True)
    pairs = []
    for k, src in enumerate(files):
        with open(src, "rb") as fh:
            if fh.read(132)[128:132] != b"DICM":
                continue
        fo = deidentify_file(
            src, tmp_path / str(k), settings, patient="P", terms=Terms(), label="t"
        )
        if fo.written is not None:
            pairs.append((src, fo.written))
    return pairs


@pytest.mark.parametrize(
    "options", [("modified-dates",), ("clean-descriptors", "clean-structured-content",
                "patient-characteristics", "device-identity", "safe-private")]
)  # fmt: skip
def test_outputs_stay_valid_dicom(
    deid_data: Path, shared_data: Path, tmp_path: Path, options: tuple[str, ...]
) -> None:
    files = sorted(p for p in deid_data.rglob("*.dcm") if p.name not in BIG)
    files += sorted((shared_data / "pydicom-data").glob("*.dcm"))
    files = [
        p for p in files if "too_short" not in p.name and p.name != "bad_sequence.dcm"
    ]
    qa = sorted(p for p in (shared_data / "dcm_qa" / "In").rglob("*") if p.is_file())
    files += qa[::25]  # mosaics, structured reports: one file in 25
    pairs = _deidentify_each(files, tmp_path, options)
    assert len(pairs) > 60
    new_errors = {}
    for src, out in pairs:
        extra = dciodvfy_errors(out) - dciodvfy_errors(src)
        if extra:
            new_errors[src.name] = sorted(extra)
    assert new_errors == {}


def test_large_multiframe_is_streamed(deid_data: Path, tmp_path: Path) -> None:
    """The 43 MB cine: pixel data copied in chunks, identical, header de-identified."""
    import tracemalloc

    src = deid_data / "ultrasounds" / "ultrasound-multiframe.dcm"
    settings = DeidSettings(DeidKey(KEY), ("modified-dates",), allow_burned_in=True)
    tracemalloc.start()
    fo = deidentify_file(src, tmp_path, settings, patient="P", terms=Terms(), label="t")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fo.written is not None and peak < 8 << 20  # never the 43 MB file in memory
    a, b = pydicom.dcmread(src), pydicom.dcmread(fo.written)
    assert a.PixelData == b.PixelData and b.PatientName != a.PatientName
    assert re.fullmatch(r"ANON[A-Z2-7]{12}", str(b.PatientID))


def _header_bytes(path: Path) -> bytes:
    """An output's bytes without its pixel values (binary pixels hold any 3-letter word
    by chance): NIfTI header and extensions, NumPy header, PNG chunks but IDAT, DICOM
    without PixelData; text files whole."""
    data = path.read_bytes()
    name = path.name
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    if name.endswith((".nii", ".nii.gz")):
        return data[: int(struct.unpack_from("<f", data, 108)[0])]
    if name.endswith(".npy"):
        return data[: 10 + int.from_bytes(data[8:10], "little")]
    if name.endswith(".png"):
        kept, pos = [data[:8]], 8
        while pos < len(data):
            length = int.from_bytes(data[pos : pos + 4], "big")
            if data[pos + 4 : pos + 8] != b"IDAT":
                kept.append(data[pos : pos + 12 + length])
            pos += 12 + length
        return b"".join(kept)
    if name.endswith(".dcm"):
        return data.replace(pydicom.dcmread(path).PixelData, b"")
    return data


@pytest.mark.parametrize(
    ("fmt", "allow"),
    [("png", True), ("nifti-gz", True), ("dicom", True), ("npy", False)],
)
def test_transform_deidentify_of_deid_data_leaks_nothing(
    deid_data: Path, key_file: Path, tmp_path: Path, fmt: str, allow: bool
) -> None:
    """DX, US (grey and colour), secondary captures and CT through ``transform
    --deidentify`` in each format: no name part, UID, date or input file name in any
    output name, header, sidecar, manifest, run log or message."""
    src = _deid_data_inputs(deid_data, tmp_path)
    out = tmp_path / "out"
    args = ["transform", str(src), str(out), "--deidentify", "--key-file",
            str(key_file), "--format", fmt, "--jobs", "1", "--json"]  # fmt: skip
    result = invoke(args + (["--allow-burned-in"] if allow else []))
    # derived DICOM is written greyscale: colour images fail with CLX-E176 (exit 1)
    assert result.exit_code == (1 if fmt == "dicom" else 0), result.stderr
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    status = Counter(r["status"] for r in records)
    if allow:
        assert status["ok"] >= 2 and status["withheld"] == 0
    else:  # US that say YES, the US and SCs that do not say NO: only the cat is let out
        assert status["ok"] == 1 and status["withheld"] >= 4
        assert {r["error"]["code"] for r in records if r["status"] == "withheld"} == {
            "CLX-E197"
        }
    ids = input_identifiers(sorted(src.iterdir()))
    ids.names -= {"ANON", "ANONYMIZED"}
    ids.canaries = {p.stem for p in src.iterdir()} | {p.parent.name for p in
                    deid_data.rglob("*.dcm")}  # fmt: skip
    blobs = [  # the messages name OUT_DIR, in pytest's folder named after the test
        (name, text.replace(str(tmp_path), "TMP").encode())
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr))
    ]
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        blobs.append((rel, rel.encode()))
        if p.is_file():
            blobs.append((rel, _header_bytes(p)))
    assert leaks(blobs, ids) == []
