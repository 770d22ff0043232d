"""Reading a baseline ``qc.json``; writing ``qc.json``, ``qc.csv`` and ``report.html``.

Every file is written atomically (temporary name, then rename) with bytes that depend only
on the document: sorted keys, fixed float text, no time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clisonix_cli.errors import (
    BaselineError,
    BaselineKeyMismatchError,
    EnvironmentProblem,
)
from clisonix_cli.fsio import atomic_write_bytes
from clisonix_cli.qc.assess import FORMAT, VERSION
from clisonix_cli.qc.headers import compared_fields
from clisonix_cli.qc.measure import METRICS

FILES = ("qc.json", "qc.csv", "report.html")


def load_baseline(path: Path, key_id: str | None) -> dict[str, Any]:
    """Read and check a baseline ``qc.json``.

    Parameters
    ----------
    path : Path
    key_id : str or None
        Fingerprint of this run's station key (:func:`clisonix_cli.qc.headers.key_id`).

    Raises
    ------
    BaselineError
        Unreadable, not JSON, or not a ``qc.json`` of this format version (exit 2).
    BaselineKeyMismatchError
        Made with another station key, or with none where this run has one (exit 2).
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(
            f"--baseline {path}: cannot read it ({exc.strerror or exc}); give the "
            "qc.json of an earlier `clisonix qc` or `transform --qc` run"
        ) from None
    except ValueError as exc:
        raise BaselineError(f"--baseline {path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BaselineError(
            f'--baseline {path}: not a clisonix qc.json (no "format": "{FORMAT}")'
        )
    if doc.get("version") != VERSION or not isinstance(doc.get("series"), list):
        raise BaselineError(
            f"--baseline {path}: qc.json version {doc.get('version')!r}, this clisonix "
            f"reads version {VERSION}; run QC on the baseline data again"
        )
    theirs = (doc.get("settings") or {}).get("key_id")
    if theirs != key_id:
        raise BaselineKeyMismatchError(
            f"--baseline {path}: station names were hashed with "
            f"{'key ' + theirs if theirs else 'no key'}, this run with "
            f"{'key ' + key_id if key_id else 'no key'}; give the same --key-file to both"
        )
    return doc


def json_bytes(doc: Mapping[str, Any]) -> bytes:
    """The document as written: indented, sorted keys, newline at the end."""
    return (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def csv_bytes(doc: Mapping[str, Any]) -> bytes:
    """One row per series: identifiers, status, reasons, every metric, compared fields."""
    series = doc.get("series", [])
    kinds = sorted({s.get("kind", "other") for s in series})
    metrics = list(dict.fromkeys(m for k in kinds for m in METRICS.get(k, ())))
    fields = list(dict.fromkeys(f for k in kinds for f in compared_fields(k)))
    head = ["task", "series_number", "stack_key", "modality", "description", "group",
            "protocol", "status", "reasons", *metrics, *fields]  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for s in series:
        codes = ";".join(dict.fromkeys(r["code"] for r in s.get("reasons", [])))
        row = [s.get("task"), s.get("series_number"), s.get("stack_key"),
               s.get("modality"), s.get("description", ""), s.get("group"),
               s.get("protocol"), s.get("status"), codes]  # fmt: skip
        row += [_cell((s.get("metrics") or {}).get(m)) for m in metrics]
        row += [_cell((s.get("header") or {}).get(f)) for f in fields]
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return value


def write_outputs(out_dir: Path, doc: Mapping[str, Any], html: str) -> dict[str, str]:
    """Write the three files into ``out_dir``; returns {name: sha256}.

    Raises
    ------
    EnvironmentProblem
        A file cannot be written (exit 3).
    """
    data = {
        "qc.json": json_bytes(doc),
        "qc.csv": csv_bytes(doc),
        "report.html": html.encode("utf-8"),
    }
    for name, blob in data.items():
        try:
            atomic_write_bytes(out_dir / name, blob)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot write {out_dir / name} ({exc.strerror or exc}); check free "
                "space and permissions"
            ) from None
    return {name: hashlib.sha256(blob).hexdigest() for name, blob in data.items()}
