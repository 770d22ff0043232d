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

from clisonix_cli.bench.report import peer_rows


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
        title=f"Per op, one {shape} {dtype} volume, in-process: median ms (min-max)",
        title_justify="left",
    )
    for col in (
        "op",
        "apply, 1 thread",
        f"apply, {n} threads",
        "strongest reference, 1 thread",
        f"its time at {n} threads",
        "speed-up 1t",
        f"speed-up {n}t",
    ):
        times.add_column(col, justify="left" if col.startswith("op") else "right")
    refs = Table(
        title="References per op (same run, same volume and parameters; each checked "
        "against the op by a test)",
        title_justify="left",
    )
    for col in ("op", "reference", "what it is", "1 thread ms", f"{n} threads ms"):
        refs.add_column(col, justify="right" if col.endswith("ms") else "left")
    rates = Table(
        title="Per op: rates and share of copy bandwidth", title_justify="left"
    )
    for col in (
        "op",
        "family",
        "voxels/s 1t",
        "GB/s 1t",
        f"GB/s {n}t",
        f"of warm copy 1t / {n}t",
        f"of fresh copy 1t / {n}t",
    ):
        rates.add_column(col, justify="left" if col in ("op", "family") else "right")
    for name, fig in sec.items():
        references = fig.get("references", {})
        b1, ba = fig.get("strongest_1t"), fig.get("strongest_all")
        times.add_row(
            name,
            _ms(fig["apply_1t"]),
            _ms(fig["apply_all"]),
            f"{b1}: {_ms(references[b1]['1t'])}" if b1 else "-",
            f"{ba}: {_ms(_best_all(references[ba]))}" if ba else "-",
            f"{_num(fig['speedup_1t'])}x" if "speedup_1t" in fig else "-",
            f"{_num(fig['speedup_all'])}x" if "speedup_all" in fig else "-",
        )
        for key, ref in references.items():
            refs.add_row(
                name,
                key,
                escape(ref["label"]),
                _ms(ref["1t"]),
                _ms(ref["all"]) if "all" in ref else "(1 thread only)",
            )
        if "reference_note" in fig:
            refs.add_row(name, "-", escape(fig["reference_note"]), "", "")
        frac = fig.get("copy_fraction_1t")
        fresh = fig.get("fresh_copy_fraction_1t")
        rates.add_row(
            name,
            fig["family"],
            _si(fig["apply_1t"]["voxels_per_s"], ""),
            _num(fig["apply_1t"].get("gbps")),
            _num(fig["apply_all"].get("gbps")),
            "-" if frac is None else f"{frac:.0%} / {fig['copy_fraction_all']:.0%}",
            "-"
            if fresh is None
            else f"{fresh:.0%} / {fig['fresh_copy_fraction_all']:.0%}",
        )
    return Group(times, refs, rates)


def _best_all(ref: Mapping[str, Any]) -> Mapping[str, Any]:
    """A reference's timing at every core: the better of its 1-thread and all-cores runs."""
    one: Mapping[str, Any] = ref["1t"]
    every: Mapping[str, Any] | None = ref.get("all")
    return every if every is not None and every["median_ms"] < one["median_ms"] else one


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
        title="Whole jobs, process vs process (fresh processes, interleaved; ratio = peer "
        "time / clisonix time, > 1 means clisonix is faster)",
        title_justify="left",
    )
    for col in (
        "work",
        "cores",
        "clisonix warm s",
        "peer warm s",
        "ratio warm",
        "clisonix cold s",
        "peer cold s",
        "slices/s/core clisonix / peer",
    ):
        t.add_column(col, justify="left" if col in ("work", "cores") else "right")
    for fig in peer_rows(sec):
        mine, peer = fig["clisonix"], fig["peer"]
        t.add_row(
            escape(fig["work"]),
            escape(fig["label"]),
            _secs(mine["warm"]),
            _secs(peer["warm"]),
            f"{_num(fig['ratio_warm'])}x",
            _num(mine["cold_ms"] / 1e3),
            _num(peer["cold_ms"] / 1e3),
            f"{_num(mine['slices_per_s_per_core'])} / {_num(peer['slices_per_s_per_core'])}",
        )
    for peer_name, note in sec.get("missing", {}).items():
        t.add_row("-", peer_name, "-", "-", "-", "-", "-", escape(note))
    return t


def _secs(fig: Mapping[str, Any]) -> str:
    return (
        f"{_num(fig['median_ms'] / 1e3)} "
        f"({_num(fig['min_ms'] / 1e3)}-{_num(fig['max_ms'] / 1e3)})"
    )


def _comparison_table(sec: Mapping[str, Any]) -> Table:
    shown = [c for c in sec["changes"] if c["status"] != "within"]
    within = len(sec["changes"]) - len(shown)
    t = Table(
        title=(
            f"Against the earlier run (threshold {sec['threshold']:.0%} and one-sided "
            f"Mann-Whitney p < {sec['alpha']:g}, after drift): {sec['regressions']} "
            f"regression(s); {within} figure(s) within, not listed"
        ),
        title_justify="left",
    )
    for col in (
        "figure",
        "old ms",
        "new ms",
        "change",
        "spread old / new",
        "p",
        "status",
    ):
        t.add_column(
            col, justify="right" if col not in ("figure", "status") else "left"
        )
    style = {
        "regressed": "bold red",
        "improved": "green",
        "added": "cyan",
        "removed": "cyan",
    }
    for c in shown:
        rel = c["relative"]
        p = c["p_slower"] if (rel or 0) >= 0 else c["p_faster"]
        spread = (
            "-"
            if c["old_iqr"] is None or c["new_iqr"] is None
            else f"{c['old_iqr']:.0%} / {c['new_iqr']:.0%}"
        )
        t.add_row(
            c["figure"],
            _num(c["old_ms"]),
            _num(c["new_ms"]),
            "-" if rel is None else f"{rel:+.1%}",
            spread,
            "-" if p is None else f"{p:.2g}",
            c["status"],
            style=style.get(c["status"]),
        )
    drift = sec.get("drift", {})
    if drift:
        t.caption = "yardstick (in-cache copy) old -> new: " + ", ".join(
            f"{level} {_num(d['old_ms'])} -> {_num(d['new_ms'])} ms"
            for level, d in drift.items()
        )
        t.caption_justify = "left"
    for note in sec.get("config_differences", []):
        t.add_row(escape(f"not comparable: {note}"), "", "", "", "", "", "")
    return t
