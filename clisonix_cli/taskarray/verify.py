"""``clisonix verify``: re-hash every output against the merged manifest.

Reports outputs that are missing, changed (size or digest differ from the record) and extra
(files under OUT_DIR that no record lists, leftover temporary files included). The
manifest parts and ``OUT/.clisonix/`` are not outputs. A record whose output path leaves
OUT_DIR (``../``, an absolute path) or passes a symbolic link is reported as tampered and
never opened: ``verify`` cannot be used to test whether a file exists elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clisonix_cli.errors import ManifestTamperedError, UsageError, VerifyMismatchError
from clisonix_cli.taskarray.manifest import manifest_parts, merge_records
from clisonix_cli.taskarray.resume import output_state, owned_name


@dataclass
class VerifyReport:
    """What :func:`verify` found; every list holds paths relative to OUT_DIR, sorted."""

    out_dir: Path
    manifests: list[str]
    checked: int = 0
    tasks_ok: int = 0
    tasks_failed: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, changed, extra or tampered."""
        return not (self.missing or self.changed or self.extra or self.tampered)

    @property
    def exit_code(self) -> int:
        """0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    def problems(self) -> list[VerifyMismatchError]:
        """One error per bad file: tampered, then missing, changed, extra (path order)."""
        out: list[VerifyMismatchError] = [
            ManifestTamperedError(
                f"{p}: tampered - a manifest record names this output, which leaves "
                "OUT_DIR or passes a symbolic link; not read - the manifest was edited "
                "or the folder changed: rerun the transform into a new folder"
            )
            for p in self.tampered
        ]
        out += [
            VerifyMismatchError(f"{p}: missing - listed in the manifest, not on disk")
            for p in self.missing
        ]
        out += [
            VerifyMismatchError(
                f"{p}: changed - size or digest differs from the manifest; the file was "
                "modified or damaged after it was written: rerun with --resume to redo it"
            )
            for p in self.changed
        ]
        out += [
            VerifyMismatchError(f"{p}: extra - no manifest record lists this file")
            for p in self.extra
        ]
        return out

    def document(self) -> dict[str, Any]:
        """The ``--json`` document (deterministic)."""
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "manifests": self.manifests,
            "checked": self.checked,
            "tasks_ok": self.tasks_ok,
            "tasks_failed": self.tasks_failed,
            "missing": self.missing,
            "changed": self.changed,
            "extra": self.extra,
            "tampered": self.tampered,
        }


def verify(out_dir: Path) -> VerifyReport:
    """Check every output listed in OUT_DIR's manifests.

    Parameters
    ----------
    out_dir : Path

    Returns
    -------
    VerifyReport

    Raises
    ------
    UsageError
        OUT_DIR is not a folder or holds no manifest (exit 2).
    """
    if not out_dir.is_dir():
        raise UsageError(
            f"{out_dir}: not a folder; give the OUT_DIR of a transform run"
        )
    parts = manifest_parts(out_dir)
    if not parts:
        raise UsageError(
            f"{out_dir}: no manifest.jsonl or manifest.shard-I-of-N.jsonl here; give the "
            "OUT_DIR of a transform run"
        )
    records = merge_records(parts)
    report = VerifyReport(out_dir=out_dir, manifests=[p.name for p in parts])
    expected: dict[str, dict[str, Any]] = {}
    for rec in records.values():
        if rec.get("status") == "ok":
            report.tasks_ok += 1
        elif rec.get("status") == "failed":
            report.tasks_failed += 1
        for out in rec.get("outputs") or []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                expected[out["path"]] = out
    for rel in sorted(expected):
        report.checked += 1
        state = output_state(out_dir, expected[rel])
        if state == "outside":
            report.tampered.append(rel)
        elif state == "missing":
            report.missing.append(rel)
        elif state == "changed":
            report.changed.append(rel)
    report.extra = [rel for rel in _all_files(out_dir) if rel not in expected]
    return report


def _all_files(out_dir: Path) -> list[str]:
    """Every file under OUT_DIR except the manifests and ``.clisonix/``, sorted."""
    found: list[str] = []
    base = os.path.abspath(out_dir)
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if not owned_name(d)]
            filenames = [f for f in filenames if not owned_name(f)]
        dirnames.sort()
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found.append(Path(rel).as_posix())
    return sorted(found)
