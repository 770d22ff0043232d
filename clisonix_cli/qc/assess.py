"""From measured series to the QC document: groups, consistency, drift, statuses.

The driver hands over one row per task (what :func:`clisonix_cli.qc.measure.measure_series`
returned, or the task's error); :func:`assess` groups the series by scanner and protocol,
checks header consistency, compares each group with the baseline (drift) and each series
with its reference group (outliers), and gives every series its status and reasons.
Everything is in plan order, so the same inputs give the same document.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clisonix_cli import __version__
from clisonix_cli.errors import by_code
from clisonix_cli.qc import drift
from clisonix_cli.qc.headers import (
    FIELDS,
    NUMERIC,
    category,
    compared_fields,
    group_key,
)
from clisonix_cli.qc.measure import METRICS, rounded
from clisonix_cli.qc.rules import (
    outlier_rule,
    own_rules,
    reason,
    robust_ref,
    status_of,
)

FORMAT = "clisonix-qc"
VERSION = 1
#: Header fields that should not change within a protocol (header consistency, new
#: categories and categorical drift); dose and pixel-grid fields vary with the patient.
PROTOCOL_FIELDS: dict[str, tuple[str, ...]] = {
    "ct": ("SoftwareVersions", "KVP", "ConvolutionKernel", "SliceThickness"),
    "mr": ("SoftwareVersions", *FIELDS["mr"]),  # every MR field is the protocol's
    "xr": ("SoftwareVersions",),
    "other": ("SoftwareVersions", "SliceThickness"),
}
#: A protocol group needs this many series before its mode says anything.
MIN_CONSISTENCY = 3
#: Reference groups for outliers: at least this many baseline series, else this many in
#: the batch itself.
MIN_REF_BASELINE, MIN_REF_BATCH = 3, 5
FAIL_ON = ("warn", "fail", "drift")


@dataclass(frozen=True)
class Row:
    """One task as the driver saw it: id, identifiers, QC part, task error."""

    task: str
    series_number: int | None
    stack_key: str
    qc: Mapping[str, Any]
    error: Mapping[str, Any] | None = None
    manifest: str | None = None


def drift_kinds(kind: str) -> dict[str, str]:
    """Monitored columns of a modality kind: metrics and dose fields (numbers), protocol
    fields (categories)."""
    cols = {m: "numeric" for m in METRICS.get(kind, ())}
    cols.update({f: "numeric" for f in compared_fields(kind) if f in NUMERIC})
    cols.update({f: "categorical" for f in PROTOCOL_FIELDS.get(kind, ())})
    return cols


def column(series: Mapping[str, Any], name: str, kind: str) -> Any:
    """A series' value of a drift column (a metric, a number or a category)."""
    if name in (series.get("metrics") or {}):
        return series["metrics"][name]
    val = (series.get("header") or {}).get(name)
    if kind == "numeric":
        return float(val) if isinstance(val, int | float) else None
    return category(val) if val is not None else "(absent)"


def _series(row: Row, deidentify: bool) -> dict[str, Any]:
    q = dict(row.qc)
    header = dict(q.get("header") or {})
    modality = str(q.get("modality") or "")
    group, _ = group_key(modality, header)
    rec: dict[str, Any] = {
        "task": row.task,
        "series_number": row.series_number,
        "stack_key": row.stack_key,
        "modality": modality,
        "kind": q.get("kind", "other"),
    }
    if not deidentify:
        rec["description"] = q.get("description", "")
    err = row.error or q.get("error")
    rec.update(
        group=group,
        protocol=q.get("protocol", group + "/p-none"),
        metrics=q.get("metrics") or {},
        geometry=q.get("geometry") or {},
        header=header,
        error=None
        if not err
        else {"code": err.get("code"), "summary": _summary(err.get("code"))},
        manifest=row.manifest,
    )
    return rec


def _summary(code: Any) -> str:
    cls = by_code(str(code)) if code else None
    return cls.summary if cls is not None else "unknown error"


def _consistency(members: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Per compared header field: the mode, how many share it, and the others."""
    fields = []
    for f in compared_fields(kind):
        values = [category(m["header"].get(f)) or "(absent)" for m in members]
        counts = Counter(values)
        mode, n_mode = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        fields.append(
            {
                "field": f,
                "mode": mode,
                "n_mode": n_mode,
                "n": len(values),
                "values": dict(sorted(counts.items())),
                "outliers": [
                    {"task": m["task"], "value": v}
                    for m, v in zip(members, values, strict=True)
                    if v != mode
                ],
            }
        )
    return fields


def _baseline_groups(
    baseline: Mapping[str, Any] | None,
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in (baseline or {}).get("series", []):
        if s.get("metrics"):
            out[str(s.get("group"))].append(s)
    return out


def assess(
    rows: Sequence[Row],
    *,
    baseline: Mapping[str, Any] | None = None,
    deidentify: bool = False,
    fail_on: str = "fail",
    settings: Mapping[str, Any] | None = None,
    skipped: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Build the QC document (``qc.json``) of a batch.

    Parameters
    ----------
    rows : sequence of Row
        One per task, in plan order.
    baseline : mapping or None
        A previous ``qc.json`` (already validated by
        :func:`clisonix_cli.qc.document.load_baseline`).
    deidentify : bool
        Leave series descriptions out.
    fail_on : {"warn", "fail", "drift"}
        What makes ``exit_code`` 1 (see ``docs/qc.md``).
    settings : mapping or None
        Recorded as they are under ``settings``.
    skipped : mapping or None
        Files the scan set aside, counted by error code (no paths: they may name people).

    Returns
    -------
    dict
        JSON-ready; floats rounded, no thumbnails (the report adds those).
    """
    series = [_series(r, deidentify) for r in rows]
    base = _baseline_groups(baseline)
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in series:
        by_group[s["group"]].append(s)
    reasons: dict[str, list[dict[str, str]]] = {s["task"]: [] for s in series}
    for s in series:
        if s["error"]:
            reasons[s["task"]].append(
                reason("QC-UNREADABLE", "fail", f"error {s['error']['code']}")
            )
        reasons[s["task"]] += own_rules(s["kind"], s["metrics"], s["geometry"])
    groups = []
    for gid in sorted(by_group):
        members = by_group[gid]
        groups.append(
            _group(gid, members, base.get(gid), baseline is not None, reasons)
        )
    for s in series:
        s["reasons"] = reasons[s["task"]]
        s["status"] = status_of(s["reasons"])
    counts = Counter(s["status"] for s in series)
    drifted = [g["group"] for g in groups if (g.get("drift") or {}).get("drifted")]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "clisonix": __version__,
        "settings": dict(settings or {}),
        "baseline": None
        if baseline is None
        else {
            "series": len(baseline.get("series", [])),
            "groups": len(base),
            "key_id": (baseline.get("settings") or {}).get("key_id"),
        },
        "summary": {
            "series": len(series),
            "pass": counts.get("pass", 0),
            "warn": counts.get("warn", 0),
            "fail": counts.get("fail", 0),
            "groups": len(groups),
            "drifted_groups": drifted,
            "skipped_files": dict(sorted((skipped or {}).items())),
        },
        "exit_code": exit_code(counts, bool(drifted), fail_on),
        "groups": groups,
        "series": series,
    }
    return rounded(doc)  # type: ignore[no-any-return]


