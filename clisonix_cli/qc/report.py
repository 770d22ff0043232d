"""``report.html``: one self-contained page (inline CSS, SVG, PNG and script; nothing is
fetched), the same bytes for the same document.

Sections: summary, series tables per modality (thumbnail, status, reasons, metrics), a
strip plot per metric, header consistency per scanner group and protocol, drift per group.
Series appear by task id (and description unless ``--deidentify``); the document holds no
patient name or ID to show.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from clisonix_cli.qc.measure import METRICS
from clisonix_cli.qc.plots import strip_plot
from clisonix_cli.qc.rules import REASONS

KIND_NAMES = {"ct": "CT", "mr": "MR", "xr": "X-ray", "other": "Other"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}table.sortable th{cursor:pointer}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2e7d32;font-weight:600}.warn{color:#ef6c00;font-weight:600}
.fail{color:#c62828;font-weight:600}
img.thumb{width:64px;height:64px;image-rendering:pixelated;background:#000}
td.reasons{min-width:340px}td.reasons b{white-space:nowrap}
.plots{display:flex;flex-wrap:wrap;gap:4px 24px}.plots figure{margin:0}
.plots figcaption{font-weight:600;font-size:13px}
svg.strip{display:block;margin:2px 0 12px}svg .lab{font-size:11px;fill:#333}
svg .tick{font-size:10px;fill:#555;text-anchor:middle}svg .grid{stroke:#eee}
svg .axis{stroke:#999}svg .band{fill:#90caf9;fill-opacity:.45}
svg .median{stroke:#1565c0;stroke-width:2}
.small{font-size:12px;color:#555}
"""

