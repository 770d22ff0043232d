"""`clisonix qc` and `clisonix transform --qc` end to end: files, exit codes, determinism,
the same metrics from both, privacy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.encaps import encapsulate
from typer.testing import CliRunner

from clisonix_cli.cli.app import app

from .conftest import CT, run_qc, synth

FILES = ("qc.json", "qc.csv", "report.html")


def _qc(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["qc", *args])


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _series(doc: dict) -> list[dict]:  # type: ignore[type-arg]
    return [{k: v for k, v in s.items() if k != "manifest"} for s in doc["series"]]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CT and MR series (axial, oblique, coronal), explicit and RLE."""
    return synth(
        tmp_path_factory.mktemp("mixed") / "in", seed=3, patients=2, series=3,
        slices=10, rows=64, cols=64, modality="mixed", syntax="mixed",
    )  # fmt: skip


def test_exit_codes_and_files(
    changed_batch: Path, control_batch: Path, baseline_json: Path, tmp_path: Path
) -> None:
    ok = _qc(str(control_batch), "--out", str(tmp_path / "a"), "--baseline",
             str(baseline_json), "--jobs", "1")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert all((tmp_path / "a" / f).is_file() for f in FILES)
    assert "2 series: 2 pass, 0 warn, 0 fail" in ok.stderr
    bad = _qc(str(changed_batch), "--out", str(tmp_path / "b"), "--baseline",
              str(baseline_json), "--json")  # fmt: skip
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert doc == json.loads((tmp_path / "b" / "qc.json").read_text())
    assert "drift: scanner group" in bad.stderr
    # a drifted group fails whatever --fail-on says; warn/fail levels on their own
    drift_only = _qc(str(changed_batch), "--out", str(tmp_path / "c"), "--baseline",
                     str(baseline_json), "--fail-on", "drift")  # fmt: skip
    assert drift_only.exit_code == 1
    no_base = _qc(
        str(changed_batch), "--out", str(tmp_path / "d"), "--fail-on", "drift"
    )
    assert no_base.exit_code == 0  # fails QC-CT-AIR, but only drift was asked for
    assert _qc(str(changed_batch), "--out", str(tmp_path / "e")).exit_code == 1


def test_usage_errors_exit_2_before_any_work(
    control_batch: Path, baseline_json: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}')
    for args, code in [
        (["--baseline", str(junk)], "CLX-E045"),
        (["--baseline", str(tmp_path / "missing.json")], "CLX-E045"),
        (["--fail-on", "never"], "CLX-E001"),
        (["--out", str(control_batch / "qc")], "CLX-E001"),
    ]:
        res = _qc(str(control_batch), "--out", str(tmp_path / "o"), *args)
        assert res.exit_code == 2 and code in res.stderr, (args, res.output)
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    res = _qc(str(control_batch), "--out", str(tmp_path / "o"), "--key-file", str(key))
    assert res.exit_code == 2 and "CLX-E046" in res.stderr
    key.chmod(0o600)
    res = _qc(str(control_batch), "--out", str(tmp_path / "o"), "--key-file", str(key),
              "--baseline", str(baseline_json))  # fmt: skip
    assert (
        res.exit_code == 2 and "CLX-E047" in res.stderr
    )  # baseline made without a key
    assert not (tmp_path / "o" / "qc.json").exists()


