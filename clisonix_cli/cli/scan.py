"""``clisonix scan``: index a folder of DICOM files and report studies, series and problems."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from clisonix_cli.cli._console import emit_json, err_console, reporting_errors, safe
from clisonix_cli.cli._options import (
    AllowEmpty,
    FilesFrom,
    FollowOutside,
    FollowSymlinks,
    JsonFlag,
)

if TYPE_CHECKING:
    from collections.abc import Callable

_EXAMPLES = 3  # non-DICOM files named on the terminal
_MAX_SKIP_LINES = 20  # (code, folder) lines of skipped files on the terminal
_FOLDER_CODES = (
    "CLX-E216",
    "CLX-E217",
)  # a folder that cannot be listed / a link to one


def scan(
    in_dir: Annotated[
        Path,
        typer.Argument(
            metavar="IN_DIR",
            help="Folder to index (searched recursively, by file content).",
        ),
    ],
    json_out: JsonFlag = False,
    files_from: FilesFrom = None,
    follow_symlinks: FollowSymlinks = False,
    follow_symlinks_outside: FollowOutside = False,
    allow_empty: AllowEmpty = False,
) -> None:
    """Index DICOM files under IN_DIR: studies, series, stacks, problems, decoders.

    Files are recognised by content, not by extension. Exit 0 when the scan ran (even with
    skipped files), 1 when part of IN_DIR could not be read (a folder that cannot be
    listed, an unreadable file, a FIFO or device), 2 when IN_DIR holds no DICOM image
    (without --allow-empty) or the file list names a file outside IN_DIR, 3 when IN_DIR or
    the file list cannot be read, 4 on an internal error (a bug).

    Example: clisonix scan /data/export --json > scan.json
    """
    from clisonix_cli.dicom.discover import input_files, require_images, scan_exit_code
    from clisonix_cli.dicom.index import scan as run_scan
    from clisonix_cli.dicom.scandoc import scan_document

    with reporting_errors():
        files = input_files(in_dir, files_from)
        with _progress(enabled=not json_out and err_console.is_terminal) as tick:
            result = run_scan(
                in_dir,
                files=files,
                progress=tick,
                follow_symlinks=follow_symlinks,
                follow_outside=follow_symlinks_outside,
            )
        require_images(result, allow_empty=allow_empty)
        doc = scan_document(result)
    if json_out:
        emit_json(doc)
    else:
        _render(doc)
    raise typer.Exit(scan_exit_code(result))


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr (only on a terminal); yields the scan callback."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("reading headers"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("scan", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield tick


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _kind(st: dict[str, Any]) -> str:
    """Storage kind, then the geometry and colour model when they are not the usual."""
    parts = [st["kind"]]
    if st["geometry"] != "volume":
        parts.append(st["geometry"])
    if st["colour"] != "greyscale":
        parts.append(st["colour"])
    return safe(" ".join(parts))


def _render(doc: dict[str, Any]) -> None:
    """Human report: the stack table on stdout, problems and skipped files summarised."""
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    counts = doc["counts"]
    table = Table(title=f"{counts['stacks']} stack(s) in {counts['series']} series")
    for col in (
        "Study",
        "Series",
        "Description",
        "Mod",
        "Stack",
        "Kind",
        "Shape",
        "Spacing mm",
    ):
        table.add_column(col, overflow="fold")
    table.add_column("Size", justify="right")
    table.add_column("Problems", overflow="fold", ratio=1)
    for s_idx, study in enumerate(doc["studies"], start=1):
        for series in study["series"]:
            for st in series["stacks"]:
                shape = "x".join(str(n) for n in st["shape"])
                spacing = (
                    "x".join(f"{v:g}" for v in st["spacing_mm"])
                    if st["spacing_mm"]
                    else "-"
                )
                probs = "; ".join(
                    ("[red]" if p["blocking"] else "[yellow]")
                    + safe(f"{p['code'] or 'note'}: {p['message']}")
                    + ("[/red]" if p["blocking"] else "[/yellow]")
                    for p in st["problems"]
                )
                if st["split_reason"]:
                    probs = (probs + "; " if probs else "") + safe(st["split_reason"])
                table.add_row(
                    str(s_idx),
                    str(
                        series["series_number"]
                        if series["series_number"] is not None
                        else "-"
                    ),
                    safe(series["series_description"]),
                    safe(series["modality"]),
                    safe(st["stack_key"]),
                    _kind(st),
                    shape,
                    spacing,
                    _human_bytes(st["est_bytes"]),
                    probs or "-",
                )
    out.print(table)
    if doc["transfer_syntaxes"]:
        ts = Table(title="Decoder preflight")
        for col in ("Transfer syntax", "UID", "Files", "Decoder"):
            ts.add_column(col)
        for t in doc["transfer_syntaxes"]:
            dec = t["decoder"] or "[red]none installed[/red]"
            ts.add_row(safe(t["name"]), safe(t["uid"]), str(t["files"]), dec)
        out.print(ts)
    if doc["objects"]:
        out.print(
            safe(
                "objects: "
                + ", ".join(f"{t['name']} {t['count']}" for t in doc["objects"])
                + "; geometry: "
                + ", ".join(f"{t['name']} {t['count']}" for t in doc["geometry_kinds"])
                + "; colour: "
                + ", ".join(f"{t['name']} {t['count']}" for t in doc["colour_models"])
            )
        )
    out.print(
        safe(
            f"{counts['files']} files: {counts['dicom']} DICOM, {counts['non_dicom']} not "
            f"DICOM, {counts['unreadable']} unreadable; {counts['skipped']} skipped; "
            f"{counts['studies']} studies, {counts['series']} series, {counts['stacks']} "
            f"stacks ({counts['convertible_stacks']} convertible)"
        )
    )
    # one line per (code, folder): a series of 500 reports is one line, not 500
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for sk in doc["skipped"]:
        folder = sk["path"].rsplit("/", 1)[0] if "/" in sk["path"] else "."
        groups.setdefault((sk["code"], folder), []).append(sk)
    lines = sorted(groups.items())
    for n_line, ((code, folder), items) in enumerate(lines):
        if n_line == _MAX_SKIP_LINES:
            rest = sum(len(v) for _, v in lines[_MAX_SKIP_LINES:])
            err_console.print(
                safe(
                    f"... and {rest} more skipped file(s) in other folders (see --json)"
                ),
                style="yellow",
            )
            break
        reasons = {sk["reason"] for sk in items}
        what = "folder(s) not entered" if code in _FOLDER_CODES else "file(s) skipped"
        if len(items) == 1:
            text = f"{code}: 1 {what} in {items[0]['path']}: {items[0]['reason']}"
        elif len(reasons) == 1:
            text = f"{code}: {len(items)} {what} in {folder}/: {items[0]['reason']}"
        else:  # never let one file's reason stand for all of them
            text = (
                f"{code}: {len(items)} {what} in {folder}/ for {len(reasons)} "
                f"different reasons (see --json), e.g. {items[0]['path']}: "
                f"{items[0]['reason']}"
            )
        err_console.print(safe(text), style="yellow")
    if doc["non_dicom"]:
        names = doc["non_dicom"][:_EXAMPLES]
        more = len(doc["non_dicom"]) - len(names)
        err_console.print(
            safe(
                f"{len(doc['non_dicom'])} file(s) are not DICOM and were ignored (e.g. "
                + ", ".join(names)
                + (f", and {more} more" if more > 0 else "")
                + ")"
            )
        )
    sys.stdout.flush()
