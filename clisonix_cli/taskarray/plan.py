"""Planning: one task per image stack, in a stable order, with stable ids and output names.

The plan is a pure function of the scan: tasks sorted by (StudyInstanceUID,
SeriesInstanceUID, stack key), each with a task id hashed from its inputs, the shard of its
study, and an output name built from hashed and sanitized identifiers only, so that it can
never leave OUT_DIR and never carries a patient name.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clisonix_cli.dicom.model import ScanResult, Skipped, Stack
from clisonix_cli.taskarray.config import Shard
from clisonix_cli.taskarray.shard import shard_of

if TYPE_CHECKING:
    from clisonix_cli.dicom.deid.settings import DeidSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
_DESC_MAX = 40


def short_hash(text: str, n: int = 8) -> str:
    """First ``n`` hex digits of sha256(text).

    Parameters
    ----------
    text : str
        Any identifier (a UID).
    n : int
        Number of hex digits.

    Returns
    -------
    str
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def sanitize(text: str, *, fallback: str, limit: int = _DESC_MAX) -> str:
    """Reduce free text to ``[A-Za-z0-9-]`` for use in a file name.

    Accents are folded to ASCII, every other run of characters becomes one ``-``; the result
    never contains ``/``, ``.`` or ``..`` and is at most ``limit`` characters.

    Parameters
    ----------
    text : str
        E.g. a (0008,103E) Series Description.
    fallback : str
        Returned when nothing is left.
    limit : int
        Maximum length.

    Returns
    -------
    str
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("-", ascii_text).strip("-")[:limit].strip("-")
    return cleaned or fallback


def task_id_for(stack: Stack) -> str:
    """Stable id of the task converting ``stack``: a hash of what identifies its inputs.

    Parameters
    ----------
    stack : Stack
        A stack of the scan; only what identifies its inputs enters the id.

    Returns
    -------
    str
        ``"t"`` + 16 hex digits of sha256 over the study and series UIDs, the stack key, the
        relative file names and the frame indices.
    """
    key = json.dumps(
        [
            stack.study_uid,
            stack.series_uid,
            stack.stack_key,
            list(stack.files),
            list(stack.frames),
        ],
        separators=(",", ":"),
    )
    return "t" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def output_stem(stack: Stack) -> str:
    """Output name of a stack, relative to OUT_DIR and without suffix.

    ``<study-hash8>/<series-number>_<description>_<stack-key>_<series-hash8>``: the study
    folder and the last part are sha256 digests of the UIDs (the series digest keeps two
    series with the same number and description apart); number, description and stack key
    are sanitized by :func:`sanitize`. No patient identifier is ever part of the name.

    Parameters
    ----------
    stack : Stack
        A stack of the scan (UIDs, series number and description, stack key).

    Returns
    -------
    str
        A POSIX relative path such as ``"3f2a9c1e/0003_T1-MPRAGE_1_b07e44d2"``.
    """
    number = (
        f"{stack.series_number:04d}"
        if stack.series_number is not None and stack.series_number >= 0
        else "none"
    )
    desc = sanitize(stack.series_description, fallback="series")
    key = sanitize(stack.stack_key, fallback="1", limit=24)
    return f"{short_hash(stack.study_uid)}/{number}_{desc}_{key}_{short_hash(stack.series_uid)}"


def describe_files(files: Sequence[str], *, limit: int = 2) -> str:
    """Name a task's files in one short phrase: all of them when few, else first .. last.

    Parameters
    ----------
    files : sequence of str
        Relative paths, in stack order.
    limit : int
        Up to this many files are named one by one.

    Returns
    -------
    str
    """
    if len(files) <= limit:
        return ", ".join(files) if files else "(no files)"
    return f"{files[0]} .. {files[-1]} ({len(files)} files)"


@dataclass(frozen=True)
class Task:
    """One unit of work: convert one stack. Picklable; small enough to send to a worker."""

    task_id: str
    shard: int
    stack: Stack
    out_stem: str
    #: How messages name the task when set (de-identifying runs: no input paths).
    label: str = ""

    @property
    def study_uid(self) -> str:
        """(0020,000D) of the stack."""
        return self.stack.study_uid

    @property
    def series_uid(self) -> str:
        """(0020,000E) of the stack."""
        return self.stack.series_uid

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """Plan order: study, series, stack key (task id breaks ties)."""
        return (self.study_uid, self.series_uid, self.stack.stack_key, self.task_id)

    def describe(self) -> str:
        """One phrase naming the task for messages: series number, stack and files."""
        if self.label:
            return self.label
        number = self.stack.series_number
        return (
            f"series {number if number is not None else '?'} stack "
            f"{self.stack.stack_key!r} ({describe_files(self.stack.files)})"
        )


@dataclass(frozen=True)
class Plan:
    """The tasks of a run in plan order, and the files the scan set aside.

    ``tasks`` holds only this shard's tasks when ``shard`` is set; ``n_total`` counts the
    tasks of the whole plan.
    """

    tasks: tuple[Task, ...]
    skipped: tuple[Skipped, ...]
    n_total: int
    shard: Shard | None
    n_files: int = 0

    @property
    def est_bytes(self) -> int:
        """Estimated decoded bytes of this run's tasks (from the index)."""
        return sum(t.stack.est_bytes for t in self.tasks)


