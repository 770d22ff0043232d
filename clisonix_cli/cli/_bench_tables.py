"""Rich tables of a benchmark document (``clisonix bench`` without ``--json``).

:func:`render` prints every section present in the document, in suite order, and the
comparison with an earlier run when there is one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= digits:
        return f"{v:,.0f}"
    return f"{v:.{max(digits - 1 - mag, 0)}f}"


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _ms(fig: Mapping[str, Any]) -> str:
    return f"{_num(fig['median_ms'])} ({_num(fig['min_ms'])}-{_num(fig['max_ms'])})"


def render(doc: Mapping[str, Any], console: Console) -> None:
    """Print every section of a benchmark document as rich tables."""
    env = doc["env"]
    load = doc.get("load", {})
    console.print(
        f"[bold]clisonix bench[/] clisonix {env['clisonix']}, numba {env['numba']}, numpy "
        f"{env['numpy']}, Python {env['python']} - {escape(env['cpu_model'])}, "
        f"{env['cores']} cores; load average {_num(load.get('loadavg_1m_start'))} -> "
        f"{_num(load.get('loadavg_1m_end'))}"
    )
    start = load.get("loadavg_1m_start")
    if start is not None and start > 0.5 * env["cores"]:
        console.print(
            f"[yellow]the machine was busy (load {start:.1f} on {env['cores']} cores): "
            "expect noisy figures, parallel ones most[/]"
        )
    total = doc.get("runtime", {}).get("total")
    console.print(
        "times: median (min-max) in ms; GB/s count bytes read + written"
        + (f"; the run took {total:.0f} s" if total is not None else "")
    )
    for key, func in (
        ("memory", _memory_table),
        ("ops", _ops_tables),
        ("end_to_end", _e2e_table),
        ("scan", _scan_table),
        ("stages", _stages_table),
        ("compile", _compile_table),
        ("peak_memory", _peak_table),
        ("sizing", _sizing_table),
        ("peers", _peers_table),
    ):
        if key in doc:
            console.print(func(doc[key], doc))
    if "comparison" in doc:
        console.print(_comparison_table(doc["comparison"]))


def _memory_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title="Memory-copy bandwidth (np.copyto, read + write)", title_justify="left"
    )
    t.add_column("threads")
    t.add_column("GB/s into a warm buffer", justify="right")
    t.add_column("GB/s into a new array", justify="right")
    t.add_column("buffer", justify="right")
    size = f"{sec['buffer_bytes'] >> 20} MiB"
    t.add_row("1", _num(sec["copy_gbps_1t"]), _num(sec.get("copy_fresh_gbps_1t")), size)
    t.add_row(
        str(doc["env"]["cores"]),
        _num(sec["copy_gbps_all"]),
        _num(sec.get("copy_fresh_gbps_all")),
        size,
    )
    return t


def _ops_tables(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Group:
    first = next(iter(sec.values()), None)
    shape = "x".join(map(str, first["shape"])) if first else "?"
    dtype = first["in_dtype"] if first else "?"
    n = first["threads_all"] if first else "?"
    times = Table(
        title=f"Per op, one {shape} {dtype} volume: median ms (min-max)",
        title_justify="left",
    )
    for col in ("op", "apply, 1 thread", f"apply, {n} threads", "reference, 1 thread"):
        times.add_column(col, justify="left" if col == "op" else "right")
    rates = Table(
        title="Per op: rates, speed-up over the reference, share of copy bandwidth",
        title_justify="left",
    )
    for col in (
        "op",
        "family",
        "voxels/s 1t",
        "GB/s 1t",
        f"GB/s {n}t",
        "speed-up 1t",
        f"speed-up {n}t",
        f"of warm copy 1t / {n}t",
        f"of fresh copy 1t / {n}t",
    ):
        rates.add_column(col, justify="left" if col in ("op", "family") else "right")
    for name, fig in sec.items():
        times.add_row(
            name, _ms(fig["apply_1t"]), _ms(fig["apply_all"]), _ms(fig["reference"])
        )
        frac = fig.get("copy_fraction_1t")
        fresh = fig.get("fresh_copy_fraction_1t")
        rates.add_row(
            name,
            fig["family"],
            _si(fig["apply_1t"]["voxels_per_s"], ""),
            _num(fig["apply_1t"].get("gbps")),
            _num(fig["apply_all"].get("gbps")),
            f"{_num(fig['speedup_1t'])}x",
            f"{_num(fig['speedup_all'])}x",
            "-" if frac is None else f"{frac:.0%} / {fig['copy_fraction_all']:.0%}",
            "-"
            if fresh is None
            else f"{fresh:.0%} / {fig['fresh_copy_fraction_all']:.0%}",
        )
    return Group(times, rates)


def _e2e_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title=(
            f"End to end: clisonix transform, {sec['series']} series / {sec['slices']} slices "
            f"({_num(sec['input_bytes'] / 1e6)} MB), pipeline {' + '.join(sec['pipeline'])}, "
            f"format {sec['format']}"
        ),
        title_justify="left",
    )
    for col in ("jobs", "wall s", "series/s", "slices/s", "MB/s read", "efficiency"):
        t.add_column(col, justify="right")
    for jobs, fig in sorted(sec["jobs"].items(), key=lambda kv: int(kv[0])):
        t.add_row(
            jobs,
            f"{_num(fig['median_ms'] / 1e3)} ({_num(fig['min_ms'] / 1e3)}-{_num(fig['max_ms'] / 1e3)})",
            _num(fig["series_per_s"]),
            _num(fig["slices_per_s"]),
            _num(fig["mb_per_s"]),
            _num(fig.get("efficiency", 1.0)),
        )
    return t


def _scan_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title="Scan (clisonix.dicom.index.scan over the workload)", title_justify="left"
    )
    for col in ("files", "stacks", "ms", "files/s"):
        t.add_column(col, justify="right")
    t.add_row(
        str(sec["files"]),
        str(sec["stacks"]),
        _ms(sec["scan"]),
        _num(sec["files_per_s"]),
    )
    return t


def _stages_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title=f"Stage by stage, one series of {sec['series_slices']} slices, in-process",
        title_justify="left",
    )
    for col in ("stage", "ms", "rate", "share"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    share = sec.get("share", {})
    t.add_row(
        "scan (series folder)",
        _ms(sec["scan"]),
        f"{_num(sec['scan']['files'] / sec['scan']['median_ms'] * 1e3)} files/s",
        f"{share.get('scan_fraction', 0):.0%}",
    )
    for i, (label, fig) in enumerate(sec["read_decode"].items()):
        t.add_row(
            f"read+decode {label}",
            _ms(fig),
            f"{_num(fig['slices_per_s'])} slices/s",
            f"{share.get('read_decode_fraction', 0):.0%}" if i == 0 else "",
        )
    for label, fig in sec["ops"].items():
        t.add_row(f"  op {label}", _ms(fig), _si(fig["voxels_per_s"], "vox/s"), "")
    t.add_row(
        "pipeline.run (as the job runs it)",
        _ms(sec["pipeline_run"]),
        _si(sec["pipeline_run"]["voxels_per_s"], "vox/s"),
        f"{share.get('ops_fraction', 0):.0%}",
    )
    for label, fig in sec["write"].items():
        t.add_row(
            f"write {label.replace('_', '.')}",
            _ms(fig),
            f"{_num(fig['mb_per_s'])} MB/s",
            f"{share.get('write_fraction', 0):.0%}" if label == "nii" else "",
        )
    return t


def _compile_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title="numba compile (fresh process; cold = empty NUMBA_CACHE_DIR, cached = same dir again)",
        title_justify="left",
    )
    for col in ("", "cold ms", "cached ms"):
        t.add_column(col, justify="left" if not col else "right")
    cold, cached = sec["cold"], sec["cached"]
    t.add_row(
        "import registry + numba",
        _num(cold["import_s"] * 1e3),
        _num(cached["import_s"] * 1e3),
    )
    for name in sec["ops"]:
        t.add_row(
            f"first call {name}",
            _num(cold["per_op"][name]["compile_ms"]),
            _num(cached["per_op"][name]["compile_ms"]),
        )
    t.add_row(
        "all first calls",
        _num(cold["compile_total_s"] * 1e3),
        _num(cached["compile_total_s"] * 1e3),
    )
    t.add_row(
        "whole process", _num(cold["process_s"] * 1e3), _num(cached["process_s"] * 1e3)
    )
    t.add_row("peak RSS MiB", _num(cold["peak_rss_mib"]), _num(cached["peak_rss_mib"]))
    return t


def _peak_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title=(
            f"Peak memory of one task (fresh process, RSS high-water, "
            f"format {sec['format']})"
        ),
        title_justify="left",
    )
    for col in (
        "series slices",
        "volume MiB",
        "RSS before task MiB",
        "peak RSS MiB",
        "task adds MiB",
        "first process peak MiB",
    ):
        t.add_column(col, justify="right")
    t.add_row(
        str(sec["series_slices"]),
        _num(sec["volume_bytes"] / 2**20),
        _num(sec["baseline_rss_mib"]),
        _num(sec["task_peak_rss_mib"]),
        _num(sec["task_delta_rss_mib"]),
        _num(sec["first_process_peak_rss_mib"]),
    )
    return t


def _sizing_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(title="Sizing (images = DICOM slices)", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("images/hour, 1 job", _si(sec["images_per_hour_1"], "/h"))
    t.add_row(
        f"images/hour, {sec['jobs_all']} jobs", _si(sec["images_per_hour_all"], "/h")
    )
    tgt = sec.get("target")
    if tgt:
        t.add_row(f"target {tgt['text']}", f"{_si(tgt['target_images_per_s'], '/s')}")
        t.add_row(
            "cores needed (extrapolation)",
            f"{tgt['cores_needed']} = {tgt['machines_needed']} machine(s) of {tgt['cores_per_machine']} cores",
        )
        t.add_row(
            "  assumes",
            f"{_num(tgt['per_core_images_per_s'])} images/s per core x efficiency {_num(tgt['parallel_efficiency_used'])}",
        )
    return t


def _peers_table(sec: Mapping[str, Any], doc: Mapping[str, Any]) -> Table:
    t = Table(
        title="Peers (ratio = peer time / clisonix time; > 1 means clisonix is faster)",
        title_justify="left",
    )
    for col in ("work", "peer", "peer ms", "clisonix ms", "ratio"):
        t.add_column(col, justify="left" if col in ("work", "peer") else "right")
    for name, fig in sec.get("comparisons", {}).items():
        t.add_row(
            name,
            fig["peer"],
            _ms(fig["peer_timing"]),
            _ms(fig["clisonix_timing"]),
            f"{_num(fig['ratio'])}x",
        )
    for peer, note in sec.get("missing", {}).items():
        t.add_row("-", peer, "-", "-", escape(note))
    notes = [f"{op}: {note}" for op, note in sec.get("not_compared", {}).items()]
    if notes:
        t.caption = escape("; ".join(notes))
        t.caption_justify = "left"
    return t


def _comparison_table(sec: Mapping[str, Any]) -> Table:
    t = Table(
        title=(
            f"Against the earlier run (threshold {sec['threshold']:.0%}): "
            f"{sec['regressions']} regression(s); spreads and sizes in --json only"
        ),
        title_justify="left",
    )
    for col in ("figure", "old", "new", "change", "better", "status"):
        t.add_column(
            col, justify="right" if col in ("old", "new", "change") else "left"
        )
    style = {
        "regressed": "bold red",
        "improved": "green",
        "added": "cyan",
        "removed": "cyan",
    }
    for c in sec["changes"]:
        rel = c["relative"]
        t.add_row(
            c["figure"],
            _num(c["old"]),
            _num(c["new"]),
            "-" if rel is None else f"{rel:+.1%}",
            c["better"] or "",
            c["status"],
            style=style.get(c["status"]),
        )
    for note in sec.get("config_differences", []):
        t.add_row(escape(f"not comparable: {note}"), "", "", "", "", "")
    return t
