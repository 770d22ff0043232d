"""The two ends of QC around the task array: what a task measures, what the driver writes.

- :class:`QcTaskOptions` travels with every task (:class:`TaskContext.qc`); a task calls
  :func:`task_part` with the sample it read (or lets it read one) and puts the result under
  ``"qc"`` in its record.
- :class:`QcOptions` is the driver's side: :func:`prepare` checks the key and the baseline
  before anything runs (exit 2), :func:`finish` builds ``qc.json``, ``qc.csv`` and
  ``report.html`` from the records in plan order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clisonix_cli.dicom.model import Stack
from clisonix_cli.errors import ClisonixError, UsageError
from clisonix_cli.qc.assess import FAIL_ON, Row, assess
from clisonix_cli.qc.document import load_baseline, write_outputs
from clisonix_cli.qc.headers import (
    group_key,
    key_id,
    kind_of,
    load_key,
    protocol_key,
)
from clisonix_cli.qc.measure import (
    geometry_of,
    measure_series,
    rounded,
    series_header,
)
from clisonix_cli.qc.report import render
from clisonix_cli.qc.sample import EVERY, MAX_SLICES, MIN_SLICES, Sample, read_sample


@dataclass(frozen=True)
class QcTaskOptions:
    """What a task needs for QC: the station key (or None) and whether to leave the
    series description out of its record."""

    key: bytes | None = None
    deidentify: bool = False


@dataclass(frozen=True)
class QcOptions:
    """The driver's QC options (``--baseline``, ``--key-file``, ``--fail-on``, ...)."""

    baseline: Path | None = None
    key_file: Path | None = None
    fail_on: str = "fail"
    deidentify: bool = False

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON:
            raise UsageError(
                f"--fail-on {self.fail_on!r}: choose one of {', '.join(FAIL_ON)}"
            )


@dataclass(frozen=True)
class Prepared:
    """Checked QC inputs: the task options, the baseline document, the settings."""

    task: QcTaskOptions
    baseline: dict[str, Any] | None
    settings: dict[str, Any]
    options: QcOptions


def prepare(options: QcOptions) -> Prepared:
    """Read the key and the baseline (before any task runs).

    Raises
    ------
    QcKeyError, BaselineError, BaselineKeyMismatchError
        Exit 2: nothing was done.
    """
    key = load_key(options.key_file) if options.key_file else None
    kid = key_id(key)
    baseline = load_baseline(options.baseline, kid) if options.baseline else None
    settings = {
        "deidentify": options.deidentify,
        "fail_on": options.fail_on,
        "key_id": kid,
        "sample": f"1 in {EVERY} slices, {MIN_SLICES} to {MAX_SLICES}",
    }
    return Prepared(QcTaskOptions(key, options.deidentify), baseline, settings, options)


def task_part(
    root: Path, stack: Stack, opts: QcTaskOptions, sample: Sample | None = None
) -> dict[str, Any]:
    """The ``"qc"`` part of a task's record; never raises for the series' own faults.

    Parameters
    ----------
    root : Path
        The input folder.
    stack : Stack
    opts : QcTaskOptions
    sample : Sample or None
        The slices the task already holds; None reads them (``clisonix qc``).

    Returns
    -------
    dict
        :func:`~clisonix_cli.qc.measure.measure_series`'s result plus the protocol and
        description, or, when the pixels cannot be read or measured, the header and
        geometry with ``"error": {"code", "message"}``.
    """
    header = series_header(root, stack, opts.key)
    try:
        if sample is None:
            sample = read_sample(root, stack)
        part = measure_series(sample, stack, header)
    except ClisonixError as exc:
        part = _error_part(stack, header, exc)
    return _labelled(part, stack, header, opts)


def failed_part(
    root: Path, stack: Stack, opts: QcTaskOptions, err: ClisonixError
) -> dict[str, Any]:
    """The ``"qc"`` part of a task that failed before QC could see its pixels."""
    header = series_header(root, stack, opts.key)
    return _labelled(_error_part(stack, header, err), stack, header, opts)


def _error_part(
    stack: Stack, header: dict[str, Any], err: ClisonixError
) -> dict[str, Any]:
    part: dict[str, Any] = rounded(
        {
            "kind": kind_of(stack.modality),
            "modality": stack.modality,
            "metrics": {},
            "geometry": geometry_of(stack, None),
            "header": header,
            "thumbnail": None,
            "error": {"code": err.code, "message": err.message},
        }
    )
    return part


def _labelled(
    part: dict[str, Any], stack: Stack, header: dict[str, Any], opts: QcTaskOptions
) -> dict[str, Any]:
    group, _ = group_key(stack.modality, header)
    part["protocol"] = protocol_key(group, header, stack.series_description, opts.key)
    if not opts.deidentify:
        part["description"] = stack.series_description
    return part


def finish(
    out_dir: Path,
    rows: Sequence[Row],
    prepared: Prepared,
    skipped: Mapping[str, int] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Assess the batch and write ``qc.json``, ``qc.csv`` and ``report.html``.

    Returns
    -------
    (dict, dict)
        The document and the sha256 of each file written.
    """
    doc = assess(
        rows,
        baseline=prepared.baseline,
        deidentify=prepared.options.deidentify,
        fail_on=prepared.options.fail_on,
        settings=prepared.settings,
        skipped=skipped,
    )
    thumbs: Mapping[str, str] = {
        r.task: str(r.qc["thumbnail"]) for r in rows if r.qc.get("thumbnail")
    }
    return doc, write_outputs(out_dir, doc, render(doc, thumbs))
