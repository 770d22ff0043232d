"""``clisonix deid``: a de-identified DICOM copy of every object under IN_DIR.

The same task array as ``transform``: IN_DIR is indexed (every DICOM object, not only
images), one task per series is planned and sharded by study, the tasks run on the chosen
executor, each finished task appends its manifest record, and ``--resume`` skips tasks
whose outputs are intact. A task writes ``OUT/<new StudyInstanceUID>/<new
SeriesInstanceUID>/<new SOPInstanceUID>.dcm`` for every object it may release
(:func:`clisonix_cli.dicom.deid.instance.deidentify_file`); the rest are withheld with a
stable code and a reason. At the end the run writes its ``deid-report.json`` (counts only,
no identifier) and, when asked, the ``--mapping`` file that links originals to new
identifiers, outside OUT_DIR.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clisonix_cli import __version__
from clisonix_cli.dicom.deid.guard import Terms
from clisonix_cli.dicom.deid.index import DeidIndex, Entry, index_files
from clisonix_cli.dicom.deid.keys import patient_of
from clisonix_cli.dicom.deid.settings import DeidSettings
from clisonix_cli.dicom.model import Skipped, Stack
from clisonix_cli.errors import (
    ClisonixError,
    DeidPathError,
    InputError,
    PHIGuardError,
    WorkerVersionError,
    WriteFailedError,
)
from clisonix_cli.fsio import confined, is_within
from clisonix_cli.taskarray.collect import Collector, Event, EventHandler, RunLog
from clisonix_cli.taskarray.config import RunConfig, Shard
from clisonix_cli.taskarray.deid_records import guard_record, keyed_inputs, new_uid
from clisonix_cli.taskarray.deid_report import report_document, write_mapping
from clisonix_cli.taskarray.execute import (
    INFORMATIONAL_SKIP_CODES,
    _dask_session,
    _execute,
    opened_out_dir,
)
from clisonix_cli.taskarray.manifest import (
    STATE_DIR,
    ManifestWriter,
    Record,
    manifest_name,
    read_manifest,
    read_records,
    write_compacted,
)
from clisonix_cli.taskarray.plan import Plan, Task
from clisonix_cli.taskarray.resume import (
    is_done,
    remove_stale_temps,
    run_identity,
    write_identity,
)
from clisonix_cli.taskarray.shard import shard_of
from clisonix_cli.taskarray.task import (
    TaskContext,
    TaskOutcome,
    _Deadline,
    base_record,
    failed_record,
    worker_name,
)

#: ``format`` of a deid run's records and identity.
DEID_FORMAT = "deid"
#: sha256 of the empty pipeline's canonical JSON (``[]``): a deid run applies no ops.
EMPTY_PIPELINE_SHA256 = hashlib.sha256(b"[]").hexdigest()


@dataclass(frozen=True)
class DeidTask(Task):
    """A deid task: one series, with the patient key of its study (never recorded)."""

    patient: str = ""


@dataclass(frozen=True)
class DeidConfig:
    """A ``clisonix deid`` run: the task-array options and the de-identification ones.

    Parameters
    ----------
    run : RunConfig
        IN_DIR, OUT_DIR, executor, shard, resume...; its ``deid`` holds the settings.
    mapping : Path or None
        ``--mapping FILE``: originals -> new identifiers, written outside OUT_DIR.
    """

    run: RunConfig
    mapping: Path | None = None

    def __post_init__(self) -> None:
        if self.run.deid is None:
            raise ValueError("a deid run needs its DeidSettings in run.deid")
        if self.mapping is not None:
            where = self.mapping.resolve()
            for name, folder in (
                ("OUT_DIR", self.run.out_dir),
                ("IN_DIR", self.run.in_dir),
            ):
                if where.is_relative_to(folder.resolve()):
                    raise DeidPathError(
                        f"--mapping {self.mapping} lies inside {name}; the mapping "
                        "re-identifies the data and must be kept apart from it - choose "
                        "a path outside both folders"
                    )

    @property
    def settings(self) -> DeidSettings:
        """The de-identification settings."""
        assert self.run.deid is not None
        return self.run.deid


@dataclass
class DeidResult:
    """Everything a deid run did, in plan order."""

    config: DeidConfig
    plan: Plan
    index: DeidIndex
    records: list[Record] = field(default_factory=list)
    skipped: list[Record] = field(default_factory=list)
    resumed: frozenset[str] = frozenset()
    manifest: str | None = None
    report: str | None = None
    mapping: str | None = None
    removed_temps: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Record]:
        """Records of tasks that failed."""
        return [r for r in self.records if r.get("status") == "failed"]

    def file_counts(self) -> Counter[str]:
        """Input files by outcome: written, withheld, failed (and each withheld code)."""
        c: Counter[str] = Counter()
        for rec in self.records:
            for entry in rec.get("inputs") or []:
                status = entry.get("status", "not run")
                c[status] += 1
                if status == "withheld":
                    c[entry.get("code", "")] += 1
        return c

    @property
    def exit_code(self) -> int:
        """0 when every task succeeded and no DICOM file was damaged, else 1."""
        if self.config.run.dry_run:
            return 0
        serious = [  # e.g. a link to a folder not followed: the user's choice
            r
            for r in self.skipped
            if r["error"]["code"] not in INFORMATIONAL_SKIP_CODES
        ]
        return 1 if self.failed or serious else 0

    def summary(self) -> dict[str, Any]:
        """The ``--json`` document (no identifier: tokens and new UIDs only)."""
        files = self.file_counts()
        return {
            "exit_code": self.exit_code,
            "dry_run": self.config.run.dry_run,
            "shard": self.config.run.shard.label if self.config.run.shard else None,
            "manifest": self.manifest,
            "report": self.report,
            "counts": {
                "tasks": len(self.plan.tasks),
                "tasks_total": self.plan.n_total,
                "ok": sum(1 for r in self.records if r.get("status") == "ok"),
                "failed": len(self.failed),
                "resumed": len(self.resumed),
                "files_seen": self.index.n_files,
                "not_dicom": self.index.n_non_dicom,
                "damaged": len(self.skipped),
                "written": files["written"],
                "withheld": files["withheld"],
                "failed_files": files["failed"],
            },
            "tasks": [
                {
                    "task": r["task"],
                    "status": r["status"],
                    "study_uid": r.get("study_uid"),
                    "series_uid": r.get("series_uid"),
                    "error": r.get("error"),
                    "outputs": len(r.get("outputs") or []),
                    "withheld": sum(
                        1
                        for i in r.get("inputs") or []
                        if i.get("status") == "withheld"
                    ),
                }
                for r in self.records
            ],
            "skipped": [
                {"file": r["inputs"][0]["file"], **(r.get("error") or {})}
                for r in self.skipped
            ],
        }


# --- planning --------------------------------------------------------------------------


def study_patients(entries: Sequence[Entry]) -> dict[str, str]:
    """Patient key of every study: its most common non-empty PatientID (ties: the first in
    sort order), or the study itself when no file names a patient. Every file of a study
    then gets one pseudonym and one date offset, even where its own PatientID is empty."""
    ids: dict[str, Counter[str]] = {}
    for e in entries:
        ids.setdefault(e.study, Counter())
        if e.patient_id.strip():
            ids[e.study][e.patient_id.strip()] += 1
    out: dict[str, str] = {}
    for study, counts in ids.items():
        best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[study] = patient_of(best[0][0] if best else "", study)
    return out


def make_deid_plan(
    index: DeidIndex, settings: DeidSettings, *, shard: Shard | None = None
) -> Plan:
    """One task per (study, series), sorted; sharded by the original StudyInstanceUID."""
    patients = study_patients(index.entries)
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in index.entries:
        groups.setdefault((e.study, e.series), []).append(e)
    count = shard.count if shard else 1
    mapper = settings.mapper
    tasks: list[DeidTask] = []
    for (study, series), members in groups.items():
        files = tuple(e.rel for e in members)
        key = "|".join([study, series, *files])
        if study and series:
            stem = f"{new_uid(settings, study)}/{new_uid(settings, series)}"
        else:
            stem = "unplaced/" + mapper.token("unplaced", key)
        stack = Stack(
            study_uid=study, series_uid=series, stack_key="", files=files,
            modality=members[0].modality, series_number=None, series_description="",
            rows=0, cols=0, n_slices=len(files), n_volumes=1, transfer_syntax="",
            bits_allocated=0, est_bytes=sum(e.size for e in members),
        )  # fmt: skip
        task_id = "d" + mapper.token("task", key)
        tasks.append(
            DeidTask(
                task_id=task_id,
                shard=shard_of(study, count),
                stack=stack,
                out_stem=stem,
                label=f"series task {task_id} ({len(files)} file(s))",
                patient=patients.get(study, patient_of("", study)),
            )
        )
    tasks.sort(key=lambda t: t.sort_key)
    mine = tuple(t for t in tasks if shard is None or t.shard == shard.index)
    reports_skipped = shard is None or shard.index == 0
    return Plan(
        tasks=mine,
        skipped=tuple(sorted(index.skipped, key=lambda s: s.path))
        if reports_skipped
        else (),
        n_total=len(tasks),
        shard=shard,
        n_files=index.n_files,
    )


def skipped_deid_record(s: Skipped, settings: DeidSettings) -> Record:
    """Manifest record of a damaged DICOM file (token, code, scrubbed message)."""
    token = settings.file_token(s.path)
    return {
        "task": "f" + token[1:],
        "status": "skipped",
        "error": {
            "code": s.code,
            "message": settings.scrub(" ".join(s.reason.split()), [s.path]),
        },
        "inputs": [{"file": token}],
        "outputs": [],
    }


# --- the task --------------------------------------------------------------------------


def _tag_name(tag: int) -> str:
    """``(gggg,eeee) name`` of a counted tag: the name Table E.1-1 gives it, else the
    data dictionary keyword (``private`` for all private ones)."""
    from clisonix_cli.dicom.deid.profile import names
    from clisonix_cli.dicom.deid.rules import tag_label

    if tag < 0:
        return "private"
    group = tag >> 16
    if 0x5000 <= group <= 0x60FF:
        kind = "curve" if group < 0x6000 else "overlay"
        return f"({group & 0xFF00:04X}-{group | 0x00FF:04X},{tag & 0xFFFF:04X}) {kind}"
    name = names().get(tag)
    if name is None:
        from pydicom.datadict import keyword_for_tag

        name = keyword_for_tag(tag) or "unknown"
    return f"{tag_label(tag)} {name}"


def run_deid_task(task: Task, ctx: TaskContext) -> TaskOutcome:
    """De-identify the files of one series; every failure becomes a ``failed`` record.

    Parameters
    ----------
    task : DeidTask
    ctx : TaskContext
        With ``deid`` set.

    Returns
    -------
    TaskOutcome
    """
    from clisonix_cli.dicom.deid.instance import deidentify_file

    start = time.monotonic()
    settings = ctx.deid
    assert settings is not None
    patient = task.patient if isinstance(task, DeidTask) else ""
    out_root = Path(ctx.out_dir)
    out_dir = out_root / task.out_stem
    written: list[Path] = []
    try:
        if ctx.version != __version__:
            raise WorkerVersionError(
                f"worker {worker_name()} runs clisonix {__version__}, the client "
                f"{ctx.version}; install the same version on every worker"
            )
        if not is_within(out_dir, out_root):
            raise WriteFailedError(
                f"{task.describe()}: the output folder resolves outside OUT_DIR; refusing "
                "to write (a symbolic link in OUT_DIR may point elsewhere)"
            )
        deadline = _Deadline(task, ctx.task_timeout)
        terms = Terms()
        entries: list[dict[str, Any]] = []
        digests: dict[str, str] = {}
        outputs: list[dict[str, Any]] = []
        counts: Counter[tuple[int, str]] = Counter()
        failures: list[tuple[str, str]] = []
        taken: set[str] = set()
        for rel in dict.fromkeys(task.stack.files):
            deadline.check("between files")
            token = settings.file_token(rel)
            entry: dict[str, Any] = {"file": token}
            entries.append(entry)
            try:
                with confined(out_root):  # no write below OUT_DIR follows a link
                    fo = deidentify_file(
                        Path(ctx.in_dir) / rel, out_dir, settings, patient=patient,
                        terms=terms, label=token, taken=taken,
                    )  # fmt: skip
            except PHIGuardError:
                raise
            except (ClisonixError, OSError) as exc:
                err = exc if isinstance(exc, ClisonixError) else InputError(
                    f"cannot be read ({exc.strerror or exc})"
                )  # fmt: skip
                if isinstance(err, WriteFailedError):
                    raise
                entry.update(status="failed", code=err.code)
                failures.append((err.code, settings.scrub(err.message, [rel])))
                continue
            digests[rel] = fo.input_digest or ""
            entry["digest"] = fo.input_digest
            if fo.burned_in:
                entry["burned_in"] = fo.burned_in
            if fo.withheld is not None:
                entry.update(status="withheld", code=fo.withheld.code)
                entry["reason"] = settings.scrub(fo.withheld.message, [rel])
                continue
            assert fo.written is not None and fo.digest is not None
            written.append(fo.written)
            path = fo.written.relative_to(out_root).as_posix()
            entry.update(status="written", output=path)
            outputs.append({"path": path, "digest": fo.digest, "bytes": fo.size})
            counts.update(fo.counts)
        rec = base_record(task, ctx)
        _inputs, digest = keyed_inputs(settings, task.stack.files, digests)
        rec.update(
            status="failed" if failures else "ok",
            error=None,
            inputs=entries,
            inputs_digest=digest,
            outputs=sorted(outputs, key=lambda o: o["path"]),
            actions=_actions(counts),
        )
        if failures:
            code, message = failures[0]
            rec["error"] = {
                "code": code,
                "message": f"{len(failures)} of {len(entries)} file(s) could not be "
                f"de-identified; the first: {message}",
            }
        found = guard_record(rec, terms)
        if found:
            raise PHIGuardError(
                f"{task.describe()}: the manifest record would hold {', '.join(found)} of "
                "its inputs; the task's outputs are withheld"
            )
    except ClisonixError as exc:
        for p in written:  # a failed task releases nothing
            with contextlib.suppress(OSError):
                p.unlink()
        rec = failed_record(task, ctx, exc)
    return TaskOutcome(
        record=rec, seconds=time.monotonic() - start, worker=worker_name()
    )


def _actions(counts: Counter[tuple[int, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (tag, action), n in sorted(counts.items()):
        slot = out.setdefault(_tag_name(tag), {})
        slot[action] = slot.get(action, 0) + n
    return out


# --- the run ---------------------------------------------------------------------------


def _input_list(run: RunConfig) -> tuple[list[str], list[Skipped]]:
    """The files to look at, and the folders the walk could not or would not enter."""
    from clisonix_cli.dicom.discover import discover, input_files, normalize_files

    listed = input_files(run.in_dir, run.files_from)
    if listed is None:
        found = discover(
            run.in_dir,
            follow_symlinks=run.follow_symlinks or run.follow_symlinks_outside,
            outside=run.follow_symlinks_outside,
        )
        return found.files, found.skipped
    return normalize_files(listed, run.in_dir), []


def _require_objects(run: RunConfig, index: DeidIndex) -> None:
    """Refuse an IN_DIR without any DICOM object (exit 2) unless ``--allow-empty``; links
    to folders that were not followed do not count."""
    from clisonix_cli.dicom.discover import require_something

    if run.allow_empty or index.entries:
        return
    require_something(
        run.in_dir,
        "object",
        f"{index.n_files} file(s) looked at, {index.n_non_dicom} not DICOM",
        index.skipped,
    )


def run_deid(
    config: DeidConfig,
    *,
    on_event: EventHandler | None = None,
    fn: Any = run_deid_task,
) -> DeidResult:
    """Run (or with ``dry_run`` only plan) a deid job.

    Raises
    ------
    UsageError
        An OUT_DIR of another run or key, a bad --mapping path (exit 2).
    EnvironmentProblem
        IN_DIR unreadable, OUT_DIR not writable, scheduler unreachable (exit 3).
    """
    run = config.run
    settings = config.settings
    identity = run_identity(EMPTY_PIPELINE_SHA256, DEID_FORMAT, settings.sha256())
    with opened_out_dir(run, identity) as merged:
        return _run_in(config, identity, merged, on_event, fn)


def _run_in(
    config: DeidConfig,
    identity: dict[str, str],
    merged: dict[str, Record],
    on_event: EventHandler | None,
    fn: Any,
) -> DeidResult:
    run, settings = config.run, config.settings
    out_dir = run.out_dir
    part = manifest_name(run.shard)
    jobs = run.effective_jobs
    with _dask_session(run, jobs) as client:
        files, not_walked = _input_list(run)
        index = index_files(run.in_dir, files)
        index.skipped.extend(not_walked)  # reported (CLX-E216/E217), never silent
        _require_objects(run, index)
        plan = make_deid_plan(index, settings, shard=run.shard)
        result = DeidResult(config=config, plan=plan, index=index)
        result.skipped = [skipped_deid_record(s, settings) for s in plan.skipped]
        if run.dry_run:
            return result
        result.manifest = part
        result.removed_temps = remove_stale_temps(out_dir, plan.tasks, part)
        if run.overwrite:
            _drop_foreign(out_dir / part, identity)
        write_identity(out_dir, identity, [])
        resumed = frozenset(
            t.task_id
            for t in plan.tasks
            if run.resume and is_done(merged.get(t.task_id), identity, out_dir)
        )
        todo = [t for t in plan.tasks if t.task_id not in resumed]
        backend = run.backend
        if backend == "auto":  # pure Python per file: one thread, or processes
            backend = "threads" if min(jobs, len(todo)) <= 1 else "loky"
        run = replace(run, backend=backend)
        ctx = TaskContext(
            in_dir=str(run.in_dir.resolve()),
            out_dir=str(out_dir.resolve()),
            fmt=DEID_FORMAT,
            pipeline=None,  # type: ignore[arg-type]  # no ops in a deid run
            pipeline_canonical=[],
            pipeline_sha256=EMPTY_PIPELINE_SHA256,
            task_timeout=run.task_timeout,
            limit_blas=False,
            deid=settings,
        )
        runlog = RunLog(out_dir / STATE_DIR / part.replace("manifest", "run-log", 1))
        try:
            with ManifestWriter(out_dir / part) as writer:
                for rec in result.skipped:
                    writer.append(rec)
                collector = Collector(
                    ctx, len(todo), writer, runlog, on_event, run.fail_fast
                )
                runlog.write(
                    "start", version=__version__, command="deid", backend=run.backend,
                    jobs=jobs, tasks=len(todo), resumed=len(resumed),
                    shard=run.shard.label if run.shard else None, manifest=part,
                )  # fmt: skip
                collector.emit(Event("start", 0, len(todo)))
                _execute(run, client, todo, ctx, collector, jobs, fn)
            write_compacted(out_dir / part, read_records(out_dir / part))
            runlog.write("end")
        finally:
            runlog.close()
    final = read_manifest(out_dir) if resumed else {}  # the resumed tasks' records
    result.resumed = resumed
    result.records = [
        collector.records.get(t.task_id) or final[t.task_id] for t in plan.tasks
    ]
    result.report = report_document(
        out_dir, part, settings, result.records, result.skipped, index
    )
    if config.mapping is not None:
        result.mapping = write_mapping(
            config.mapping, run.shard, settings, plan, result.records, index
        )
    collector.emit(Event("end", len(collector.records), len(todo)))
    return result


def _drop_foreign(part: Path, identity: dict[str, str]) -> None:
    from clisonix_cli.taskarray.resume import record_identity

    if part.exists():
        keep = [r for r in read_records(part) if record_identity(r) in (None, identity)]
        write_compacted(part, keep)


__all__ = [
    "DEID_FORMAT",
    "DeidConfig",
    "DeidResult",
    "DeidTask",
    "make_deid_plan",
    "run_deid",
    "run_deid_task",
]
