"""``make bench-docs``: the figures of docs/bench.md and README.md, from a committed run.

No figure in the documentation is typed by hand: the tables between the ``bench-run``
markers of docs/bench.md and the sentence between the ``bench-headline`` markers of
README.md are rendered from docs/bench-run.json, the document of a full
``clisonix bench --peers`` run (``--output``). ``python -m clisonix_cli.bench.markdown``
rewrites both; ``--check`` only tells whether they are current (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clisonix_cli.bench.report import peer_rows

RUN_JSON = Path("docs/bench-run.json")
BENCH_MD = Path("docs/bench.md")
README = Path("README.md")
TABLES = ("<!-- BEGIN bench-run (make bench-docs) -->", "<!-- END bench-run -->")
HEADLINE = (
    "<!-- BEGIN bench-headline (make bench-docs) -->",
    "<!-- END bench-headline -->",
)


def _g(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, no exponent below 1e6."""
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:
        return f"{value:,.0f}"
    return text


def _ms(fig: Mapping[str, Any]) -> str:
    return f"{_g(fig['median_ms'])} ({_g(fig['min_ms'])}-{_g(fig['max_ms'])})"


def _s(fig: Mapping[str, Any]) -> str:
    return (
        f"{_g(fig['median_ms'] / 1e3)} "
        f"({_g(fig['min_ms'] / 1e3)}-{_g(fig['max_ms'] / 1e3)})"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def describe_run(doc: Mapping[str, Any]) -> str:
    """One line: machine, versions, load before and after."""
    env, load = doc["env"], doc.get("load", {})
    start, end = load.get("loadavg_1m_start"), load.get("loadavg_1m_end")
    return (
        f"clisonix {env['clisonix']}, numba {env['numba']}, numpy {env['numpy']}, "
        f"Python {env['python']}; {env['cpu_model']}, {env['cores']} cores; "
        f"1-minute load average {_g(start or 0, 2)} at the start, {_g(end or 0, 2)} "
        "at the end"
    )


def render_tables(doc: Mapping[str, Any]) -> str:
    """The markdown between the ``bench-run`` markers of docs/bench.md."""
    lines = [
        f"From `{RUN_JSON}` ({describe_run(doc)}). Times: median (min-max).",
        "",
    ]
    peers = doc.get("peers", {}).get("rows", {})
    if peers:
        lines += [
            "**Whole jobs, process vs process** (warm = median of later runs):",
            "",
        ]
        rows = []
        for fig in peer_rows(doc["peers"]):
            mine, peer = fig["clisonix"], fig["peer"]
            rows.append(
                [
                    fig["work"],
                    fig["label"],
                    f"{fig['slices']}",
                    _s(mine["warm"]),
                    _s(peer["warm"]),
                    f"{_g(fig['ratio_warm'])}x",
                    f"{_g(mine['cold_ms'] / 1e3)} / {_g(peer['cold_ms'] / 1e3)}",
                    (
                        f"{_g(mine['slices_per_s_per_core'])} / "
                        f"{_g(peer['slices_per_s_per_core'])}"
                    ),
                ]
            )
        lines += _table(
            (
                "work",
                "cores",
                "slices",
                "clisonix warm s",
                "peer warm s",
                "peer / clisonix",
                "cold s clisonix / peer",
                "slices/s per core clisonix / peer",
            ),
            rows,
        )
        lines.append("")
    ops = doc.get("ops", {})
    if ops:
        first = next(iter(ops.values()))
        shape = "x".join(map(str, first["shape"]))
        n = first["threads_all"]
        lines += [
            (
                f"**Per op**, one {shape} {first['in_dtype']} volume, in-process; speed-up = "
                "the strongest reference's time / `apply`'s time at the same thread count:"
            ),
            "",
        ]
        rows = []
        for name, fig in ops.items():
            refs = fig.get("references", {})
            b1, ba = fig.get("strongest_1t"), fig.get("strongest_all")
            rows.append(
                [
                    f"`{name}`",
                    _ms(fig["apply_1t"]),
                    _ms(fig["apply_all"]),
                    refs[b1]["label"] if b1 else fig.get("reference_note", "-"),
                    _ms(refs[b1]["1t"]) if b1 else "-",
                    f"{_g(fig['speedup_1t'])}x" if b1 else "-",
                    f"{_g(fig['speedup_all'])}x ({ba})" if ba else "-",
                ]
            )
        lines += _table(
            (
                "op",
                "apply 1 thread ms",
                f"apply {n} threads ms",
                "strongest reference at 1 thread",
                "its ms",
                "speed-up 1t",
                f"speed-up {n}t (reference)",
            ),
            rows,
        )
        lines.append("")
    e2e = doc.get("end_to_end")
    if e2e:
        lines += [
            (
                f"**End to end, in-process** (`taskarray.execute.run`): {e2e['series']} "
                f"series, {e2e['slices']} slices, pipeline {' + '.join(e2e['pipeline'])}, "
                f"format {e2e['format']}:"
            ),
            "",
        ]
        rows = [
            [
                jobs,
                _s(fig),
                _g(fig["slices_per_s"]),
                _g(fig.get("efficiency", 1.0)),
            ]
            for jobs, fig in sorted(e2e["jobs"].items(), key=lambda kv: int(kv[0]))
        ]
        lines += _table(("--jobs", "wall s", "slices/s", "efficiency"), rows)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def headline(doc: Mapping[str, Any]) -> str:
    """The README's sentence of headline figures (between the ``bench-headline`` markers)."""
    parts: list[str] = []
    rows = doc.get("peers", {}).get("rows", {})
    conv, pipe = rows.get("conversion_1v1"), rows.get("pipeline_1v1")
    if conv:
        parts.append(
            f"converting {conv['slices']} CT slices to NIfTI as a fresh process on one "
            f"core takes {_g(conv['clisonix']['warm']['median_ms'] / 1e3)} s against "
            f"dcm2niix's {_g(conv['peer']['warm']['median_ms'] / 1e3)} s"
        )
    if pipe:
        parts.append(
            f"the CT pipeline (HU, window, resample 1.5 mm, z-score) "
            f"{_g(pipe['clisonix']['warm']['median_ms'] / 1e3)} s against SimpleITK's "
            f"{_g(pipe['peer']['warm']['median_ms'] / 1e3)} s"
        )
    ops = doc.get("ops", {})
    picks = []
    for name in ("median", "gaussian", "resample"):
        fig = ops.get(name)
        if fig and "strongest_1t" in fig:
            ref = fig["references"][fig["strongest_1t"]]["label"].split(" (")[0]
            speedup = fig["speedup_1t"]
            if speedup >= 1:
                picks.append(f"`{name}` {_g(speedup, 2)}x faster than {ref}")
            else:
                picks.append(f"`{name}` {_g(1 / speedup, 2)}x slower than {ref}")
    if picks:
        parts.append(
            "in-process at one thread, against the strongest reference: "
            + ", ".join(picks)
        )
    load = doc.get("load", {})
    start, end = load.get("loadavg_1m_start") or 0, load.get("loadavg_1m_end") or 0
    return (
        f"Measured on a {doc['env']['cores']}-core machine (1-minute load average "
        f"{_g(start, 2)} at the start, {_g(end, 2)} at the end; figures and commands "
        "in docs/bench.md): " + "; ".join(parts) + ".\n"
    )


def splice(text: str, markers: tuple[str, str], content: str) -> str:
    """Replace what lies between the two marker lines of ``text`` by ``content``."""
    begin, end = markers
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"markers {begin!r} ... {end!r} not found")
    return text[: i + len(begin)] + "\n" + content + text[j:]


def render(root: Path) -> dict[Path, str]:
    """The new text of docs/bench.md and README.md under ``root``."""
    doc = json.loads((root / RUN_JSON).read_text(encoding="utf-8"))
    bench = (root / BENCH_MD).read_text(encoding="utf-8")
    readme = (root / README).read_text(encoding="utf-8")
    return {
        root / BENCH_MD: splice(bench, TABLES, render_tables(doc)),
        root / README: splice(readme, HEADLINE, headline(doc)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Rewrite the figures (or, with ``--check``, exit 1 when they are not current)."""
    parser = argparse.ArgumentParser(prog="python -m clisonix_cli.bench.markdown")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    stale = []
    for path, text in render(args.root).items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(args.root)) for p in stale)
        sys.exit(f"{names}: bench figures differ from {RUN_JSON}; run make bench-docs")


if __name__ == "__main__":
    main()
