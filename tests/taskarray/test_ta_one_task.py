"""A run of one task: it runs in the driver (no worker pool), its compressed slices decode on
worker processes several at once, and every byte is what the worker-pool run writes."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clisonix_cli.dicom.index import scan
from clisonix_cli.dicom.parallel_decode import DecodePool, ordered_frames
from clisonix_cli.dicom.synth import synthesize
from clisonix_cli.dicom.volume import load_stack, open_stack
from clisonix_cli.errors import WorkerDiedError
from clisonix_cli.taskarray.config import RunConfig
from clisonix_cli.taskarray.execute import decode_workers, local_backend, run

OPS = ("rescale", "window:center=40,width=400", "resample:spacing=2")


@pytest.fixture(scope="module")
def one_series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One series of 12 slices in each syntax (explicit, RLE, JPEG 2000)."""
    out = {}
    for syntax in ("explicit", "rle", "j2k"):
        root = tmp_path_factory.mktemp(f"one_{syntax}")
        synthesize(
            root, seed=5, patients=1, series=1, slices=12, rows=32, cols=40,
            syntax=syntax,
        )  # fmt: skip
        out[syntax] = root
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "run-log" not in p.name
    }


def _run_log(out: Path) -> dict[str, Any]:
    lines = (out / ".clisonix" / "run-log.jsonl").read_text().splitlines()
    return next(json.loads(x) for x in lines if '"start"' in x)


@pytest.mark.parametrize("syntax", ["explicit", "rle", "j2k"])
@pytest.mark.parametrize("ops", [(), OPS], ids=["convert", "pipeline"])
def test_one_task_in_the_driver_writes_the_pool_bytes(
    one_series: dict[str, Path], tmp_path: Path, syntax: str, ops: tuple[str, ...]
) -> None:
    src = one_series[syntax]
    trees = {}
    for label, kw in {
        "loky-1": {"backend": "loky", "jobs": 1},
        "auto-1": {"jobs": 1},
        "auto-3": {"jobs": 3},
    }.items():
        out = tmp_path / label
        result = run(RunConfig(in_dir=src, out_dir=out, op_specs=ops, **kw))
        assert result.exit_code == 0, [r["error"] for r in result.failed]
        trees[label] = _tree(out)
        if label.startswith("auto"):
            assert _run_log(out)["backend"] == "threads"  # no worker pool for one task
    assert trees["auto-1"] == trees["loky-1"]
    assert trees["auto-3"] == trees["loky-1"]


def test_backend_and_decode_budget_policy(one_series: dict[str, Path]) -> None:
    from clisonix_cli.taskarray.plan import make_plan

    plan = make_plan(scan(one_series["j2k"]))
    one = list(plan.tasks)
    cfg = RunConfig(in_dir=one_series["j2k"], out_dir=Path("unused"), jobs=4)
    assert local_backend(cfg, one, pipeline_steps=3) == "threads"
    assert decode_workers(cfg, one, 4) == 4
    assert local_backend(cfg, one * 2, pipeline_steps=3) == "loky"
    assert decode_workers(cfg, one * 2, 4) == 0
    forced = RunConfig(in_dir=cfg.in_dir, out_dir=cfg.out_dir, backend="threads")
    assert decode_workers(forced, one, 4) == 0  # decodes in its thread, as before


@pytest.mark.parametrize("syntax", ["rle", "j2k"])
def test_pool_decode_equals_the_serial_read(
    one_series: dict[str, Path], syntax: str
) -> None:
    from joblib.externals.loky import ProcessPoolExecutor

    root = one_series[syntax]
    (stack,) = scan(root).stacks
    serial: dict[str, str] = {}
    want = load_stack(root, stack, digests=serial)
    with ProcessPoolExecutor(max_workers=2) as ex:
        pool = DecodePool(ex, 2)
        pooled: dict[str, str] = {}
        got = load_stack(root, stack, digests=pooled, pool=pool)
        np.testing.assert_array_equal(got.data, want.data)
        assert got.data.dtype == want.data.dtype and pooled == serial
        streamed: dict[str, str] = {}
        stream = open_stack(root, stack, digests=streamed, pool=pool)
        slabs = [s.copy() for s in stream.slabs()]
        np.testing.assert_array_equal(np.concatenate(slabs), want.data)
        assert streamed == serial


class _Broken:
    """An executor whose workers die: every future fails as a broken pool."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, *args: Any) -> Future[Any]:
        self.submitted += 1
        fut: Future[Any] = Future()
        fut.set_exception(BrokenProcessPool("a worker died"))
        return fut


def test_a_dead_decoder_fails_the_task_with_e150(
    one_series: dict[str, Path],
) -> None:
    root = one_series["j2k"]
    (stack,) = scan(root).stacks
    items = [
        (rel, info, (0,)) for rel, info in zip(stack.files, stack.pixels, strict=True)
    ]
    broken = _Broken()
    with pytest.raises(WorkerDiedError, match="decoder process died") as err:
        list(ordered_frames(broken, 2, root, items, digest=True))
    assert err.value.code == "CLX-E150" and stack.files[0] in err.value.message
    assert broken.submitted <= 4  # at most two batches per worker in flight


def test_a_real_worker_death_leaves_the_driver_running(
    one_series: dict[str, Path],
) -> None:
    from joblib.externals.loky import ProcessPoolExecutor

    root = one_series["j2k"]
    (stack,) = scan(root).stacks
    with ProcessPoolExecutor(max_workers=1, initializer=os._exit, initargs=(3,)) as ex:
        with pytest.raises(WorkerDiedError):
            load_stack(root, stack, pool=DecodePool(ex, 1))
    assert load_stack(root, stack).data.shape[0] == 12  # still here, and serial works


@pytest.mark.parametrize(
    "ops",
    [
        ("rescale",),
        ("rescale", "window:center=40,width=400", "cast:dtype=uint8"),
        ("clip:lo=-100,hi=300", "window:preset=brain"),
    ],
    ids=["rescale", "window-uint8", "clip-window"],
)
@pytest.mark.parametrize("syntax", ["explicit", "rle"])
def test_slab_wise_pipelines_write_the_whole_volume_bytes(
    one_series: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ops: tuple[str, ...],
    syntax: str,
) -> None:
    """Pointwise ops without statistics stream slab by slab (8 slabs of 2 slices here);
    the files are those of the whole-volume path, sidecars included."""
    from clisonix_cli.dicom import volume
    from clisonix_cli.transforms.pipeline import Pipeline

    assert Pipeline.from_cli(list(ops), None).slab_output() is not None
    monkeypatch.setattr(volume, "SLAB_BYTES", 2 * 32 * 40 * 2)
    from clisonix_cli.taskarray import task as task_mod

    slabs_seen: list[tuple[int, ...]] = []
    original = task_mod._SlabPipeline.slabs

    def spy(self: Any) -> Any:
        for slab in original(self):
            slabs_seen.append(slab.shape)
            yield slab

    monkeypatch.setattr(task_mod._SlabPipeline, "slabs", spy)
    src = one_series[syntax]
    streamed = tmp_path / "streamed"
    done = run(RunConfig(in_dir=src, out_dir=streamed, op_specs=ops, jobs=2))
    assert done.exit_code == 0
    assert slabs_seen == [(2, 32, 40)] * 6  # the one task ran here, slab by slab
    monkeypatch.setattr(Pipeline, "slab_output", lambda self: None)
    whole = tmp_path / "whole"
    done = run(RunConfig(in_dir=src, out_dir=whole, op_specs=ops, jobs=2))
    assert done.exit_code == 0
    assert _tree(streamed) == _tree(whole)


def test_pipelines_that_need_the_whole_volume_do_not_stream() -> None:
    from clisonix_cli.transforms.pipeline import Pipeline

    for ops in (
        ["normalize"],  # statistics
        ["cast:dtype=int16,scale=fit"],
        ["rescale", "flip:axis=row"],  # not pointwise
        ["voi"],  # the file's display attributes
        ["rescale", "voi:dtype=uint8"],
    ):
        assert Pipeline.from_cli(ops, None).slab_output() is None
    assert Pipeline.from_cli([], None).slab_output() is None