def test_out_that_cannot_be_created_exits_3(
    control_batch: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = _qc(str(control_batch), "--out", str(blocker / "qc"))
    assert res.exit_code == 3 and "CLX-E030" in res.stderr, res.output


def test_same_bytes_for_any_jobs_and_backend(mixed: Path, tmp_path: Path) -> None:
    before = _tree(mixed)
    run_qc(mixed, tmp_path / "t1", jobs=1, backend="threads")
    run_qc(mixed, tmp_path / "l2", jobs=2, backend="loky")
    for f in FILES:
        assert (tmp_path / "t1" / f).read_bytes() == (
            tmp_path / "l2" / f
        ).read_bytes(), f
    assert _tree(mixed) == before  # IN_DIR untouched
    doc = json.loads((tmp_path / "t1" / "qc.json").read_text())
    assert {s["kind"] for s in doc["series"]} == {"ct", "mr"}
    assert all(s["metrics"] and s["status"] == "pass" for s in doc["series"])
    assert [g["kind"] for g in doc["groups"]] == ["ct", "mr"]


@pytest.mark.parametrize(
    "ops",
    [
        [],
        ["--op", "rescale", "--op", "window:center=40,width=400"],
        ["--op", "normalize"],
    ],
    ids=["stream", "slab-pipeline", "whole-volume-pipeline"],
)
def test_transform_qc_measures_the_same_pixels_in_the_same_read(
    mixed: Path, tmp_path: Path, ops: list[str]
) -> None:
    alone = run_qc(mixed, tmp_path / "qc").doc
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["transform", str(mixed), str(out), "--qc", "--jobs", "2", "--json", *ops]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "qc.json").read_text())
    assert _series(doc) == _series(alone)
    assert (out / "report.html").read_bytes() == (
        tmp_path / "qc" / "report.html"
    ).read_bytes()
    assert {s["manifest"] for s in doc["series"]} == {"manifest.jsonl"}
    records = [
        json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()
    ]
    assert all(r["qc"]["metrics"] for r in records)
    assert json.loads(res.stdout)["qc"]["summary"]["pass"] == len(records)


def test_transform_qc_one_compressed_series_decoded_in_parallel(tmp_path: Path) -> None:
    """One task runs in the driver and decodes its RLE slices on worker processes: QC
    still sees every sampled slice, the same numbers as ``clisonix qc``."""
    src = synth(tmp_path / "in", seed=11, patients=1, **{**CT, "syntax": "rle"})
    alone = run_qc(src, tmp_path / "qc").doc
    for i, ops in enumerate([[], ["--op", "rescale"], ["--op", "normalize"]]):
        out = tmp_path / f"out{i}"
        res = CliRunner().invoke(
            app, ["transform", str(src), str(out), "--qc", "--jobs", "2", *ops]
        )
        assert res.exit_code == 0, res.output
        doc = json.loads((out / "qc.json").read_text())
        assert _series(doc) == _series(alone), ops


