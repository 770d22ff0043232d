"""The manifest: one JSON record per task, in JSON Lines, in OUT_DIR.

``OUT/manifest.jsonl`` (``OUT/manifest.shard-I-of-N.jsonl`` with ``--shard I/N``) gets one
line appended, flushed and fsynced as each task finishes, so a killed run keeps every record
it finished. At the end of a run the part is rewritten (atomically) with one record per task
in plan order, so the same inputs and pipeline give the same manifest bytes whatever the
backend, the number of jobs or the order in which tasks finished. Readers merge every part:
the last record of a task wins. Records carry no timings and no timestamps (those go to
``OUT/.clisonix/run-log*.jsonl``) and no patient identifiers. Fields: ``docs/manifest.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from clisonix_cli.dicom.model import Skipped
from clisonix_cli.fsio import atomic_write_bytes, open_append
from clisonix_cli.taskarray.config import Shard

MANIFEST = "manifest.jsonl"
_PART = re.compile(r"^manifest\.shard-(\d+)-of-(\d+)\.jsonl$")
#: Folder for run state that is not an output: identity, run logs.
STATE_DIR = ".clisonix"

Record = dict[str, Any]


def manifest_name(shard: Shard | None) -> str:
    """File name of the manifest part a run writes.

    Parameters
    ----------
    shard : Shard or None

    Returns
    -------
    str
        ``manifest.jsonl`` or ``manifest.shard-I-of-N.jsonl``.
    """
    if shard is None:
        return MANIFEST
    return f"manifest.shard-{shard.index}-of-{shard.count}.jsonl"


def is_manifest_name(name: str) -> bool:
    """True for ``manifest.jsonl`` and ``manifest.shard-I-of-N.jsonl``."""
    return name == MANIFEST or _PART.match(name) is not None


def manifest_parts(out_dir: Path) -> list[Path]:
    """Every manifest part in ``out_dir``, in merge order.

    ``manifest.jsonl`` first, then the shard parts sorted by (N, I).

    Parameters
    ----------
    out_dir : Path

    Returns
    -------
    list of Path
    """
    if not out_dir.is_dir():
        return []
    parts: list[tuple[tuple[int, int], Path]] = []
    for p in out_dir.iterdir():
        if p.name == MANIFEST:
            parts.append(((0, -1), p))
        elif m := _PART.match(p.name):
            parts.append(((int(m.group(2)), int(m.group(1))), p))
    return [p for _, p in sorted(parts)]


def dumps_record(record: Mapping[str, Any]) -> str:
    """One record as one line of canonical JSON (sorted keys, no spaces, ASCII only)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def read_records(path: Path) -> list[Record]:
    """Records of one manifest part, in file order.

    A line that is not a JSON object (the torn last line of a killed run) is ignored.

    Parameters
    ----------
    path : Path

    Returns
    -------
    list of dict
    """
    out: list[Record] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("task"), str):
                out.append(rec)
    return out


def record_sort_key(record: Mapping[str, Any]) -> tuple[int, str, str, str, str]:
    """Plan order for records: tasks by (study, series, stack key, id), then skipped files."""
    if record.get("status") == "skipped" and not record.get("series_uid"):
        inputs = record.get("inputs") or [""]
        return (1, str(inputs[0]), "", "", str(record["task"]))
    return (
        0,
        str(record.get("study_uid", "")),
        str(record.get("series_uid", "")),
        str(record.get("stack_key", "")),
        str(record["task"]),
    )


def merge_records(parts: Iterable[Path]) -> dict[str, Record]:
    """Merge manifest parts: the last record of each task wins.

    Parameters
    ----------
    parts : iterable of Path
        In merge order (see :func:`manifest_parts`).

    Returns
    -------
    dict
        Task id -> record, in plan order (:func:`record_sort_key`).
    """
    merged: dict[str, Record] = {}
    for part in parts:
        for rec in read_records(part):
            merged[rec["task"]] = rec
    return {r["task"]: r for r in sorted(merged.values(), key=record_sort_key)}


def read_manifest(out_dir: Path) -> dict[str, Record]:
    """Merged view of every manifest part in ``out_dir`` (see :func:`merge_records`)."""
    return merge_records(manifest_parts(out_dir))


def skipped_record(skipped: Skipped) -> Record:
    """Manifest record of a file the scan set aside (not DICOM, no pixels, damaged).

    Its id is ``"f"`` + 16 hex digits of sha256 of the relative path.

    Parameters
    ----------
    skipped : Skipped

    Returns
    -------
    dict
    """
    import hashlib

    digest = hashlib.sha256(skipped.path.encode("utf-8")).hexdigest()[:16]
    return {
        "task": "f" + digest,
        "status": "skipped",
        "error": {"code": skipped.code, "message": " ".join(skipped.reason.split())},
        "inputs": [skipped.path],
        "outputs": [],
    }


class ManifestWriter:
    """Appends records to one manifest part; each line is flushed and fsynced.

    Parameters
    ----------
    path : Path
        The part this run owns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = open_append(path)  # never through a link

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record as one line, then flush and fsync."""
        if self._fh is None:
            raise ValueError(f"{self.path.name}: the manifest writer is closed")
        self._fh.write(dumps_record(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_compacted(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace a manifest part atomically with ``records``, one per task, in plan order.

    Parameters
    ----------
    path : Path
    records : iterable of dict
        At most one per task id (later ones win).
    """
    by_id: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        by_id[str(rec["task"])] = rec
    ordered = sorted(by_id.values(), key=record_sort_key)
    atomic_write_bytes(path, "".join(dumps_record(r) + "\n" for r in ordered).encode())
