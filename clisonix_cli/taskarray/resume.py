"""What an existing OUT_DIR means for a new run: conflicts, finished tasks, stale temp files.

A run's identity is its canonical pipeline hash and output format. OUT_DIR remembers the
identity of the runs that wrote it in ``OUT/.clisonix/run.json`` and in every manifest
record. Rules (``docs/transform.md``):

- Another identity in OUT_DIR: refuse (:class:`OutputConflictError`, exit 2) unless
  ``--overwrite``.
- A non-empty OUT_DIR that clisonix did not write: refuse unless ``--overwrite``.
- Same identity without ``--resume``: every task runs again and its outputs are replaced
  atomically. With ``--resume``: a task is skipped when its last record is ``ok`` for the same
  identity and clisonix version and every output it lists exists with the recorded size and
  digest; every other task runs.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from clisonix_cli import __version__
from clisonix_cli.digest import matches
from clisonix_cli.errors import ClisonixError, OutputConflictError
from clisonix_cli.fsio import (
    TMP_SUFFIX,
    atomic_write_bytes,
    check_no_links,
)
from clisonix_cli.taskarray.manifest import STATE_DIR, Record, is_manifest_name
from clisonix_cli.taskarray.plan import Task

IDENTITY_FILE = "run.json"

OutputState = Literal["ok", "missing", "changed", "outside"]


def run_identity(
    pipeline_sha256: str, fmt: str, deid_sha256: str | None = None
) -> dict[str, str]:
    """The identity of a run: what must match for outputs to be interchangeable.

    Parameters
    ----------
    pipeline_sha256 : str
    fmt : str
    deid_sha256 : str or None
        Hash of the de-identification settings (key fingerprint, options) when the run
        de-identifies: another key or profile is another run.

    Returns
    -------
    dict
    """
    ident = {"format": fmt, "pipeline_sha256": pipeline_sha256}
    if deid_sha256 is not None:
        ident["deid_sha256"] = deid_sha256
    return ident


def record_identity(record: Mapping[str, Any]) -> dict[str, str] | None:
    """The run identity a manifest record was written under (None for skipped files)."""
    if record.get("status") == "skipped":
        return None
    sha, fmt = record.get("pipeline_sha256"), record.get("format")
    if not isinstance(sha, str) or not isinstance(fmt, str):
        return None
    deid = record.get("deid_sha256")
    return run_identity(sha, fmt, deid if isinstance(deid, str) else None)


def read_identity(out_dir: Path) -> dict[str, Any] | None:
    """``OUT/.clisonix/run.json``, or None when absent or unreadable."""
    path = out_dir / STATE_DIR / IDENTITY_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_identity(
    out_dir: Path, identity: Mapping[str, str], pipeline: list[dict[str, Any]]
) -> None:
    """Write ``OUT/.clisonix/run.json`` atomically (same bytes for the same identity)."""
    doc = {**identity, "pipeline": pipeline}
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    atomic_write_bytes(out_dir / STATE_DIR / IDENTITY_FILE, data)


def check_output_dir(
    out_dir: Path,
    identity: Mapping[str, str],
    records: Mapping[str, Record],
    *,
    overwrite: bool,
) -> None:
    """Refuse to mix outputs of different runs in one folder.

    Parameters
    ----------
    out_dir : Path
    identity : dict
        This run's :func:`run_identity`.
    records : dict
        The merged manifest of ``out_dir``.
    overwrite : bool
        ``--overwrite``: accept the folder whatever it holds.

    Raises
    ------
    OutputConflictError
        Another pipeline or format wrote ``out_dir``, or it is a non-empty folder that
        clisonix did not write.
    """
    if overwrite or not out_dir.exists():
        return
    found: list[dict[str, str]] = []
    saved = read_identity(out_dir)
    if saved is not None:
        ident = record_identity({**saved, "status": "ok"})
        if ident is not None:
            found.append(ident)
    found.extend(i for r in records.values() if (i := record_identity(r)) is not None)
    for other in found:
        if dict(other) != dict(identity):
            raise OutputConflictError(
                f"{out_dir} holds outputs of another run (pipeline sha256 "
                f"{other['pipeline_sha256'][:12]}, format {other['format']}) than this one "
                f"(pipeline sha256 {identity['pipeline_sha256'][:12]}, format "
                f"{identity['format']}); use a new output folder, or --overwrite to "
                "replace them"
            )
    if found or records:
        return
    foreign = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.name != STATE_DIR and not p.name.startswith(".clisonix-probe.")
    )
    if foreign:
        raise OutputConflictError(
            f"{out_dir} is not empty ({len(foreign)} entries, e.g. {foreign[0]!r}) and "
            "holds no clisonix manifest; use a new or empty output folder, or "
            "--overwrite to write into it anyway"
        )


def output_path(out_dir: Path, rel: object) -> Path | None:
    """Where a manifest output lies, or None when its path is not one clisonix writes.

    A recorded path must be relative, in POSIX form, without ``..``, ``.`` or empty parts,
    and no part of it may be a symbolic link: anything else leaves OUT_DIR (or may) and is
    treated as tampering by ``verify`` and ``--resume``; such a path is never opened.

    Parameters
    ----------
    out_dir : Path
    rel : object
        The ``path`` of one output entry.

    Returns
    -------
    Path or None
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        return None
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    path = out_dir
    for part in parts:
        path = path / part
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return None
        except FileNotFoundError:
            break
        except OSError:
            return None
    return out_dir / rel


