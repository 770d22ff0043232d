"""The PS3.15 Basic Application Level Confidentiality Profile and its Options, as data.

``ps315_e11.csv`` is Table E.1-1 (the action code of every attribute in the Basic Profile
column and in each Option column), ``ps315_safe_private.csv`` Table E.3.10-1 (private
attributes the Retain Safe Private Option keeps); both are made by
``tools/ps315_table.py`` from the standard's text. :func:`resolve` turns the table and the
chosen options into one action per tag.

Action codes (PS3.15 E.1.1): ``X`` remove, ``Z`` zero-length, ``D`` dummy value, ``U``
keyed new UID, ``C`` clean, ``K`` keep. Sequences kept (``K``, ``U*``) are cleaned: the
profile applies to their items. Where the table leaves a choice that depends on the IOD
(``X/Z``, ``Z/D``, ``X/D``, ``X/Z/D``), clisonix takes the choice that is valid whatever the
attribute's type in the object's IOD: ``X/Z`` -> ``Z``, a ``D`` among the choices -> ``D``,
``X/Z/U*`` -> keep the sequence with its UIDs replaced. Sequences are the exception: the
sequences the table gives ``X/Z``, ``X/D`` or ``X/Z/D`` are Type 3 where they occur (an
empty Type 3 sequence is invalid), so they are removed (:data:`SEQUENCE_CHOICE`), except
the Acquisition Context Sequence, which is Type 2 and becomes empty. An option's ``K``
wins over its ``C``, and both over the Basic Profile.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

from clisonix_cli.errors import DeidOptionError

TABLE_FILE = "ps315_e11.csv"
SAFE_PRIVATE_FILE = "ps315_safe_private.csv"
#: Free-text attributes the table does not name, treated as if it did (never overriding it).
ADDITIONS_FILE = "clisonix_additions.csv"


@dataclass(frozen=True)
class Option:
    """One PS3.15 Option: its ``--option`` name, Table E.1-1 column and CID 7050 code."""

    name: str
    column: str
    code: str
    meaning: str


#: PS3.16 CID 7050 De-identification Method: the Basic Profile itself.
BASIC_CODE = ("113100", "Basic Application Confidentiality Profile")

#: The options a user chooses by name (``--option NAME``), in CID 7050 order.
OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("clean-graphics", "clean_graphics", "113103", "Clean Graphics Option"),
        Option(
            "clean-structured-content",
            "clean_structured_content",
            "113104",
            "Clean Structured Content Option",
        ),
        Option(
            "clean-descriptors",
            "clean_descriptors",
            "113105",
            "Clean Descriptors Option",
        ),
        Option(
            "full-dates",
            "full_dates",
            "113106",
            "Retain Longitudinal Temporal Information Full Dates Option",
        ),
        Option(
            "modified-dates",
            "modified_dates",
            "113107",
            "Retain Longitudinal Temporal Information Modified Dates Option",
        ),
        Option(
            "patient-characteristics",
            "patient_characteristics",
            "113108",
            "Retain Patient Characteristics Option",
        ),
        Option(
            "device-identity",
            "device_identity",
            "113109",
            "Retain Device Identity Option",
        ),
        Option("retain-uids", "uids", "113110", "Retain UIDs Option"),
        Option("safe-private", "safe_private", "113111", "Retain Safe Private Option"),
        Option(
            "institution-identity",
            "institution_identity",
            "113112",
            "Retain Institution Identity Option",
        ),
    )
}
#: Options used when none is given: dates move by the patient's keyed offset.
DEFAULT_OPTIONS: tuple[str, ...] = ("modified-dates",)
#: ``--option basic``: the Basic Profile alone.
BASIC_ONLY = "basic"


def parse_options(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Validate ``--option`` values: sorted, unique, ``basic`` alone means none.

    Raises
    ------
    DeidOptionError
        An unknown name, or both date options (exit 2).
    """
    if not names:
        return DEFAULT_OPTIONS
    chosen: set[str] = set()
    for raw in names:
        for name in raw.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name != BASIC_ONLY and name not in OPTIONS:
                raise DeidOptionError(
                    f"--option {name!r}: unknown option; choose from "
                    f"{', '.join([BASIC_ONLY, *OPTIONS])}"
                )
            chosen.add(name)
    chosen.discard(BASIC_ONLY)
    if {"full-dates", "modified-dates"} <= chosen:
        raise DeidOptionError(
            "--option full-dates and --option modified-dates contradict each other (keep "
            "dates, or move them): give one of them"
        )
    return tuple(sorted(chosen))