def make_plan(
    scan: ScanResult,
    *,
    shard: Shard | None = None,
    deid: DeidSettings | None = None,
) -> Plan:
    """Turn a scan into a sorted plan of tasks, optionally keeping one shard.

    Parameters
    ----------
    scan : ScanResult
        What :func:`clisonix_cli.dicom.index.scan` found.
    shard : Shard or None
        Keep only the tasks whose study falls in this shard.
    deid : DeidSettings or None
        ``--deidentify``: keyed task ids, output names from the new UIDs (no
        description), messages that name no input file.

    Returns
    -------
    Plan
    """
    count = shard.count if shard else 1
    tasks = sorted(
        (_task(st, shard_of(st.study_uid, count), deid) for st in scan.stacks),
        key=lambda t: t.sort_key,
    )
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):  # two stacks with identical inputs: a scan bug
        raise ValueError("the scan returned two stacks with the same inputs")
    mine = tuple(t for t in tasks if shard is None or t.shard == shard.index)
    # Files set aside by the scan belong to no study: shard 0 reports them, so that a job
    # array flags one job for a damaged file rather than every one of its N jobs.
    reports_skipped = shard is None or shard.index == 0
    skipped = tuple(
        sorted(scan.skipped, key=lambda s: (s.path, s.code)) if reports_skipped else ()
    )
    return Plan(
        tasks=mine,
        skipped=skipped,
        n_total=len(tasks),
        shard=shard,
        n_files=scan.n_files,
    )


def _task(st: Stack, shard: int, deid: DeidSettings | None) -> Task:
    task_id = task_id_for(st)
    if deid is None:
        return Task(task_id=task_id, shard=shard, stack=st, out_stem=output_stem(st))
    from clisonix_cli.taskarray.deid_transform import deid_naming

    keyed_id, stem, label = deid_naming(st, deid, task_id)
    return Task(task_id=keyed_id, shard=shard, stack=st, out_stem=stem, label=label)


def plan_document(
    plan: Plan,
    *,
    fmt: str,
    pipeline: list[dict[str, Any]],
    pipeline_sha256: str,
    deid: DeidSettings | None = None,
) -> dict[str, Any]:
    """The ``--dry-run`` description of a plan (JSON-ready, deterministic).

    Parameters
    ----------
    plan : Plan
    fmt : str
        Output format.
    pipeline : list of dict
        Canonical pipeline.
    pipeline_sha256 : str
    deid : DeidSettings or None
        A de-identifying run: studies by their output folder (keyed), set-aside files by
        token, reasons without input paths.

    Returns
    -------
    dict
    """
    skipped = [
        {"path": s.path, "code": s.code, "reason": s.reason} for s in plan.skipped
    ]
    if deid is not None:
        skipped = [
            {
                "path": deid.file_token(s.path),
                "code": s.code,
                "reason": deid.scrub(s.reason, [s.path]),
            }
            for s in plan.skipped
        ]
    return {
        "dry_run": True,
        "format": fmt,
        "pipeline": pipeline,
        "pipeline_sha256": pipeline_sha256,
        "shard": plan.shard.label if plan.shard else None,
        "n_tasks_total": plan.n_total,
        "n_tasks": len(plan.tasks),
        "est_bytes": plan.est_bytes,
        "tasks": [
            {
                "task": t.task_id,
                "shard": t.shard,
                "study": short_hash(t.study_uid)
                if deid is None
                else t.out_stem.split("/", 1)[0],
                "series_number": t.stack.series_number,
                "stack_key": t.stack.stack_key,
                "modality": t.stack.modality,
                "n_files": len(t.stack.files),
                "shape": _shape(t.stack),
                "est_bytes": t.stack.est_bytes,
                "output": t.out_stem,
            }
            for t in plan.tasks
        ],
        "skipped": skipped,
    }


def _shape(stack: Stack) -> list[int]:
    dims = [stack.n_slices, stack.rows, stack.cols]
    return [stack.n_volumes, *dims] if stack.n_volumes > 1 else dims
