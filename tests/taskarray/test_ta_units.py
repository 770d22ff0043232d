"""Units of the task array: shards, plan, output names, manifest, resume rules, verify."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType

import pytest
from blake3 import blake3

import clisonix_cli
from clisonix_cli.dicom.model import Skipped
from clisonix_cli.errors import OutputConflictError, ShardSpecError, UsageError
from clisonix_cli.fsio import is_within
from clisonix_cli.taskarray.config import RunConfig, Shard
from clisonix_cli.taskarray.manifest import (
    ManifestWriter,
    dumps_record,
    manifest_name,
    manifest_parts,
    merge_records,
    read_records,
    skipped_record,
    write_compacted,
)
from clisonix_cli.taskarray.plan import make_plan, output_stem, sanitize, task_id_for
from clisonix_cli.taskarray.resume import (
    check_output_dir,
    is_done,
    remove_stale_temps,
    run_identity,
    write_identity,
)
from clisonix_cli.taskarray.shard import shard_of
from clisonix_cli.taskarray.verify import verify

# --- shards ------------------------------------------------------------------------------


def test_shard_is_sha256_of_study_uid() -> None:
    uid = "1.2.826.0.1.3680043.8.498.1"
    expected = int(hashlib.sha256(uid.encode()).hexdigest()[:16], 16) % 7
    assert shard_of(uid, 7) == expected
    assert shard_of(uid, 1) == 0


def test_adding_studies_moves_no_existing_study() -> None:
    old = [f"2.25.{i}" for i in range(400)]
    before = {u: shard_of(u, 5) for u in old}
    after = {u: shard_of(u, 5) for u in old + [f"2.25.{i}" for i in range(400, 440)]}
    assert all(after[u] == before[u] for u in old)
    counts = [list(before.values()).count(k) for k in range(5)]
    assert min(counts) > 50  # roughly balanced (80 expected each)


@pytest.mark.parametrize("spec", ["3", "a/b", "3/3", "-1/3", "0/0", "1/2/3", ""])
def test_bad_shard_specs(spec: str) -> None:
    with pytest.raises(ShardSpecError) as info:
        Shard.parse(spec)
    assert info.value.exit_code == 2


def test_shard_parse() -> None:
    assert Shard.parse(" 2/5 ") == Shard(2, 5)
    assert Shard(2, 5).label == "2/5"
    assert manifest_name(Shard(2, 5)) == "manifest.shard-2-of-5.jsonl"
    assert manifest_name(None) == "manifest.jsonl"


# --- config -------------------------------------------------------------------------------


def test_config_validation(tmp_path: Path) -> None:
    base = {"in_dir": tmp_path / "in", "out_dir": tmp_path / "out"}
    (tmp_path / "in").mkdir()
    with pytest.raises(UsageError, match="--resume and --overwrite"):
        RunConfig(**base, resume=True, overwrite=True)
    with pytest.raises(UsageError, match="--format"):
        RunConfig(**base, format="tiff")
    with pytest.raises(UsageError, match="--backend"):
        RunConfig(**base, backend="mpi")
    with pytest.raises(UsageError, match="inside IN_DIR"):
        RunConfig(in_dir=tmp_path / "in", out_dir=tmp_path / "in" / "out")
    with pytest.raises(UsageError, match="need --backend dask"):
        RunConfig(**base, backend="threads", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(UsageError, match="--task-timeout"):
        RunConfig(**base, task_timeout=0)
    cfg = RunConfig.from_cli(**base, scheduler="tcp://h:1", shard="1/4", fmt="NPY")
    assert (cfg.backend, cfg.shard, cfg.format) == ("dask", Shard(1, 4), "npy")


def test_package_reads_no_test_only_variable() -> None:
    """Tests inject crashes through Python (``run(fn=...)``), never through the environment."""
    package = Path(clisonix_cli.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 20
    readers = [
        p.relative_to(package).as_posix()
        for p in sources
        if "CLISONIX_TEST_" in p.read_text(encoding="utf-8")
    ]
    assert readers == []


# --- plan ---------------------------------------------------------------------------------


def test_plan_order_ids_and_shards(fakes: ModuleType) -> None:
    stacks = [
        fakes.make_stack("2.25.9", "2.25.91", number=2),
        fakes.make_stack("2.25.1", "2.25.12", number=1),
        fakes.make_stack("2.25.1", "2.25.11", number=3),
        fakes.make_stack("2.25.1", "2.25.11", number=3, key="1-echo2"),
    ]
    plan = make_plan(fakes.make_scan(stacks))
    keys = [(t.study_uid, t.series_uid, t.stack.stack_key) for t in plan.tasks]
    assert keys == sorted(keys)
    assert len({t.task_id for t in plan.tasks}) == 4
    # ids depend only on the inputs, not on the order of the scan
    again = make_plan(fakes.make_scan(list(reversed(stacks))))
    assert [t.task_id for t in again.tasks] == [t.task_id for t in plan.tasks]
    parts = [
        make_plan(fakes.make_scan(stacks), shard=Shard(i, 3)).tasks for i in range(3)
    ]
    assert sorted(t.task_id for p in parts for t in p) == sorted(
        t.task_id for t in plan.tasks
    )
    for i, part in enumerate(parts):  # a study never splits
        assert all(t.shard == i == shard_of(t.study_uid, 3) for t in part)


def test_set_aside_files_reported_by_shard_zero_only(fakes: ModuleType) -> None:
    bad = [Skipped("a/broken.dcm", "CLX-E101", "truncated")]
    scan = fakes.make_scan([fakes.make_stack("2.25.1", "2.25.2")], bad)
    assert make_plan(scan).skipped == tuple(bad)
    parts = [make_plan(scan, shard=Shard(i, 3)).skipped for i in range(3)]
    assert parts == [tuple(bad), (), ()]  # merged, the job array reports it once


def test_task_id_changes_with_files(fakes: ModuleType) -> None:
    a = fakes.make_stack("2.25.1", "2.25.2", n_files=2)
    b = fakes.make_stack("2.25.1", "2.25.2", n_files=3)
    assert task_id_for(a) != task_id_for(b)
    assert task_id_for(a) == task_id_for(
        fakes.make_stack("2.25.1", "2.25.2", n_files=2)
    )


@pytest.mark.parametrize(
    "desc",
    [
        "../../etc/passwd",
        "/abs/olute",
        "DOE^JOHN",
        "a\\b:c*?",
        "..",
        "  ",
        "Ünïcødé T1",
    ],
)
def test_output_names_stay_inside_out_dir(
    fakes: ModuleType, desc: str, tmp_path: Path
) -> None:
    st = fakes.make_stack("2.25.77", "2.25.78", desc=desc, key="../x")
    stem = output_stem(st)
    assert stem.count("/") == 1 and ".." not in stem and "\\" not in stem
    assert "^" not in stem  # DICOM person-name separators never reach a path
    assert is_within(tmp_path / (stem + ".nii.gz"), tmp_path)
    assert stem.split("/")[0] == hashlib.sha256(b"2.25.77").hexdigest()[:8]


def test_sanitize() -> None:
    assert sanitize("T1 MPRAGE (sag)", fallback="x") == "T1-MPRAGE-sag"
    assert sanitize("...", fallback="series") == "series"
    assert len(sanitize("a" * 100, fallback="x")) == 40


# --- manifest -----------------------------------------------------------------------------


def _rec(task: str, status: str = "ok", **kw: object) -> dict[str, object]:
    return {"task": task, "status": status, "study_uid": "1", "series_uid": task, **kw}


def test_manifest_append_merge_and_torn_line(tmp_path: Path) -> None:
    part = tmp_path / "manifest.jsonl"
    with ManifestWriter(part) as w:
        w.append(_rec("b", "failed"))
        w.append(_rec("a"))
        w.append(_rec("b"))
    with open(part, "a") as fh:
        fh.write('{"task": "c", "sta')  # a killed run's torn last line
    assert [r["task"] for r in read_records(part)] == ["b", "a", "b"]
    shard = tmp_path / "manifest.shard-1-of-2.jsonl"
    write_compacted(shard, [_rec("c"), _rec("a", "failed")])
    assert manifest_parts(tmp_path) == [part, shard]
    merged = merge_records(manifest_parts(tmp_path))
    assert list(merged) == ["a", "b", "c"]  # plan order
    assert merged["a"]["status"] == "failed"  # last part wins
    assert merged["b"]["status"] == "ok"  # last line wins
    write_compacted(part, read_records(part))
    assert part.read_text() == "".join(
        dumps_record(r) + "\n" for r in (_rec("a"), _rec("b"))
    )


def test_skipped_record_is_stable() -> None:
    s = Skipped("a/b.dcm", "CLX-E101", "truncated\n file")
    rec = skipped_record(s)
    assert rec == skipped_record(s)
    assert rec["status"] == "skipped" and rec["inputs"] == ["a/b.dcm"]
    assert rec["error"] == {"code": "CLX-E101", "message": "truncated file"}


# --- resume rules -------------------------------------------------------------------------


def test_conflicting_pipeline_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine, other = run_identity("a" * 64, "nifti-gz"), run_identity("b" * 64, "nifti-gz")
    check_output_dir(out, mine, {}, overwrite=False)  # empty folder: fine
    write_identity(out, other, [])
    with pytest.raises(OutputConflictError) as info:
        check_output_dir(out, mine, {}, overwrite=False)
    assert info.value.exit_code == 2 and "--overwrite" in info.value.message
    check_output_dir(out, mine, {}, overwrite=True)
    check_output_dir(out, other, {}, overwrite=False)
    other_format = run_identity("b" * 64, "npy")
    with pytest.raises(OutputConflictError, match="format nifti-gz"):
        check_output_dir(out, other_format, {}, overwrite=False)


def test_foreign_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    ident = run_identity("a" * 64, "nifti-gz")
    with pytest.raises(OutputConflictError, match="holds no clisonix manifest"):
        check_output_dir(tmp_path, ident, {}, overwrite=False)
    check_output_dir(tmp_path, ident, {}, overwrite=True)


def test_is_done_checks_identity_version_and_bytes(tmp_path: Path) -> None:
    from clisonix_cli import __version__

    f = tmp_path / "x" / "o.nii.gz"
    f.parent.mkdir()
    f.write_bytes(b"data")
    ident = run_identity("a" * 64, "nifti-gz")
    out = {
        "path": "x/o.nii.gz",
        "digest": "blake3:" + blake3(b"data").hexdigest(),
        "bytes": 4,
    }
    rec = {
        "task": "t1",
        "status": "ok",
        "format": "nifti-gz",
        "pipeline_sha256": "a" * 64,
        "outputs": [out],
        "env": {"clisonix": __version__},
    }
    assert is_done(rec, ident, tmp_path)
    legacy = {"path": "x/o.nii.gz", "sha256": hashlib.sha256(b"data").hexdigest(),
              "bytes": 4}  # fmt: skip
    assert is_done({**rec, "outputs": [legacy]}, ident, tmp_path)  # an older manifest
    unknown = {**out, "digest": "md5:" + hashlib.md5(b"data").hexdigest()}
    assert not is_done({**rec, "outputs": [unknown]}, ident, tmp_path)
    assert not is_done({**rec, "status": "failed"}, ident, tmp_path)
    assert not is_done(rec, run_identity("b" * 64, "nifti-gz"), tmp_path)
    assert not is_done({**rec, "env": {"clisonix": "0.0.0"}}, ident, tmp_path)
    assert not is_done({**rec, "outputs": []}, ident, tmp_path)
    f.write_bytes(b"dat4")  # same size, other bytes
    assert not is_done(rec, ident, tmp_path)
    f.unlink()
    assert not is_done(rec, ident, tmp_path)


def test_remove_stale_temps_only_in_own_studies(
    fakes: ModuleType, tmp_path: Path
) -> None:
    st = fakes.make_stack("2.25.5", "2.25.6")
    plan = make_plan(fakes.make_scan([st]))
    mine = tmp_path / plan.tasks[0].out_stem.split("/")[0]
    mine.mkdir()
    (mine / ".a.nii.gz.123.clxtmp").write_bytes(b"x")
    (mine / "keep.nii.gz").write_bytes(b"x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / ".b.nii.gz.9.clxtmp").write_bytes(
        b"x"
    )  # another shard's study
    (tmp_path / ".manifest.jsonl.77.clxtmp").write_bytes(b"x")
    removed = remove_stale_temps(tmp_path, plan.tasks, "manifest.jsonl")
    assert removed == [".manifest.jsonl.77.clxtmp", f"{mine.name}/.a.nii.gz.123.clxtmp"]
    assert (mine / "keep.nii.gz").exists()
    assert (tmp_path / "other" / ".b.nii.gz.9.clxtmp").exists()


# --- verify -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["blake3", "sha256-earlier-versions"])
def test_verify_reports_missing_changed_extra(tmp_path: Path, style: str) -> None:
    """Today's records (``digest``: "blake3:<hex>") and those of earlier versions (bare
    sha256 hex under ``sha256``) are both checked with their own algorithm."""
    (tmp_path / "s").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "s" / name).write_bytes(name.encode())

    def out(name: str) -> dict[str, object]:
        if style == "blake3":
            return {"path": f"s/{name}", "bytes": 1,
                    "digest": "blake3:" + blake3(name.encode()).hexdigest()}  # fmt: skip
        return {"path": f"s/{name}", "sha256": hashlib.sha256(name.encode()).hexdigest(),
                "bytes": 1}  # fmt: skip

    write_compacted(
        tmp_path / "manifest.jsonl",
        [_rec("t1", outputs=[out("a"), out("b")]), _rec("t2", outputs=[out("c")])],
    )
    (tmp_path / ".clisonix").mkdir()
    (tmp_path / ".clisonix" / "run-log.jsonl").write_text("{}")
    report = verify(tmp_path)
    assert report.ok and report.checked == 3
    (tmp_path / "s" / "b").write_bytes(b"B")
    (tmp_path / "s" / "c").unlink()
    (tmp_path / "s" / "d").write_bytes(b"d")
    report = verify(tmp_path)
    assert (report.missing, report.changed, report.extra) == (["s/c"], ["s/b"], ["s/d"])
    assert report.exit_code == 1
    assert [p.code for p in report.problems()] == ["CLX-E160"] * 3
    doc = report.document()
    assert json.loads(json.dumps(doc)) == doc


def test_verify_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no manifest"):
        verify(tmp_path)


# --- Dask start-up checks -----------------------------------------------------------------


class _StubClient:
    """Answers what ``_check_workers`` asks a ``distributed.Client``."""

    def __init__(self, versions: dict[str, object]) -> None:
        self.versions = versions

    def wait_for_workers(self, n: int, timeout: float) -> None:
        if not self.versions:
            raise TimeoutError

    def run(self, fn: object, on_error: str) -> dict[str, object]:
        return self.versions


def test_worker_version_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from clisonix_cli import __version__
    from clisonix_cli.errors import SchedulerUnreachableError, WorkerVersionError
    from clisonix_cli.taskarray import remote

    remote._check_workers(_StubClient({"tcp://a:1": __version__}), "here")
    with pytest.raises(
        WorkerVersionError, match=r"tcp://b:2 runs clisonix 0\.0\.1"
    ) as e:
        remote._check_workers(
            _StubClient({"tcp://a:1": __version__, "tcp://b:2": "0.0.1"}), "here"
        )
    assert e.value.exit_code == 3
    with pytest.raises(WorkerVersionError, match="cannot run clisonix"):
        remote._check_workers(_StubClient({"tcp://a:1": ImportError("no")}), "here")
    monkeypatch.setattr(remote, "WORKER_WAIT_S", 0.01)
    with pytest.raises(SchedulerUnreachableError, match="no workers"):
        remote._check_workers(_StubClient({}), "here")


def test_missing_scheduler_file(tmp_path: Path) -> None:
    from clisonix_cli.errors import SchedulerUnreachableError
    from clisonix_cli.taskarray.remote import dask_client

    with pytest.raises(SchedulerUnreachableError, match="does not exist"):
        with dask_client(
            scheduler=None,
            scheduler_file=tmp_path / "s.json",
            jobs=1,
            connect_timeout=1,
        ):
            pass


def test_auto_backend_threads_for_one_task_or_pure_native_conversion() -> None:
    from dataclasses import replace

    from clisonix_cli.dicom.model import Stack
    from clisonix_cli.taskarray.config import RunConfig
    from clisonix_cli.taskarray.execute import local_backend
    from clisonix_cli.taskarray.plan import Task

    def task(syntax: str) -> Task:
        stack = Stack(
            study_uid="1.2", series_uid="1.2.3", stack_key="1", files=("a",),
            modality="CT", series_number=1, series_description="", rows=2, cols=2,
            n_slices=1, n_volumes=1, transfer_syntax=syntax, bits_allocated=16,
            est_bytes=8,
        )  # fmt: skip
        return Task(task_id="t", shard=0, stack=stack, out_stem="x")

    cfg = RunConfig(in_dir=Path("in"), out_dir=Path("out"))
    native, rle = task("1.2.840.10008.1.2.1"), task("1.2.840.10008.1.2.5")
    two = [native, native]
    assert local_backend(cfg, two, 0) == "threads"
    assert local_backend(cfg, two, 1) == "loky"  # ops: numba kernels in processes
    assert local_backend(cfg, [native, rle], 0) == "loky"  # decoders hold the GIL
    assert local_backend(replace(cfg, format="dicom"), two, 0) == "loky"
    assert local_backend(replace(cfg, backend="loky"), two, 0) == "loky"
    # One task: no worker pool, whatever its pipeline, syntax or format.
    for one in ([native], [rle]):
        assert local_backend(cfg, one, 3) == "threads"
        assert local_backend(replace(cfg, format="dicom"), one, 0) == "threads"
    assert local_backend(replace(cfg, backend="loky"), [rle], 3) == "loky"
