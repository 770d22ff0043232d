"""The PHI guard: an output's bytes must not hold the identifying values of its inputs.

:class:`Terms` gathers, from the inputs of one task, the values that identify the patient
or the people and place involved: name components of three or more characters (any
Person Name), PatientID, other patient IDs, AccessionNumber and other identifiers, the
birth date, institution and physician details, and every original UID that was replaced.
:func:`hits` searches bytes for them: words case-insensitively and as whole tokens (not
inside a longer run of letters and digits, so that a patient called ``LEE`` does not hit
``SLEEP``), UIDs exactly and not inside a longer UID. Before any output is renamed into
place its bytes are searched; a hit withholds the output and fails the task
(``CLX-E192``). Pixel values are not searched: they are copied byte for byte (``deid``) or
are numbers (``transform``), and a name can show in them only as burned-in text, which is
the burned-in policy's business.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Iterable
from pathlib import Path

#: Shortest value searched for (issue #10: name components of 3+ characters).
MIN_TERM = 3
_SPLIT = re.compile(rb"[\^=\\ ,]+")
_UID_BOUND = frozenset(b"0123456789.")
_TOKENS = re.compile(rb"[a-z0-9]+")


def own_words(*phrases: str) -> frozenset[bytes]:
    """The words of text clisonix writes itself (lower case)."""
    return frozenset(t for p in phrases for t in _TOKENS.findall(p.lower().encode()))


#: Words of the values clisonix writes (dummies, pseudonym prefix, marking): an input value
#: equal to one of them is not searched for, since the output holds it by design.
OWN_WORDS = own_words(
    "ANONYMIZED ANON 19000101 19000101000000 000000 000Y 090Y YES MODIFIED UNMODIFIED",
    "REMOVED DCM CLISONIX PS3.15 Basic Application Confidentiality Profile Option",
    "Clean Graphics Structured Content Descriptors Retain Longitudinal Temporal",
    "Information Full Modified Dates Patient Characteristics Device Identity UIDs",
    "Safe Private Institution",
)


class Terms:
    """The identifying values of one task's inputs, by kind (``name``, ``PatientID``...)."""

    __slots__ = ("uids", "words")

    def __init__(self) -> None:
        self.words: dict[bytes, str] = {}
        self.uids: dict[bytes, str] = {}

    def __bool__(self) -> bool:
        return bool(self.words or self.uids)

    def add_word(self, raw: bytes, kind: str) -> None:
        """A whole value (an ID, an address); kept when it has 3+ characters."""
        value = raw.strip(b"\x00 ").lower()
        if (
            len(value) >= MIN_TERM
            and value not in self.words
            and value not in OWN_WORDS
        ):
            self.words[value] = kind

    def add_name(self, raw: bytes, kind: str = "name") -> None:
        """Each component of a Person Name (``^``, ``=``, spaces split it)."""
        for part in _SPLIT.split(raw.strip(b"\x00 ")):
            self.add_word(part, kind)

    def add_uid(self, raw: bytes, kind: str = "UID") -> None:
        """An original UID (searched exactly)."""
        value = raw.strip(b"\x00 ")
        if len(value) >= MIN_TERM:
            self.uids.setdefault(value, kind)

    def update(self, other: Terms) -> None:
        """Add another object's terms."""
        for k, v in other.words.items():
            self.words.setdefault(k, v)
        for k, v in other.uids.items():
            self.uids.setdefault(k, v)

    def without(self, kept: Iterable[bytes]) -> Terms:
        """These terms less values that the output keeps by design (retained options)."""
        drop = {k.strip(b"\x00 ").lower() for k in kept}
        out = Terms()
        out.words = {k: v for k, v in self.words.items() if k not in drop}
        out.uids = dict(self.uids)
        return out


@functools.lru_cache(maxsize=256)
def _pattern(words: frozenset[bytes]) -> re.Pattern[bytes]:
    alts = b"|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))
    return re.compile(rb"(?<![a-z0-9])(?:" + alts + rb")(?![a-z0-9])")


def hits(data: bytes | bytearray | memoryview, terms: Terms) -> list[str]:
    """The kinds of identifying value found in ``data`` (sorted, unique; empty: clean)."""
    found: set[str] = set()
    raw = bytes(data)
    if terms.words:
        low = raw.lower()
        for m in _pattern(frozenset(terms.words)).finditer(low):
            found.add(terms.words[m.group(0)])
    for uid, kind in terms.uids.items():
        at = raw.find(uid)
        while at >= 0:
            end = at + len(uid)
            before = raw[at - 1] if at else -1
            after = raw[end] if end < len(raw) else -1
            if before not in _UID_BOUND and after not in _UID_BOUND:
                found.add(kind)
                break
            at = raw.find(uid, at + 1)
    return sorted(found)


def clean_text(raw: bytes, terms: Terms) -> bytes:
    """Free text with every identifying word and UID of ``terms`` removed (PS3.15 ``C``
    for text: only values the object itself holds can be found)."""
    out = raw
    if terms.words:
        low = out.lower()
        spans = [m.span() for m in _pattern(frozenset(terms.words)).finditer(low)]
        for start, end in reversed(spans):
            out = out[:start] + out[end:]
    for uid in terms.uids:
        out = out.replace(uid, b"")
    return b" ".join(out.split())


def file_text(path: Path) -> bytes:
    """The bytes of an output to search: gzip outputs decompressed."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    return data