def test_transform_qc_resume_measures_tasks_recorded_without_qc(
    mixed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["transform", str(mixed), str(out), "--jobs", "1", "--json"]
    assert CliRunner().invoke(app, args).exit_code == 0
    first = CliRunner().invoke(app, [*args, "--qc", "--resume"])
    assert json.loads(first.stdout)["counts"]["resumed"] == 0  # no QC part yet: re-run
    second = CliRunner().invoke(app, [*args, "--qc", "--resume"])
    assert json.loads(second.stdout)["counts"]["resumed"] == 6
    doc = json.loads((out / "qc.json").read_text())
    assert len(doc["series"]) == 6 and all(s["metrics"] for s in doc["series"])
    bad = CliRunner().invoke(app, [*args, "--qc", "--shard", "0/2"])
    assert bad.exit_code == 2 and "--qc with --shard" in bad.stderr


def test_privacy_station_keyed_descriptions_left_out(
    control_batch: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    shutil.copytree(control_batch, src)
    for path in sorted(src.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.StationName = "CTROOM7"
        ds.save_as(path)
    key = tmp_path / "key"
    key.write_bytes(os.urandom(40))
    key.chmod(0o600)
    keyed = _qc(str(src), "--out", str(tmp_path / "k"), "--key-file", str(key),
                "--deidentify")  # fmt: skip
    plain = _qc(str(src), "--out", str(tmp_path / "p"))
    assert keyed.exit_code == plain.exit_code == 0, keyed.output
    k = json.loads((tmp_path / "k" / "qc.json").read_text())
    p = json.loads((tmp_path / "p" / "qc.json").read_text())
    stations = {s["header"]["Station"] for s in k["series"]}
    assert len(stations) == 1 and len(stations.pop()) == 12
    assert all(s["header"]["Station"] is None for s in p["series"])
    assert all("description" not in s for s in k["series"])
    assert all(s["description"] == "CT AXIAL 5mm explicit" for s in p["series"])
    identifiers = [b"CTROOM7", b"SYNTH^P0", b"SYNTH-P0", b"SYNTH HOSPITAL"]
    out = tmp_path / "t"  # transform --qc: the same files, and the manifest's qc parts
    res = CliRunner().invoke(app, ["transform", str(src), str(out), "--qc",
                                   "--qc-deidentify", "--qc-key-file", str(key)])  # fmt: skip
    assert res.exit_code == 0, res.output
    records = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert all("description" not in r["qc"] for r in records)
    assert [b"CT AXIAL" in json.dumps(r["qc"]).encode() for r in records] == [False] * 2
    for f in FILES:
        assert not any(i in (out / f).read_bytes() for i in [*identifiers, b"CT AXIAL"])
    for f in FILES:
        blob = (tmp_path / "k" / f).read_bytes()
        assert not any(i in blob for i in identifiers + [b"CT AXIAL"]), f
        assert not any(i in (tmp_path / "p" / f).read_bytes() for i in identifiers), f


def test_unreadable_series_fails_qc_and_the_batch_goes_on(
    control_batch: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    synth(src, seed=5, patients=2, **{**CT, "syntax": "rle"})
    victim = sorted(src.rglob("*.dcm"))[6]  # the central slice of the first series
    ds = pydicom.dcmread(victim)
    ds.PixelData = encapsulate([b"\x01\x00\x00\x00@\x00\x00\x00" + bytes(8)])
    ds.save_as(victim)  # an RLE frame that decodes to too few bytes
    res = _qc(str(src), "--out", str(tmp_path / "o"), "--json")
    doc = json.loads(res.stdout)
    assert res.exit_code == 1
    assert sorted(s["status"] for s in doc["series"]) == ["fail", "pass"]
    bad = next(s for s in doc["series"] if s["status"] == "fail")
    assert [r["code"] for r in bad["reasons"]] == ["QC-UNREADABLE"]
    assert bad["error"]["code"].startswith("CLX-E1") and not bad["metrics"]
    assert "fail: " in res.stderr and "QC-UNREADABLE" in res.stderr


def test_missing_slice_warns_and_both_runs_are_measured(
    control_batch: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    shutil.copytree(control_batch, src)
    victim = sorted(src.rglob("*.dcm"))[6]
    victim.write_bytes(victim.read_bytes()[:2000])  # the scan sets it aside: a gap
    doc = json.loads(_qc(str(src), "--out", str(tmp_path / "o"), "--json").stdout)
    # --gaps split (the default): the series becomes two runs, each measured and warned
    assert sorted(s["status"] for s in doc["series"]) == ["pass", "warn", "warn"]
    for run in (s for s in doc["series"] if s["status"] == "warn"):
        assert run["metrics"]["air_mean_hu"] is not None
        assert [r["code"] for r in run["reasons"]] == ["QC-GEOMETRY"]
        assert run["geometry"]["gap_split"] is True
    assert doc["summary"]["skipped_files"] == {"CLX-E101": 1}


def test_projection_xray_and_colour_from_real_data(
    shared_data: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("RG3_J2KR.dcm", "US1_UNCR.dcm"):  # a CR, a colour ultrasound
        shutil.copy(shared_data / "pydicom-data" / name, src)
    res = _qc(str(src), "--out", str(tmp_path / "o"), "--json")
    doc = json.loads(res.stdout)
    by_kind = {s["kind"]: s for s in doc["series"]}
    cr, us = by_kind["xr"], by_kind["other"]
    assert cr["status"] == "pass" and us["status"] == "pass", doc["series"]
    m = cr["metrics"]
    assert 0.0 <= m["border_frac"] < 0.9 and 0.0 < m["range_used_frac"] <= 1.0
    assert 0 < us["metrics"]["mean"] < 255 and us["metrics"]["sd"] > 0  # luma of RGB
    html = (tmp_path / "o" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2


def test_mr_from_real_data(shared_data: Path, tmp_path: Path) -> None:
    series = shared_data / "dcm_qa" / "In"
    first = sorted(p for p in series.rglob("*") if p.is_dir() and any(
        f.is_file() for f in p.iterdir()))[0]  # fmt: skip
    res = _qc(str(first), "--out", str(tmp_path / "o"), "--json")
    doc = json.loads(res.stdout)
    mr = [s for s in doc["series"] if s["kind"] == "mr" and not s["error"]]
    assert mr, doc["series"]
    assert all(s["metrics"]["snr"] > 1 and 0 < s["metrics"]["efc"] < 1 for s in mr)


def test_synth_phantom_metrics_end_to_end(tmp_path: Path) -> None:
    """`clisonix synth` CT and MR with known noise SDs, measured by `clisonix qc`: air
    -1000 HU (clipped at the 12-bit floor), soft tissue 40 HU, GNL within 10 % of the noise
    SD; MR noise SD within 5 %, and SNR within 5 % of the phantom's signal (its foreground
    mean at a low noise level) over the noise SD."""
    from scipy.stats import norm

    got: dict[tuple[str, float], dict] = {}  # type: ignore[type-arg]
    for sd in (5.0, 25.0):
        src = tmp_path / f"in{sd:g}"
        for seed, modality in ((21, "CT"), (22, "MR")):  # distinct UIDs
            res = CliRunner().invoke(app, [
                "synth", str(src / modality), "--modality", modality, "--patients", "1",
                "--studies", "1", "--series", "1", "--slices", "12", "--rows", "128",
                "--cols", "128", "--seed", str(seed), "--noise-sd", str(sd),
            ])  # fmt: skip
            assert res.exit_code == 0, res.output
        res = _qc(str(src), "--out", str(tmp_path / f"o{sd:g}"), "--json")
        assert res.exit_code == 0, res.output
        for s in json.loads(res.stdout)["series"]:
            got[s["kind"], sd] = s["metrics"]
    for sd in (5.0, 25.0):
        ct, mr = got["ct", sd], got["mr", sd]
        a = -24.0 / sd  # N(-1000, sd) clipped at -1024 HU (stored 0)
        air = -1024.0 * norm.cdf(a) - 1000.0 * norm.sf(a) + sd * norm.pdf(a)
        assert abs(ct["air_mean_hu"] - air) < 1.0, (sd, ct)
        assert abs(ct["tissue_mean_hu"] - 40.0) < 3.0, (sd, ct)
        assert abs(ct["gnl_hu"] - sd) <= 0.10 * sd, (sd, ct)  # the bound
        assert abs(mr["noise_sd"] - sd) <= 0.05 * sd, (sd, mr)
    signal = got["mr", 5.0]["fg_mean"]
    assert abs(got["mr", 25.0]["snr"] - signal / 25.0) <= 0.05 * signal / 25.0


def test_no_identifier_of_real_data_in_any_output(
    shared_data: Path, tmp_path: Path
) -> None:
    """`clisonix qc` over pydicom's test files (real headers: patient names and IDs, birth
    dates, institutions, stations, physicians): none of those values is in qc.json, qc.csv
    or report.html (vendor names, which group scanners, are allowed)."""
    src = shared_data / "pydicom-data"
    keys = ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName",
            "InstitutionAddress", "StationName", "ReferringPhysicianName",
            "OperatorsName", "AccessionNumber", "OtherPatientIDs")  # fmt: skip
    found: set[str] = set()
    vendors: set[str] = set()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM: the scan skips it too
            continue
        found |= {str(ds.get(k) or "").strip() for k in keys}
        vendors |= {str(ds.get(k) or "").strip() for k in ("Manufacturer",
                                                             "ManufacturerModelName")}  # fmt: skip
    # short all-digit IDs ("0010") turn up inside any number: too short to search for
    identifiers = sorted(
        v for v in found - vendors if len(v) >= 6 or (len(v) >= 4 and not v.isdigit())
    )
    assert len(identifiers) > 20
    res = _qc(str(src), "--out", str(tmp_path / "o"), "--json")
    assert res.exit_code in (0, 1), res.output
    assert len(json.loads(res.stdout)["series"]) > 20
    for f in FILES:
        blob = (tmp_path / "o" / f).read_bytes()
        assert [v for v in identifiers if v.encode() in blob] == [], f
