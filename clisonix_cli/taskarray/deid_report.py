"""The two documents a deid run writes besides its outputs.

- ``OUT/deid-report.json`` (``deid-report.shard-I-of-N.json`` with ``--shard``): what the
  run did, in counts: files written, withheld (by code, with the reason of each withheld
  file under its keyed token), failed and damaged; the actions taken per attribute; the
  profile, options and key fingerprint. No identifier of any kind: it may travel with the
  released data. Its bytes depend only on the inputs, the key and the options.
- ``--mapping FILE``: originals -> new identifiers (patients with their pseudonym and date
  offset, studies, series, instances and their files), for the data owner who must be able
  to re-identify. It is written outside OUT_DIR and IN_DIR, readable by its owner only.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clisonix_cli import __version__
from clisonix_cli.dicom.deid.index import DeidIndex
from clisonix_cli.dicom.deid.settings import DeidSettings
from clisonix_cli.errors import DeidPathError, by_code
from clisonix_cli.fsio import TMP_SUFFIX, atomic_write_bytes
from clisonix_cli.taskarray.config import Shard
from clisonix_cli.taskarray.plan import Plan

Record = dict[str, Any]


def report_name(part: str) -> str:
    """``deid-report.json`` for ``manifest.jsonl``, else with the shard's suffix."""
    return part.replace("manifest", "deid-report", 1).replace(".jsonl", ".json")


def report_document(
    out_dir: Path,
    part: str,
    settings: DeidSettings,
    records: Sequence[Record],
    skipped: Sequence[Record],
    index: DeidIndex,
) -> str:
    """Write the run's report next to its manifest part; return its file name."""
    files: Counter[str] = Counter()
    withheld: dict[str, dict[str, Any]] = {}
    actions: dict[str, Counter[str]] = {}
    for rec in records:
        for entry in rec.get("inputs") or []:
            status = entry.get("status", "not run")
            files[status] += 1
            if status == "withheld":
                code = str(entry.get("code"))
                slot = withheld.setdefault(code, {"count": 0, "files": []})
                slot["count"] += 1
                slot["files"].append(
                    {"file": entry["file"], "reason": entry.get("reason")}
                )
        for name, acts in (rec.get("actions") or {}).items():
            actions.setdefault(name, Counter()).update(acts)
    for code, slot in withheld.items():
        cls = by_code(code)
        slot["meaning"] = cls.summary if cls is not None else ""
        slot["files"].sort(key=lambda f: f["file"])
    doc = {
        "clisonix": __version__,
        "deidentification": settings.identity(),
        "method": settings.method_values(),
        "files": {
            "seen": index.n_files,
            "not_dicom": index.n_non_dicom,
            "damaged": len(skipped),
            "written": files["written"],
            "withheld": files["withheld"],
            "failed": files["failed"],
        },
        "tasks": {
            "total": len(records),
            "ok": sum(1 for r in records if r.get("status") == "ok"),
            "failed": sum(1 for r in records if r.get("status") == "failed"),
        },
        "withheld": dict(sorted(withheld.items())),
        "damaged": sorted(
            (
                {"file": r["inputs"][0]["file"], **(r.get("error") or {})}
                for r in skipped
            ),
            key=lambda d: str(d["file"]),
        ),
        "actions": {k: dict(sorted(v.items())) for k, v in sorted(actions.items())},
    }
    name = report_name(part)
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    atomic_write_bytes(out_dir / name, text.encode())
    return name


def mapping_path(path: Path, shard: Shard | None) -> Path:
    """``--mapping FILE`` of this run (``FILE.shard-I-of-N`` with ``--shard``)."""
    if shard is None:
        return path
    return path.with_name(f"{path.name}.shard-{shard.index}-of-{shard.count}")


def write_mapping(
    path: Path,
    shard: Shard | None,
    settings: DeidSettings,
    plan: Plan,
    records: Sequence[Record],
    index: DeidIndex,
) -> str:
    """Write originals -> new identifiers of this run's tasks as JSON Lines (mode 0600).

    Raises
    ------
    DeidPathError
        The file cannot be written.
    """
    from clisonix_cli.taskarray.deid_records import new_uid

    mapper = settings.mapper
    outputs = {
        entry["file"]: entry.get("output")
        for rec in records
        for entry in rec.get("inputs") or []
    }
    sop = {e.rel: e.sop_instance for e in index.entries}
    rows: list[dict[str, Any]] = []
    patients: set[str] = set()
    for task in plan.tasks:
        st = task.stack
        patient = str(getattr(task, "patient", ""))
        if patient not in patients:
            patients.add(patient)
            rows.append(
                {
                    "kind": "patient",
                    "original": patient,
                    "new": mapper.pseudonym(patient),
                    "date_offset_days": mapper.offset_days(patient)
                    if settings.profile.has("modified-dates")
                    else 0,
                }
            )
        rows.append(
            {
                "kind": "study",
                "original": st.study_uid,
                "new": new_uid(settings, st.study_uid),
            }
        )
        rows.append(
            {
                "kind": "series",
                "original": st.series_uid,
                "new": new_uid(settings, st.series_uid),
            }
        )
        for rel in st.files:
            token = settings.file_token(rel)
            rows.append(
                {
                    "kind": "file",
                    "original": rel,
                    "token": token,
                    "sop_instance_uid": sop.get(rel, ""),
                    "new_sop_instance_uid": new_uid(settings, sop.get(rel, "")),
                    "output": outputs.get(token),
                }
            )
    unique = {json.dumps(r, sort_keys=True): r for r in rows}
    text = "".join(k + "\n" for k in sorted(unique))
    final = mapping_path(path, shard)
    tmp = final.with_name(f".{final.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
    except OSError as exc:
        raise DeidPathError(
            f"--mapping {final}: cannot be written ({exc.strerror or exc})"
        ) from None
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    return str(final)
