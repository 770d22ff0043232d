"""What a de-identifying run is asked for: key, options, burned-in policy; and its marking.

:class:`DeidSettings` travels with every task (it pickles with its key) and is the one
place that names the run: its :attr:`~DeidSettings.identity` (options, policy, table
edition, key fingerprint) goes into the manifest so that ``--resume`` never mixes two keys
or two profiles in one OUT_DIR.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clisonix_cli import __version__
from clisonix_cli.dicom.deid.keys import DeidKey, Mapper, read_key, sha256_text
from clisonix_cli.dicom.deid.profile import (
    BASIC_CODE,
    OPTIONS,
    Profile,
    parse_options,
    resolve,
    table_edition,
)
from clisonix_cli.dicom.deid.rawio import Elem, Syntax, encode
from clisonix_cli.errors import DeidKeyError


@dataclass(frozen=True)
class DeidSettings:
    """A de-identification request.

    Parameters
    ----------
    key : DeidKey
    options : tuple of str
        Option names (validated by :func:`~clisonix_cli.dicom.deid.profile.parse_options`).
    allow_burned_in : bool
        Release objects that may carry burned-in text (``--allow-burned-in``).
    """

    key: DeidKey
    options: tuple[str, ...] = ("modified-dates",)
    allow_burned_in: bool = False

    @property
    def profile(self) -> Profile:
        """The resolved profile."""
        return resolve(self.options)

    @property
    def mapper(self) -> Mapper:
        """The keyed functions (one per key and process: their caches stay warm)."""
        return _mapper_for(self.key)

    def identity(self) -> dict[str, Any]:
        """What must match for two runs' outputs to mix (JSON-ready; no secret)."""
        return {
            "profile": f"PS3.15 {table_edition()} Basic Profile",
            "options": list(self.options),
            "allow_burned_in": self.allow_burned_in,
            "key": self.key.fingerprint,
        }

    def sha256(self) -> str:
        """Hash of :meth:`identity` (recorded as the run's ``deid_sha256``)."""
        return sha256_text(json.dumps(self.identity(), sort_keys=True))

    def file_token(self, rel: str) -> str:
        """An input path as it may appear in outputs, manifests and messages."""
        return self.mapper.file_token(rel)

    def scrub(self, text: str, paths: Iterable[str]) -> str:
        """``text`` with every input path of ``paths`` (and each of their folder names
        and file names) replaced by keyed tokens."""
        return scrub_paths(text, tuple(sorted(set(paths))), self.mapper)

    def method_values(self) -> list[str]:
        """(0012,0063) De-identification Method values (LO, at most 64 characters each)."""
        head = f"clisonix {__version__} PS3.15 {table_edition()} Basic Profile"
        return [head[:64], *(OPTIONS[n].meaning for n in self.options)]

    def codes(self) -> list[tuple[str, str]]:
        """CID 7050 codes of the profile and every option in force."""
        return [
            BASIC_CODE,
            *((OPTIONS[n].code, OPTIONS[n].meaning) for n in self.options),
        ]

    def marking(self, syntax: Syntax | None = None) -> list[Elem]:
        """The elements that mark an object de-identified (PS3.15 E.1.1), in tag order;
        with ``syntax`` already encoded for it (one encoding per run, not per file)."""
        return _marking(self.options, tuple(self.method_values()), syntax)


@functools.lru_cache(maxsize=8)
def _mapper_for(key: DeidKey) -> Mapper:
    return Mapper(key)


@functools.lru_cache(maxsize=16)
def _marking(
    options: tuple[str, ...], method: tuple[str, ...], syntax: Syntax | None
) -> list[Elem]:
    items = [
        [
            Elem(0x00080100, "SH", value=code.encode()),
            Elem(0x00080102, "SH", value=b"DCM"),
            Elem(0x00080104, "LO", value=meaning.encode()),
        ]
        for code, meaning in [
            BASIC_CODE,
            *((OPTIONS[n].code, OPTIONS[n].meaning) for n in options),
        ]
    ]
    temporal = (
        b"MODIFIED" if "modified-dates" in options
        else b"UNMODIFIED" if "full-dates" in options else b"REMOVED"
    )  # fmt: skip
    elems = [
        Elem(0x00120062, "CS", value=b"YES"),
        Elem(0x00120063, "LO", value="\\".join(method).encode()),
        Elem(0x00120064, "SQ", items=items),
        Elem(0x00280303, "CS", value=temporal),
    ]
    if syntax is not None:
        for e in elems:
            e.raw = b"".join(p for p in encode([e], syntax) if isinstance(p, bytes))
    return elems


def scrub_paths(text: str, paths: tuple[str, ...], mapper: Mapper) -> str:
    """Replace input paths, then their remaining folder and file names, by tokens."""
    if not text or not paths:
        return text
    for rel in sorted(paths, key=len, reverse=True):
        text = text.replace(rel, mapper.file_token(rel))
    names = {part for rel in paths for part in rel.split("/") if len(part) >= 3}
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(
            r"(?<![A-Za-z0-9])" + re.escape(name) + r"(?![A-Za-z0-9])",
            mapper.token("name", name, 8),
            text,
        )
    return text


def settings_from(
    key_file: Path | None,
    options: Sequence[str] | None,
    *,
    allow_burned_in: bool = False,
) -> DeidSettings:
    """Settings from command-line values: the key read and checked, the options parsed.

    Raises
    ------
    DeidKeyError
        No key file given, or a bad one (exit 2).
    DeidOptionError
        Unknown or contradictory options (exit 2).
    """
    if key_file is None:
        raise DeidKeyError(
            "no de-identification key: give --key-file FILE (or CLISONIX_DEID_KEY_FILE); "
            "make one with `clisonix deid --new-key FILE` and keep it safe - the same key "
            "gives the same new identifiers in every run"
        )
    opts = parse_options(list(options or ()))
    return DeidSettings(read_key(key_file), opts, allow_burned_in=allow_burned_in)