def exit_code(counts: Mapping[str, int], drifted: bool, fail_on: str) -> int:
    """1 when the batch fails the ``--fail-on`` level, else 0."""
    if drifted:
        return 1
    if fail_on == "fail":
        return int(counts.get("fail", 0) > 0)
    if fail_on == "warn":
        return int(counts.get("fail", 0) + counts.get("warn", 0) > 0)
    return 0


def _group(
    gid: str,
    members: list[dict[str, Any]],
    base: list[dict[str, Any]] | None,
    have_baseline: bool,
    reasons: dict[str, list[dict[str, str]]],
) -> dict[str, Any]:
    kind = Counter(m["kind"] for m in members).most_common(1)[0][0]
    _, parts = group_key(members[0]["modality"], members[0]["header"])
    # Header consistency per protocol within the scanner group.
    protocols = []
    by_protocol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in members:
        by_protocol[m["protocol"]].append(m)
    for pid in sorted(by_protocol):
        pm = by_protocol[pid]
        fields = _consistency(pm, kind)
        protocols.append({"protocol": pid, "n_series": len(pm), "fields": fields})
        if len(pm) < MIN_CONSISTENCY:
            continue
        for f in fields:
            if (
                f["field"] not in PROTOCOL_FIELDS.get(kind, ())
                or f["n_mode"] * 2 <= f["n"]
            ):
                continue
            for o in f["outliers"]:
                reasons[o["task"]].append(
                    reason(
                        "QC-HEADER", "warn", f"{f['field']} {o['value']} vs {f['mode']}"
                    )
                )
    out: dict[str, Any] = {
        "group": gid,
        "kind": kind,
        "scanner": parts,
        "n_series": len(members),
        "in_baseline": bool(base),
        "protocols": protocols,
        "drift": None,
    }
    kinds = drift_kinds(kind)
    # Outliers: against the baseline group, else against the batch's own group.
    ref_members = base if base and len(base) >= MIN_REF_BASELINE else (
        members if len(members) >= MIN_REF_BATCH else None)  # fmt: skip
    out["outlier_reference"] = (
        "baseline"
        if ref_members is base and base
        else ("batch" if ref_members else None)
    )
    refs = {}
    for metric in METRICS.get(kind, ()):
        vals = [m["metrics"].get(metric) for m in ref_members or []]
        ref = robust_ref([v for v in vals if v is not None], metric)
        if ref is not None:
            refs[metric] = {"median": ref[0], "scale": ref[1]}
            for m in members:
                v = m["metrics"].get(metric)
                r = outlier_rule(metric, v, ref) if v is not None else None
                if r is not None:
                    reasons[m["task"]].append(r)
    out["reference"] = refs
    out["baseline_range"] = _ranges(base or [], kind)
    if not have_baseline:
        return out
    if not base:
        for m in members:
            reasons[m["task"]].append(
                reason("QC-NEW-GROUP", "warn", f"{gid} has no series in the baseline")
            )
        return out
    for name in PROTOCOL_FIELDS.get(kind, ()):
        seen = {column(b, name, "categorical") for b in base}
        for m in members:
            v = column(m, name, "categorical")
            if v not in seen:
                reasons[m["task"]].append(
                    reason(
                        "QC-NEW-CATEGORY", "warn", f"{name} {v} never in the baseline"
                    )
                )
    ref_cols = {c: [column(b, c, k) for b in base] for c, k in kinds.items()}
    cur_cols = {c: [column(m, c, k) for m in members] for c, k in kinds.items()}
    out["drift"] = drift.group_drift(ref_cols, cur_cols, kinds)
    return out


def _ranges(base: list[dict[str, Any]], kind: str) -> dict[str, list[float]]:
    """Per metric, [min, median, max] of the baseline group (the report's bands)."""
    import numpy as np

    out = {}
    for metric in METRICS.get(kind, ()):
        vals = [b["metrics"].get(metric) for b in base]
        v = [x for x in vals if x is not None]
        if v:
            out[metric] = [float(min(v)), float(np.median(v)), float(max(v))]
    return out