_JS = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-v');
    if (v === null) { v = cell.textContent; }
    var n = parseFloat(v);
    return isNaN(n) ? [1, v.toLowerCase()] : [0, n];
  }
  function cmp(a, b) {
    if (a[0] !== b[0]) { return a[0] - b[0]; }
    return a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.querySelectorAll('thead th');
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains('asc');
        Array.prototype.forEach.call(heads, function (h) {
          h.classList.remove('asc'); h.classList.remove('desc');
        });
        th.classList.add(asc ? 'asc' : 'desc');
        rows.sort(function (a, b) {
          var r = cmp(key(a.cells[col]), key(b.cells[col]));
          return asc ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def _num(v: Any) -> str:
    if v is None:
        return '<td class="num" data-v="">-</td>'
    if isinstance(v, float):
        return f'<td class="num" data-v="{v!r}">{v:.4g}</td>'
    return f'<td class="num" data-v="{escape(str(v))}">{escape(str(v))}</td>'


def _cell(v: Any) -> str:
    if v is None:
        return "<td>-</td>"
    if isinstance(v, list):
        v = "\\".join(str(x) for x in v)
    return f"<td>{escape(str(v))}</td>"


def _table(head: list[str], rows: list[str], *, cls: str = "sortable") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    return (
        f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def _summary(doc: Mapping[str, Any]) -> str:
    s = doc["summary"]
    base = doc.get("baseline")
    drifted = ", ".join(s["drifted_groups"]) or "none"
    parts = [
        "<p>",
        (
            f"{s['series']} series: <span class=pass>{s['pass']} pass</span>, "
            f"<span class=warn>{s['warn']} warn</span>, "
            f"<span class=fail>{s['fail']} fail</span>; {s['groups']} scanner group(s); "
            f"drifted groups: {escape(drifted)}; exit code {doc['exit_code']}."
        ),
        "</p>",
        '<p class="small">',
        "Baseline: "
        + (
            f"{base['series']} series in {base['groups']} group(s)."
            if base
            else "none (outliers are judged within this batch)."
        ),
        " Settings: "
        + escape(", ".join(f"{k}={v}" for k, v in sorted(doc["settings"].items())))
        + ". clisonix "
        + escape(str(doc["clisonix"]))
        + ".</p>",
    ]
    return "".join(parts)


def _series_tables(doc: Mapping[str, Any], thumbs: Mapping[str, str]) -> str:
    out = []
    series = doc["series"]
    for kind in ("ct", "mr", "xr", "other"):
        members = [s for s in series if s["kind"] == kind]
        if not members:
            continue
        metrics = list(METRICS[kind])
        desc = any("description" in s for s in members)
        head = ["thumbnail", "task", "series", *(["description"] if desc else []),
                "group", "status", "reasons", *metrics]  # fmt: skip
        rows = []
        for s in members:
            b64 = thumbs.get(s["task"])
            img = (
                f'<img class="thumb" alt="central slice" src="data:image/png;base64,{b64}">'
                if b64
                else "-"
            )
            reasons = "<br>".join(
                f"<b class={r['severity']}>{escape(r['code'])}</b> {escape(r['detail'])}"
                for r in s["reasons"]
            )
            cells = [
                f'<td data-v="{escape(s["task"])}">{img}</td>',
                _cell(s["task"]),
                _num(s.get("series_number")),
                *([_cell(s.get("description", ""))] if desc else []),
                _cell(s["group"]),
                (
                    f'<td class="{s["status"]}" data-v="{_rank(s["status"])}">'
                    f"{s['status']}</td>"
                ),
                f'<td class="reasons">{reasons or "-"}</td>',
                *[_num(s["metrics"].get(m)) for m in metrics],
            ]
            rows.append(f'<tr class="series" data-task="{escape(s["task"])}">'
                        + "".join(cells) + "</tr>")  # fmt: skip
        out.append(f"<h2>Series: {KIND_NAMES[kind]}</h2>" + _table(head, rows))
    return "\n".join(out)


def _rank(status: str) -> int:
    return {"pass": 0, "warn": 1, "fail": 2}.get(status, 3)


def _plots(doc: Mapping[str, Any]) -> str:
    out = ["<h2>Metrics by scanner group</h2>",
           ('<p class="small">One dot per series (colour: status); the blue band is the '
           "baseline's range for the group, its line the baseline's median.</p>")]  # fmt: skip
    groups = {g["group"]: g for g in doc["groups"]}
    for kind in ("ct", "mr", "xr", "other"):
        members = [s for s in doc["series"] if s["kind"] == kind]
        if not members:
            continue
        gids = sorted({s["group"] for s in members})
        out.append(f'<h3>{KIND_NAMES[kind]}</h3><div class="plots">')
        for metric in METRICS[kind]:
            pts = [
                {
                    "task": s["task"],
                    "group": s["group"],
                    "value": s["metrics"][metric],
                    "status": s["status"],
                }  # fmt: skip
                for s in members
                if s["metrics"].get(metric) is not None
            ]
            bands = {
                g: groups[g]["baseline_range"][metric]
                for g in gids
                if metric in (groups[g].get("baseline_range") or {})
            }
            out.append(
                f"<h3>{escape(metric)}</h3>" + strip_plot(metric, gids, pts, bands)
            )
    return "\n".join(out)


def _groups(doc: Mapping[str, Any]) -> str:
    out = ["<h2>Header consistency</h2>"]
    for g in doc["groups"]:
        sc = g["scanner"]
        label = " / ".join(str(sc.get(k) or "-") for k in sc)
        out.append(
            f"<h3>{escape(g['group'])}: {escape(label)} ({g['n_series']} series"
            f"{', in baseline' if g['in_baseline'] else ''})</h3>"
        )
        for p in g["protocols"]:
            rows = []
            for f in p["fields"]:
                others = ", ".join(
                    f"{o['task']}={o['value']}" for o in f["outliers"][:20]
                )
                more = len(f["outliers"]) - 20
                rows.append(
                    "<tr>" + _cell(f["field"]) + _cell(f["mode"])
                    + _num(f["n_mode"]) + _num(f["n"])
                    + _cell(others + (f" (+{more} more)" if more > 0 else "")) + "</tr>"
                )  # fmt: skip
            out.append(
                f'<p class="small">protocol {escape(p["protocol"])}, '
                f"{p['n_series']} series</p>"
                + _table(["field", "mode", "n mode", "n", "other values"], rows)
            )
    out.append("<h2>Drift against the baseline</h2>")
    any_drift = False
    for g in doc["groups"]:
        d = g.get("drift")
        if not d:
            continue
        any_drift = True
        verdict = "drifted" if d["drifted"] else "no drift"
        out.append(
            f"<h3>{escape(g['group'])}: <span class={'fail' if d['drifted'] else 'pass'}>"
            f"{verdict}</span> ({d['drifted_columns']} of {d['monitored']} columns; "
            f"{escape(d['rule'])})</h3>"
        )
        rows = [
            "<tr class=\"drift\">" + _cell(c["column"]) + _cell(c["kind"])
            + _cell(c["test"]) + _num(c["statistic"]) + _num(c["p_value"])
            + _num(c["threshold"]) + _num(c["n_baseline"]) + _num(c["n_current"])
            + f"<td class={'fail' if c['drifted'] else 'pass'}>"
            f"{'drift' if c['drifted'] else 'ok'}</td></tr>"
            for c in d["columns"]
        ]  # fmt: skip
        out.append(
            _table(
                [
                    "column",
                    "kind",
                    "test",
                    "statistic",
                    "p",
                    "threshold",
                    "n baseline",
                    "n batch",
                    "verdict",
                ],
                rows,
            )  # fmt: skip
        )
    if not any_drift:
        out.append("<p>No baseline given, or no group present in it.</p>")
    return "\n".join(out)


def _legend() -> str:
    rows = [f"<tr>{_cell(code)}{_cell(text)}</tr>" for code, text in REASONS.items()]
    return "<h2>Reason codes</h2>" + _table(["code", "meaning"], rows, cls="codes")


def render(doc: Mapping[str, Any], thumbs: Mapping[str, str]) -> str:
    """The report of a QC document; ``thumbs`` maps task ids to base64 PNG thumbnails."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>clisonix QC report</title><style>{_CSS}</style></head>\n<body>\n"
        "<h1>clisonix QC report</h1>\n"
        + _summary(doc)
        + "\n"
        + _series_tables(doc, thumbs)
        + "\n"
        + _plots(doc)
        + "\n"
        + _groups(doc)
        + "\n"
        + _legend()
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )
