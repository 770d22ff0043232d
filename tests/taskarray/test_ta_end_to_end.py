"""The real task array end to end: synthetic DICOM, a real pipeline, every executor.

Small data (4 studies x 2 series x 8 slices of 32x32) keeps the whole file fast; Dask runs
against a real scheduler and two real worker processes started here on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

from clisonix_cli.dicom.synth import synthesize
from clisonix_cli.digest import file_digest
from clisonix_cli.errors import SchedulerUnreachableError
from clisonix_cli.taskarray.config import RunConfig, Shard
from clisonix_cli.taskarray.execute import RunResult, TaskFn, run
from clisonix_cli.taskarray.manifest import read_manifest, read_records
from clisonix_cli.taskarray.task import inputs_digest

OPS = ("rescale", "window:preset=brain", "flip:axis=row")
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
N_TASKS = 8


@pytest.fixture(scope="module")
def synth_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 studies x 2 series x 8 slices of 32x32 (8 tasks)."""
    root = tmp_path_factory.mktemp("synth_in")
    synthesize(
        root, seed=3, patients=2, studies=2, series=2, slices=8, rows=32, cols=32
    )
    return root


def _cfg(in_dir: Path, out_dir: Path, **kw: Any) -> RunConfig:
    return RunConfig(in_dir=in_dir, out_dir=out_dir, op_specs=OPS, **kw)


