"""Fixtures of the de-identification tests: keys, a ``synth --phi`` set, released copies.

``expected_uid`` / ``expected_offset`` re-state the documented keyed formulas
(docs/deid.md) independently of the code under test, so that a test can say what every new
identifier must be.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner, Result

from clisonix_cli.cli.app import app

KEY = b"0123456789abcdef0123456789abcdef-test-key"
OTHER_KEY = b"fedcba9876543210fedcba9876543210-other-key"
#: 2 patients x 2 studies x 2 series (CT explicit, MR RLE) x 3 slices, plus per study a
#: KOS, an SR, a presentation state and a PDF.
PHI_ARGS: dict[str, int | str] = {
    "seed": 7,
    "patients": 2,
    "studies": 2,
    "series": 2,
    "slices": 3,
    "rows": 16,
    "cols": 16,
    "modality": "mixed",
    "syntax": "mixed",
}


def _key(path: Path, secret: bytes) -> Path:
    path.write_bytes(secret + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid key file (mode 0600)."""
    return _key(tmp_path_factory.mktemp("key") / "deid.key", KEY)


@pytest.fixture(scope="session")
def other_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second valid key."""
    return _key(tmp_path_factory.mktemp("key2") / "other.key", OTHER_KEY)


@pytest.fixture(scope="session")
def phi_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``clisonix synth --phi`` output (read-only)."""
    from clisonix_cli.dicom.synth import synthesize

    out = tmp_path_factory.mktemp("phi") / "IN_ZQXDIRNAME"
    synthesize(out, phi=True, **PHI_ARGS)  # type: ignore[arg-type]
    return out


def invoke(args: list[str]) -> Result:
    """Run the CLI in-process; stdout and stderr apart."""
    return CliRunner().invoke(app, args)


@dataclass
class Release:
    """A finished ``clisonix deid`` run."""

    out: Path
    stdout: str
    stderr: str
    exit_code: int
    mapping: Path | None = None


@pytest.fixture(scope="session")
def phi_release(
    phi_set: Path, key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Release:
    """``clisonix deid`` of the phi set (one job, with a mapping file)."""
    root = tmp_path_factory.mktemp("release")
    out, mapping = root / "out", root / "private" / "map.jsonl"
    result = invoke(
        ["deid", str(phi_set), str(out), "--key-file", str(key_file), "--jobs", "1",
         "--mapping", str(mapping)]
    )  # fmt: skip
    return Release(out, result.stdout, result.stderr, result.exit_code, mapping)


# --- the documented formulas, stated again --------------------------------------------------


def expected_uid(uid: str, key: bytes = KEY) -> str:
    """``2.25.<int of the first 16 bytes of HMAC-SHA256(key, "uid|" + uid)>``."""
    digest = hmac.new(key, b"uid|" + uid.encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def expected_offset(patient: str, key: bytes = KEY) -> int:
    """Days a patient's dates move: -(365 + n mod 3285), n from HMAC(key, patient)."""
    digest = hmac.new(key, b"date-offset|" + patient.encode(), hashlib.sha256).digest()
    return -(365 + int.from_bytes(digest[:8], "big") % 3285)


def shifted(value: str, days: int) -> str:
    """A YYYYMMDD date moved by ``days``."""
    day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    return (day + dt.timedelta(days=days)).strftime("%Y%m%d")


# --- reading trees ------------------------------------------------------------------------


def dicom_files(root: Path) -> list[Path]:
    """Every DICOM file under ``root`` (by content), sorted."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".clisonix" not in p.parts:
            with open(p, "rb") as fh:
                head = fh.read(132)
            if head[128:132] == b"DICM":
                out.append(p)
    return out


def all_bytes(root: Path) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of every file under ``root``; gzip decompressed; the path
    itself is yielded as bytes too."""
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        yield rel, rel.encode()
        if p.is_file():
            data = p.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            yield rel, data


@dataclass
class Identifiers:
    """What the inputs hold that no output may: canaries, UIDs, dates, name parts."""

    canaries: set[str]
    uids: set[str]
    dates: set[str]
    names: set[str]


def input_identifiers(
    root: Path | list[Path], canaries: set[str] | None = None
) -> Identifiers:
    """Read every input: instance UIDs (not class or standard UIDs), dates, name parts."""
    uids: set[str] = set()
    dates: set[str] = set()
    names: set[str] = set()
    for p in dicom_files(root) if isinstance(root, Path) else root:
        ds = pydicom.dcmread(p)
        uids.add(str(ds.file_meta.MediaStorageSOPInstanceUID))
        for elem in ds.iterall():
            if elem.tag.is_private or elem.keyword.endswith(
                ("ClassUID", "SyntaxUID", "ClassesInStudy")
            ):
                continue  # private values are removed; class UIDs name no instance
            if elem.VR == "UI" and elem.value:
                for v in elem.value if elem.VM > 1 else [elem.value]:
                    if not str(v).startswith("1.2.840.10008."):
                        uids.add(str(v))
            elif elem.VR in ("DA", "DT") and elem.value:
                dates.add(str(elem.value)[:8])
            elif elem.VR == "PN" and elem.value:
                names.update(
                    part
                    for part in re.split(r"[\^= ]", str(elem.value))
                    if len(part) >= 3
                )
    return Identifiers(canaries or set(), uids, dates, names)


def leaks(blobs: list[tuple[str, bytes]], ids: Identifiers) -> list[str]:
    """Every identifier found in ``blobs`` (``where: what``), none expected."""
    found = []
    uid_re = [
        (u, re.compile(rb"(?<![0-9.])" + re.escape(u.encode()) + rb"(?![0-9.])"))
        for u in ids.uids
    ]
    date_re = [
        (d, re.compile(rb"(?<![0-9])" + d.encode() + rb"(?![0-9])")) for d in ids.dates
    ]
    words = [
        (
            w,
            re.compile(
                rb"(?<![a-z0-9])" + re.escape(w.lower().encode()) + rb"(?![a-z0-9])"
            ),
        )
        for w in ids.canaries | ids.names
    ]
    for where, data in blobs:
        low = data.lower()
        found += [f"{where}: {w}" for w, rx in words if rx.search(low)]
        found += [f"{where}: UID {u}" for u, rx in uid_re if rx.search(data)]
        found += [f"{where}: date {d}" for d, rx in date_re if rx.search(data)]
    return found


# --- dciodvfy -----------------------------------------------------------------------------


def dciodvfy_errors(path: Path) -> set[str]:
    """The error lines dciodvfy reports on a file, values blanked (skip when absent)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    run = subprocess.run([exe, str(path)], capture_output=True, check=False)
    text = (run.stdout + run.stderr).decode("latin-1")
    out = set()
    for line in text.split("\n"):  # not splitlines(): values may hold a CR
        if line.startswith("Error"):
            line = re.sub(r"values are .*", "", line.replace("\r", " "))
            line = re.sub(r"= <[^>]*>", "= <>", line)
            line = re.sub(r"Length invalid for this VR = \d+", "Length invalid", line)
            out.add(line.strip())
    return out


@pytest.fixture(scope="session")
def deid_data() -> Path:
    """The PyPI package deid-data's files (synthetic PHI; skips when not installed)."""
    try:
        import deid_data  # type: ignore[import-untyped]
    except ImportError:
        pytest.skip("the deid-data package is not installed (pip install deid-data)")
    return Path(os.path.dirname(deid_data.__file__)) / "data"