@dataclass(frozen=True)
class Row:
    """One row of Table E.1-1."""

    tag: str
    name: str
    basic: str
    options: dict[str, str]


def _data_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _csv_rows(name: str) -> list[dict[str, str]]:
    text = _data_text(name)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


@functools.cache
def table_edition() -> str:
    """The PS3.15 edition of the shipped Table E.1-1 (from its header, e.g. ``2024e``)."""
    first = _data_text(TABLE_FILE).splitlines()[0]
    return first.split("PS3.15", 1)[1].split()[0]


@functools.cache
def table() -> tuple[Row, ...]:
    """Every row of the shipped Table E.1-1, then clisonix's additions for tags it lacks."""
    columns = [o.column for o in OPTIONS.values()]
    rows = [
        Row(r["tag"], r["name"], r["basic"], {c: r[c] for c in columns if r[c]})
        for r in _csv_rows(TABLE_FILE)
    ]
    known = {r.tag for r in rows}
    rows += [
        Row(r["tag"], r["name"], r["basic"], {c: r[c] for c in columns if r[c]})
        for r in _csv_rows(ADDITIONS_FILE)
        if r["tag"] not in known
    ]
    return tuple(rows)


@functools.cache
def names() -> dict[int, str]:
    """Attribute names of the table's rows, by tag (for reports)."""
    out = {}
    for row in table():
        digits = row.tag[1:5] + row.tag[6:10]
        if all(c in "0123456789ABCDEF" for c in digits):
            out[int(digits, 16)] = row.name
    return out


@functools.cache
def safe_private() -> frozenset[tuple[int, str, int]]:
    """Table E.3.10-1 as ``(group, private creator, element offset)`` triples."""
    return frozenset(
        (int(r["group"], 16), r["creator"].strip(), int(r["element"], 16))
        for r in _csv_rows(SAFE_PRIVATE_FILE)
    )


#: Sequences with a compound action: what they become (Type 2 -> empty, else removed).
SEQUENCE_CHOICE: dict[int, str] = {0x00400555: "Z"}


def _single(code: str, *, sequence: bool = False, tag: int = 0) -> str:
    """One action for a table cell (see the module docstring)."""
    choices = code.split("/")
    if len(choices) == 1:
        return choices[0]
    if "U*" in choices:
        return "U*"
    if sequence:
        return SEQUENCE_CHOICE.get(tag, "X")
    if "D" in choices:
        return "D"
    return "Z"


@dataclass(frozen=True)
class Profile:
    """The action of every tag the table names, for one set of options.

    Attributes
    ----------
    actions : dict
        Tag (int) -> ``X``, ``Z``, ``D``, ``U``, ``U*``, ``C`` or ``K``.
    options : tuple of str
        The options in force.
    curves, overlays : str
        Action for repeating groups 50xx (curves) and 60xx (overlays).
    private : str
        Action for private attributes (``C``: keep those of Table E.3.10-1).
    """

    actions: dict[int, str]
    options: tuple[str, ...]
    curves: str
    overlays: str
    private: str

    def has(self, option: str) -> bool:
        """Whether ``option`` is in force."""
        return option in self.options


@functools.cache
def resolve(options: tuple[str, ...]) -> Profile:
    """The profile of the Basic Profile plus ``options`` (names from :data:`OPTIONS`)."""
    columns = [OPTIONS[n].column for n in options]
    actions: dict[int, str] = {}
    curves = overlays = private = "X"
    for row in table():
        chosen = [row.options[c] for c in columns if c in row.options]
        hexdigits = row.tag[1:5] + row.tag[6:10]
        tag = (
            int(hexdigits, 16) if all(c in "0123456789ABCDEF" for c in hexdigits) else 0
        )
        basic = _single(row.basic, sequence=row.name.endswith("Sequence"), tag=tag)
        action = "K" if "K" in chosen else "C" if "C" in chosen else basic
        if row.tag == "(gggg,eeee) odd":
            private = action
        elif row.tag.startswith("(50xx"):
            curves = action
        elif row.tag.startswith("(60xx"):
            # Overlay Data/Comments: "C" asks for the bitmap to be cleaned, which clisonix
            # cannot do; the overlay is removed instead (stricter).
            overlays = "X"
        else:
            actions[tag] = action
    if curves == "C":
        curves = "X"  # curve data cannot be cleaned either: removed
    return Profile(actions, options, curves, overlays, private)
