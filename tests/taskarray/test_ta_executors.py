"""Executors, manifest, resume and failure handling, with a fake task (no DICOM, fast)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from clisonix_cli.dicom.model import Skipped
from clisonix_cli.errors import OutputConflictError
from clisonix_cli.taskarray.collect import Event
from clisonix_cli.taskarray.config import RunConfig, Shard
from clisonix_cli.taskarray.execute import RunResult, TaskFn, run
from clisonix_cli.taskarray.manifest import read_manifest, read_records


def _stacks(
    fakes: ModuleType, n_studies: int = 3, per_study: int = 2, first: int = 10
) -> list[Any]:
    return [
        fakes.make_stack(f"2.25.{s}", f"2.25.{s}.{k}", number=k + 1, desc=f"S{k}")
        for s in range(first, first + n_studies)
        for k in range(per_study)
    ]


def _run(
    fakes: ModuleType,
    tmp_path: Path,
    out: str = "out",
    fn: TaskFn | None = None,
    **kw: Any,
) -> tuple[RunResult, list[Event]]:
    events: list[Event] = []
    cfg = RunConfig(in_dir=tmp_path / "in", out_dir=tmp_path / out, **kw)
    return run(cfg, on_event=events.append, fn=fn or fakes.fake_task), events


def test_same_bytes_for_any_jobs_and_backend(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes)
    fake_env["skipped"] = [Skipped("junk/x.dcm", "CLX-E101", "truncated")]
    digests = []
    for i, (backend, jobs) in enumerate([("loky", 1), ("loky", 2), ("threads", 2)]):
        result, _ = _run(fakes, tmp_path, f"out{i}", backend=backend, jobs=jobs)
        assert result.exit_code == 1  # the truncated file
        assert [r["status"] for r in result.records] == ["ok"] * 6
        digests.append(fakes.tree_digest(tmp_path / f"out{i}"))
    assert "manifest.jsonl" in digests[0]
    assert digests[0] == digests[1] == digests[2]
    records = read_records(tmp_path / "out0" / "manifest.jsonl")
    assert len(records) == 7 and records[-1]["status"] == "skipped"
    assert not any("seconds" in r or "time" in r for r in records)


def test_shards_merge_to_the_whole_run(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes, n_studies=6, per_study=1)
    whole, _ = _run(fakes, tmp_path, "whole", jobs=2)
    for i in range(3):
        part, _ = _run(fakes, tmp_path, "sharded", jobs=2, shard=Shard(i, 3))
        assert part.manifest == f"manifest.shard-{i}-of-3.jsonl"
    merged = read_manifest(tmp_path / "sharded")
    assert list(merged.values()) == whole.records
    a = fakes.tree_digest(tmp_path / "whole")
    b = fakes.tree_digest(tmp_path / "sharded")
    outputs = {
        k: v for k, v in a.items() if not k.startswith(("manifest", ".clisonix"))
    }
    assert outputs and all(b[k] == v for k, v in outputs.items())


def test_fail_fast_cancels_the_rest(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    stacks = _stacks(fakes, n_studies=1, per_study=4)
    stacks[1] = fakes.make_stack("2.25.10", "2.25.10.1", desc="fail")
    fake_env["stacks"] = stacks
    result, _ = _run(fakes, tmp_path, jobs=1, fail_fast=True)
    codes = [(r["error"] or {}).get("code") for r in result.records]
    assert codes == [None, "CLX-E100", "CLX-E152", "CLX-E152"]
    assert result.exit_code == 1 and result.counts()["cancelled"] == 2


def test_loky_worker_death_quarantine(
    fakes: ModuleType,
    fake_env: dict[str, Any],
    crash_on: Callable[..., TaskFn],
    tmp_path: Path,
) -> None:
    bad = fakes.make_stack("2.25.0", "2.25.0.0", desc="bad")
    innocent = fakes.make_stack("2.25.0", "2.25.0.1", desc="sleep:1.5")
    rest = _stacks(fakes, n_studies=2, per_study=1)
    fake_env["stacks"] = [bad, innocent, *rest]
    t0 = time.monotonic()
    result, events = _run(
        fakes,
        tmp_path,
        fn=crash_on("2.25.0.0", inner=fakes.fake_task),
        jobs=2,
        backend="loky",
    )
    by_series = {r["series_uid"]: r for r in result.records}
    died = by_series["2.25.0.0"]
    assert died["status"] == "failed" and died["error"]["code"] == "CLX-E150"
    assert "2.25.0/2.25.0.0/IM0000.dcm" in died["error"]["message"]  # names its files
    assert by_series["2.25.0.1"]["status"] == "ok"  # was running next to it
    assert all(by_series[s.series_uid]["status"] == "ok" for s in rest)
    notes = [e.message for e in events if e.kind == "note"]
    assert any("re-running 2 task(s)" in n for n in notes), notes
    assert result.exit_code == 1
    assert time.monotonic() - t0 < 60


def test_loky_timeout_kills_only_the_slow_task(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    slow = fakes.make_stack("2.25.0", "2.25.0.0", desc="sleep:60")
    fake_env["stacks"] = [slow, *_stacks(fakes, n_studies=2, per_study=2)]
    t0 = time.monotonic()
    result, _ = _run(fakes, tmp_path, jobs=2, task_timeout=5.0)
    assert time.monotonic() - t0 < 30
    codes = {r["series_uid"]: (r["error"] or {}).get("code") for r in result.records}
    assert codes.pop("2.25.0.0") == "CLX-E151"
    assert set(codes.values()) == {None}


@pytest.mark.parametrize(("retries", "status"), [(0, "failed"), (1, "ok")])
def test_retries_after_transient_failure(
    fakes: ModuleType,
    fake_env: dict[str, Any],
    tmp_path: Path,
    retries: int,
    status: str,
) -> None:
    fake_env["stacks"] = [fakes.make_stack("2.25.0", "2.25.0.0", desc="flaky:x")]
    result, _ = _run(fakes, tmp_path, jobs=1, backend="threads", retries=retries)
    assert result.records[0]["status"] == status


def test_resume_redoes_only_damaged_or_missing(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes)
    first, _ = _run(fakes, tmp_path, jobs=2)
    before = fakes.tree_digest(tmp_path / "out")
    outs = [r["outputs"][0]["path"] for r in first.records]
    (tmp_path / "out" / outs[0]).write_text("tampered")
    (tmp_path / "out" / outs[3]).unlink()
    (tmp_path / "out" / Path(outs[1]).parent / ".stale.txt.999.clxtmp").write_text("x")
    again, events = _run(fakes, tmp_path, jobs=2, resume=True)
    assert again.counts()["resumed"] == 4
    assert [e.total for e in events if e.kind == "start"] == [2]
    assert again.removed_temps and fakes.no_temp_files(tmp_path / "out")
    assert fakes.tree_digest(tmp_path / "out") == before
    ids = [r["task"] for r in read_records(tmp_path / "out" / "manifest.jsonl")]
    assert len(ids) == len(set(ids)) == 6


def test_same_pipeline_reruns_everything_without_resume(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes, n_studies=1)
    _run(fakes, tmp_path, jobs=1)
    before = fakes.tree_digest(tmp_path / "out")
    again, events = _run(fakes, tmp_path, jobs=1)
    assert again.counts()["resumed"] == 0
    assert [e.total for e in events if e.kind == "start"] == [2]
    assert fakes.tree_digest(tmp_path / "out") == before


def test_other_pipeline_conflicts_unless_overwrite(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes, n_studies=1)
    _run(fakes, tmp_path, jobs=1)
    fake_env["pipeline"] = fakes.FakePipeline("other")
    with pytest.raises(OutputConflictError):
        _run(fakes, tmp_path, jobs=1)
    result, _ = _run(fakes, tmp_path, jobs=1, overwrite=True)
    shas = {r["pipeline_sha256"] for r in read_manifest(tmp_path / "out").values()}
    assert shas == {fakes.FakePipeline("other").sha256}
    assert result.exit_code == 0


def test_informational_skips_do_not_fail_the_run(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes, n_studies=1, per_study=1)
    fake_env["skipped"] = [Skipped("sr/report.dcm", "CLX-E102", "no pixel data")]
    result, _ = _run(fakes, tmp_path, jobs=1)
    assert result.exit_code == 0 and result.counts()["skipped_files"] == 1


def test_dry_run_writes_nothing(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    fake_env["stacks"] = _stacks(fakes)
    result, _ = _run(fakes, tmp_path, dry_run=True, shard=Shard(1, 2))
    assert not (tmp_path / "out").exists()
    doc = result.summary()
    assert doc["n_tasks_total"] == 6 and doc["shard"] == "1/2"
    assert all(t["shard"] == 1 for t in doc["tasks"])
    assert doc["est_bytes"] == sum(t["est_bytes"] for t in doc["tasks"])


@pytest.mark.parametrize(
    ("code", "exit_code", "bad"),
    [
        ("CLX-E102", 0, 0),  # a structured report: not an image by design
        ("CLX-E122", 0, 0),  # a duplicate instance: its kept copy was converted
        ("CLX-E113", 1, 1),  # a colour image: not converted
        ("CLX-E101", 1, 1),  # a truncated file: data lost
    ],
)
def test_which_set_aside_files_fail_the_run(
    fakes: ModuleType,
    fake_env: dict[str, Any],
    tmp_path: Path,
    code: str,
    exit_code: int,
    bad: int,
) -> None:
    fake_env["stacks"] = _stacks(fakes, n_studies=1, per_study=1)
    fake_env["skipped"] = [Skipped("a/x.dcm", code, "set aside")]
    result, _ = _run(fakes, tmp_path, jobs=1, backend="threads")
    assert (result.exit_code, result.counts()["bad_files"]) == (exit_code, bad)


def test_run_log_names_shard_and_manifest_part(
    fakes: ModuleType, fake_env: dict[str, Any], tmp_path: Path
) -> None:
    import json

    fake_env["stacks"] = _stacks(fakes)
    _run(fakes, tmp_path, jobs=1, backend="threads", shard=Shard(1, 3))
    _run(fakes, tmp_path, "whole", jobs=1, backend="threads")
    for out, shard, part in (
        ("out", "1/3", "manifest.shard-1-of-3.jsonl"),
        ("whole", None, "manifest.jsonl"),
    ):
        logs = sorted((tmp_path / out / ".clisonix").glob("run-log*.jsonl"))
        start = json.loads(logs[0].read_text().splitlines()[0])
        assert start["event"] == "start"
        assert (start["shard"], start["manifest"]) == (shard, part)