def output_state(out_dir: Path, output: Mapping[str, Any]) -> OutputState:
    """Compare an output recorded in the manifest with the file on disk.

    The one "output intact" check: ``--resume`` keeps a task whose outputs are all ``ok``,
    ``clisonix verify`` reports the others.

    Parameters
    ----------
    out_dir : Path
    output : dict
        One entry of a record's ``outputs``: ``path`` (relative to ``out_dir``), ``bytes``
        and ``digest`` (``"blake3:<hex>"``; records of earlier versions: ``sha256``, a
        bare hex value). The file is hashed with the algorithm the record names.

    Returns
    -------
    {"ok", "missing", "changed", "outside"}
        ``"ok"`` (same size and digest), ``"missing"`` (no such file, or no path
        recorded), ``"changed"`` (size or digest differ, no known digest recorded, or the
        file cannot be read) or
        ``"outside"`` (the path leaves OUT_DIR or passes a symbolic link: tampering, the
        file is not read; see :func:`output_path`).
    """
    rel = output.get("path")
    if rel is None:
        return "missing"
    path = output_path(out_dir, rel)
    if path is None:
        return "outside"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "changed"
    if not stat.S_ISREG(st.st_mode):
        return "changed"
    try:
        if st.st_size != output.get("bytes"):
            return "changed"
        recorded = output.get("digest", output.get("sha256"))
        return "ok" if matches(path, recorded) else "changed"
    except (OSError, ClisonixError):
        return "changed"


def tampered_outputs(records: Iterable[Mapping[str, Any]], out_dir: Path) -> list[str]:
    """Recorded output paths that leave OUT_DIR or pass a link (never read), sorted."""
    found = {
        str(o.get("path"))
        for rec in records
        for o in rec.get("outputs") or []
        if isinstance(o, Mapping) and output_path(out_dir, o.get("path")) is None
    }
    return sorted(found)


def is_done(
    record: Mapping[str, Any] | None, identity: Mapping[str, str], out_dir: Path
) -> bool:
    """True when a task's last record lets ``--resume`` skip it.

    Parameters
    ----------
    record : dict or None
        The task's last manifest record.
    identity : dict
        This run's identity.
    out_dir : Path

    Returns
    -------
    bool
    """
    if record is None or record.get("status") != "ok":
        return False
    if record_identity(record) != dict(identity):
        return False
    if (record.get("env") or {}).get("clisonix") != __version__:
        return False
    outputs = record.get("outputs") or []
    return bool(outputs) and all(output_state(out_dir, o) == "ok" for o in outputs)


def remove_stale_temps(
    out_dir: Path, tasks: Iterable[Task], manifest: str
) -> list[str]:
    """Delete temporary files (``*.clxtmp``) a killed run left behind, in this run's area.

    Only the study folders of ``tasks`` (a study belongs to one shard, so no concurrent
    shard writes there) and this run's manifest part are swept, and only regular files are
    deleted. The study folders are where the tasks write: a symbolic link anywhere in them
    (or a study folder that is one) stops the run before anything is written.

    Parameters
    ----------
    out_dir : Path
    tasks : iterable of Task
    manifest : str
        This run's manifest part name.

    Returns
    -------
    list of str
        Removed paths, relative to ``out_dir``, sorted.

    Raises
    ------
    OutputLinkError
        A study folder of ``tasks``, or anything inside one, is a symbolic link (exit 3).
    """
    removed: list[str] = []
    folders = sorted({t.out_stem.split("/", 1)[0] for t in tasks})
    check_no_links(out_dir, folders)
    for folder in folders:
        base = out_dir / folder
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):  # links are not followed
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(dirpath) / name
                mode = os.lstat(path).st_mode
                if stat.S_ISLNK(mode):
                    check_no_links(out_dir, [path.relative_to(out_dir).as_posix()])
                if name.endswith(TMP_SUFFIX) and stat.S_ISREG(mode):
                    path.unlink(missing_ok=True)
                    removed.append(path.relative_to(out_dir).as_posix())
    if out_dir.is_dir():
        prefix = f".{manifest}."
        for p in sorted(out_dir.iterdir()):
            if (
                p.name.startswith(prefix)
                and p.name.endswith(TMP_SUFFIX)
                and stat.S_ISREG(os.lstat(p).st_mode)
            ):
                p.unlink(missing_ok=True)
                removed.append(p.name)
    return sorted(removed)


#: The de-identification report of a run (``deid-report.json``, or one per shard).
DEID_REPORT = re.compile(r"^deid-report(\.shard-\d+-of-\d+)?\.json$")


def owned_name(name: str) -> bool:
    """True for top-level names a clisonix run writes besides study folders."""
    return name == STATE_DIR or is_manifest_name(name) or bool(DEID_REPORT.match(name))