@pytest.fixture(scope="module")
def reference(
    synth_in: Path, tmp_path_factory: pytest.TempPathFactory, fakes: ModuleType
) -> SimpleNamespace:
    """An uninterrupted ``--jobs 1`` run: the bytes every other run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "out"
    result = run(_cfg(synth_in, out, jobs=1))
    assert result.exit_code == 0, [r["error"] for r in result.failed]
    assert len(result.records) == N_TASKS
    return SimpleNamespace(out=out, result=result, digest=fakes.tree_digest(out))


def _outputs_only(digest: dict[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in digest.items() if not k.startswith(("manifest", ".clisonix"))
    }


def test_reference_outputs_are_real(reference: SimpleNamespace) -> None:
    import nibabel as nib

    rec = reference.result.records[0]
    assert rec["status"] == "ok"
    # The digests name their algorithm and are those of the bytes on disk.
    in_dir = reference.result.config.in_dir
    assert rec["inputs_digest"] == inputs_digest(in_dir, rec["inputs"])
    assert rec["inputs_digest"].startswith("blake3:")
    for out in rec["outputs"]:
        assert out["digest"] == file_digest(reference.out / out["path"])
    assert [op["name"] for op in rec["pipeline"]] == ["rescale", "window", "flip"]
    nii = next(o["path"] for o in rec["outputs"] if o["path"].endswith(".nii.gz"))
    img = nib.load(reference.out / nii)
    data = np.asarray(img.dataobj)
    assert data.shape[:2] == (32, 32) and 0.0 <= data.min() <= data.max() <= 1.0
    side = (reference.out / nii.replace(".nii.gz", ".json")).read_text()
    assert rec["pipeline_sha256"] in side and rec["inputs_digest"] in side
    assert "PatientName" not in side and "PatientID" not in side


@pytest.mark.parametrize(
    ("backend", "jobs"), [("loky", 2), ("threads", 2)], ids=["loky-2", "threads-2"]
)
def test_local_backends_give_identical_bytes(
    synth_in: Path,
    reference: SimpleNamespace,
    fakes: ModuleType,
    tmp_path: Path,
    backend: str,
    jobs: int,
) -> None:
    result = run(_cfg(synth_in, tmp_path / "out", backend=backend, jobs=jobs))
    assert result.exit_code == 0
    assert fakes.tree_digest(tmp_path / "out") == reference.digest  # manifest included


def test_shards_run_separately_then_merged(
    synth_in: Path, reference: SimpleNamespace, fakes: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    sizes = []
    for i in range(3):
        part = run(_cfg(synth_in, out, jobs=2, shard=Shard(i, 3)))
        assert part.exit_code == 0
        sizes.append(len(part.records))
    assert sum(sizes) == N_TASKS
    assert list(read_manifest(out).values()) == reference.result.records
    assert _outputs_only(fakes.tree_digest(out)) == _outputs_only(reference.digest)


def test_worker_death_loky(
    synth_in: Path, crash_on: Callable[..., TaskFn], tmp_path: Path
) -> None:
    plan_series = sorted({r for r in _series_uids(synth_in)})
    bad = plan_series[1]
    cfg = _cfg(synth_in, tmp_path / "out", jobs=2, backend="loky")
    result = run(cfg, fn=crash_on(bad))
    _assert_only_bad_died(result, bad)


def _series_uids(root: Path) -> list[str]:
    from clisonix_cli.dicom.index import scan

    return [s.series_uid for s in scan(root).stacks]


def _assert_only_bad_died(result: RunResult, bad: str) -> None:
    by_series = {r["series_uid"]: r for r in result.records}
    assert by_series[bad]["status"] == "failed"
    assert by_series[bad]["error"]["code"] == "CLX-E150"
    assert by_series[bad]["inputs"][0] in by_series[bad]["error"]["message"]
    others = [r for s, r in by_series.items() if s != bad]
    assert len(others) == N_TASKS - 1
    assert all(r["status"] == "ok" for r in others), [r["error"] for r in others]
    assert result.exit_code == 1


# --- Dask: a real scheduler and two real worker processes ------------------------------


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    distributed = pytest.importorskip("distributed")
    base = tmp_path_factory.mktemp("dask")
    sched_file = base / "scheduler.json"
    env = {
        **os.environ,
        # give up on a task after it killed 2 workers (default 4), to keep the test short
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1",
        # workers import the test helpers (tests.taskarray.conftest) by name
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    log = open(base / "dask.log", "wb")  # noqa: SIM115
    common = {"stdout": log, "stderr": log, "env": env, "start_new_session": True}
    procs = [
        subprocess.Popen(  # noqa: S603
            [
                str(BIN / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(sched_file),
                "--no-dashboard",
            ],
            **common,  # type: ignore[arg-type]
        )  # fmt: skip
    ]
    client = None
    try:
        deadline = time.monotonic() + 30
        while not sched_file.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.05)
        for i in range(2):
            procs.append(
                subprocess.Popen(  # noqa: S603
                    [
                        str(BIN / "dask"),
                        "worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"w{i}",
                    ],
                    **common,  # type: ignore[arg-type]
                )  # fmt: skip
            )
        client = distributed.Client(
            scheduler_file=str(sched_file), timeout="30s", set_as_default=False
        )
        client.wait_for_workers(2, timeout=60)
        yield SimpleNamespace(file=sched_file, client=client)
    finally:
        if client is not None:
            client.close()
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()


def _dask_cfg(
    in_dir: Path, out: Path, cluster: SimpleNamespace, **kw: Any
) -> RunConfig:
    cluster.client.wait_for_workers(2, timeout=60)
    return _cfg(in_dir, out, backend="dask", scheduler_file=cluster.file, **kw)


def test_dask_gives_identical_bytes(
    synth_in: Path,
    reference: SimpleNamespace,
    dask_cluster: SimpleNamespace,
    fakes: ModuleType,
    tmp_path: Path,
) -> None:
    result = run(_dask_cfg(synth_in, tmp_path / "out", dask_cluster))
    assert result.exit_code == 0, [r["error"] for r in result.failed]
    assert fakes.tree_digest(tmp_path / "out") == reference.digest


def test_dask_qc_gives_the_same_files(
    synth_in: Path, dask_cluster: SimpleNamespace, tmp_path: Path
) -> None:
    """`clisonix qc` and `transform --qc` on Dask workers: the QC files of threads."""
    from clisonix_cli.qc.run import QcOptions
    from clisonix_cli.taskarray.qcrun import QcRunConfig, run_qc

    files = ("qc.json", "qc.csv", "report.html")
    run_qc(QcRunConfig(synth_in, tmp_path / "t", jobs=1, backend="threads"))
    dask_cluster.client.wait_for_workers(2, timeout=60)
    run_qc(QcRunConfig(synth_in, tmp_path / "d", backend="dask",
                       scheduler_file=dask_cluster.file))  # fmt: skip
    result = run(_dask_cfg(synth_in, tmp_path / "x", dask_cluster, qc=QcOptions()))
    assert result.exit_code == 0, [r["error"] for r in result.failed]
    for f in files:
        assert (tmp_path / "d" / f).read_bytes() == (tmp_path / "t" / f).read_bytes()
    html = (tmp_path / "t" / "report.html").read_bytes()
    assert (tmp_path / "x" / "report.html").read_bytes() == html  # no manifest links


def test_dask_worker_death_is_quarantined(
    synth_in: Path,
    dask_cluster: SimpleNamespace,
    crash_on: Callable[..., TaskFn],
    tmp_path: Path,
) -> None:
    bad = sorted(_series_uids(synth_in))[2]
    result = run(_dask_cfg(synth_in, tmp_path / "out", dask_cluster), fn=crash_on(bad))
    _assert_only_bad_died(result, bad)


def test_dask_worker_loss_midway_completes(
    synth_in: Path,
    reference: SimpleNamespace,
    dask_cluster: SimpleNamespace,
    fakes: ModuleType,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    cfg = _dask_cfg(synth_in, out, dask_cluster)
    pids = dask_cluster.client.run(os.getpid)
    victim = sorted(pids.values())[0]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = run(cfg, fn=fakes.slow_task)
        except BaseException as exc:  # reported below
            box["error"] = exc

    th = threading.Thread(target=target)
    th.start()
    deadline = time.monotonic() + 60
    manifest = out / "manifest.jsonl"
    while not (
        manifest.exists() and any(r["status"] == "ok" for r in read_records(manifest))
    ):
        assert th.is_alive() and time.monotonic() < deadline, box
        time.sleep(0.01)
    n_done = len([r for r in read_records(manifest) if r["status"] == "ok"])
    os.kill(victim, signal.SIGKILL)
    th.join(timeout=120)
    assert "error" not in box, box
    result: RunResult = box["result"]
    assert n_done < N_TASKS, "the run finished before the worker was killed"
    assert all(r["status"] == "ok" for r in result.records), [
        r["error"] for r in result.records
    ]
    assert result.exit_code == 0
    assert _outputs_only(fakes.tree_digest(out)) == _outputs_only(reference.digest)


def test_unreachable_scheduler_fails_fast(synth_in: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(SchedulerUnreachableError) as info:
        run(
            _cfg(
                synth_in,
                tmp_path / "out",
                backend="dask",
                scheduler=f"tcp://127.0.0.1:{port}",
                connect_timeout=2,
            )
        )
    assert info.value.exit_code == 3 and f"127.0.0.1:{port}" in info.value.message
    assert time.monotonic() - t0 < 20


# --- crash of the whole run, then --resume ---------------------------------------------


def test_sigkill_midway_then_resume(
    synth_in: Path, reference: SimpleNamespace, fakes: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [str(BIN / "clisonix"), "transform", str(synth_in), str(out), "--jobs", "1"]
    for op in OPS:
        args += ["--op", op]
    proc = subprocess.Popen(  # noqa: S603
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    try:
        while not (
            manifest.exists()
            and any(r["status"] == "ok" for r in read_records(manifest))
        ):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its loky workers
        proc.wait()
    done = [r for r in read_records(manifest) if r["status"] == "ok"]
    assert 1 <= len(done) < N_TASKS, "not killed midway"
    resumed = subprocess.run(  # noqa: S603
        [*args, "--resume", "--json"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert fakes.no_temp_files(out)
    assert fakes.tree_digest(out) == reference.digest  # outputs and manifest bytes
    records = read_records(manifest)
    assert len(records) == N_TASKS == len({r["task"] for r in records})
    assert all(r["status"] == "ok" for r in records)


# --- damaged input ---------------------------------------------------------------------


def _bad_input(root: Path) -> list[str]:
    """Two good series plus one file of each kind of damage; returns the bad names."""
    import pydicom
    from pydicom.uid import generate_uid

    synthesize(
        root, seed=5, patients=1, studies=1, series=2, slices=8, rows=32, cols=32
    )
    good = sorted(root.rglob("*.dcm"))
    bad = root / "bad"
    bad.mkdir()

    def variant(name: str, **changes: Any) -> Path:
        ds = pydicom.dcmread(good[0])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[name])
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[name, "sop"])
        for key, value in changes.items():
            setattr(ds, key, value)
        path = bad / name
        ds.save_as(path, enforce_file_format=True)
        return path

    trunc = variant("truncated.dcm")
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size * 2 // 3])
    variant("huge.dcm", Rows=4096, Columns=4096)
    nopix = variant("nopixels.dcm")
    ds = pydicom.dcmread(nopix)
    del ds.PixelData
    ds.save_as(nopix, enforce_file_format=True)
    rng = np.random.default_rng(0)
    (bad / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + rng.bytes(3000))
    (bad / "empty.dcm").write_bytes(b"")
    (root / "notes.txt").write_text("not DICOM, not a problem\n")
    return sorted(
        f"bad/{n}"
        for n in (
            "truncated.dcm",
            "huge.dcm",
            "nopixels.dcm",
            "garbage.dcm",
            "empty.dcm",
        )
    )


def test_bad_input_end_to_end(fakes: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "in"
    bad = _bad_input(src)
    before = fakes.tree_digest(src)
    result = run(_cfg(src, tmp_path / "out", jobs=2))
    assert fakes.tree_digest(src) == before  # the input is untouched
    assert result.exit_code == 1
    ok = [r for r in result.records if r["status"] == "ok"]
    assert len(ok) == 2 and all(
        not any(f.startswith("bad/") for f in r["inputs"]) for r in ok
    )
    doc = result.summary()
    reported = [s["path"] for s in doc["skipped"]]
    for task in result.failed:
        reported += [f for f in task["inputs"] if f in task["error"]["message"]]
    for name in bad:
        assert reported.count(name) == 1, (name, reported)
    assert "notes.txt" not in reported
    assert fakes.no_temp_files(tmp_path / "out")
    shutil.rmtree(tmp_path / "out")
