"""``transform --deidentify``: the same rules as ``clisonix deid`` on every output of a task.

For a task of a de-identifying run:

- :func:`deid_naming` gives it a keyed task id and an output name built from its new
  (keyed) study and series UIDs, its series number and stack key: no description;
- :func:`read_facts` reads the headers of its inputs once: the identifying values to guard
  against, the burned-in policy's verdict, the patient key (pseudonym of a derived series);
- :func:`deid_meta` keeps only what the profile keeps of the acquisition fields (sidecars,
  derived DICOM): descriptions removed (cleaned with ``clean-descriptors``), UIDs replaced;
- outputs are written under ``OUT/.clisonix/staging/<task>/`` and :meth:`Facts.release`
  searches each one (its name, its header or text: NIfTI header and extensions, NumPy
  header, JSON, DICOM header) with the PHI guard before renaming it into place.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clisonix_cli.dicom.deid.guard import Terms, clean_text, hits
from clisonix_cli.dicom.deid.instance import identity_of, terms_of, withheld_reason
from clisonix_cli.dicom.deid.keys import patient_of
from clisonix_cli.dicom.deid.rawio import encode, read_object
from clisonix_cli.dicom.deid.settings import DeidSettings
from clisonix_cli.dicom.model import Stack
from clisonix_cli.errors import InputError, PHIGuardError, WithheldError
from clisonix_cli.fsio import check_no_links
from clisonix_cli.regular import open_regular
from clisonix_cli.taskarray.deid_records import guard_record, keyed_inputs, new_uid
from clisonix_cli.taskarray.manifest import STATE_DIR

if TYPE_CHECKING:
    from clisonix_cli.taskarray.plan import Task

STAGING = "staging"
#: Acquisition fields that are descriptions (free text): removed, or cleaned under the
#: Clean Descriptors option (PS3.15 Table E.1-1: X, C).
DESCRIPTIONS = ("SeriesDescription", "ProtocolName", "DerivationDescription")
UID_FIELDS = ("StudyInstanceUID", "SeriesInstanceUID")


def deid_naming(
    stack: Stack, settings: DeidSettings, task_key: str
) -> tuple[str, str, str]:
    """``(task id, output stem, label)`` of a de-identifying transform task."""
    mapper = settings.mapper
    task_id = "t" + mapper.token("task", task_key)
    number = (
        f"{stack.series_number:04d}"
        if stack.series_number is not None and stack.series_number >= 0
        else "none"
    )
    key = "".join(c if c.isalnum() else "-" for c in stack.stack_key)[:24] or "1"
    study = mapper.token("study-folder", new_uid(settings, stack.study_uid), 8)
    series = mapper.token("series-name", new_uid(settings, stack.series_uid), 8)
    return task_id, f"{study}/{number}_{key}_{series}", f"series task {task_id}"


@dataclass
class Facts:
    """What a de-identifying task knows of its inputs (kept on the worker, never written)."""

    settings: DeidSettings
    terms: Terms = field(default_factory=Terms)
    patient: str = ""
    burned_in: str = ""
    withheld: WithheldError | None = None
    out_dir: str = ""

    def meta(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The acquisition fields of :func:`deid_meta` for this task."""
        return deid_meta(meta, self.settings, self.terms)

    def dicom_fields(self) -> dict[str, Any]:
        """What a derived DICOM series of this task carries beyond the acquisition fields:
        the pseudonym, the marking and the input's BurnedInAnnotation (never invented)."""
        s = self.settings
        return {
            "pseudonym": s.mapper.pseudonym(self.patient),
            "method": s.method_values(),
            "codes": s.codes(),
            "temporal": "MODIFIED" if s.profile.has("modified-dates") else "REMOVED",
            "burned_in": self.burned_in if self.burned_in in ("YES", "NO") else "",
        }

    def release(self, staged: Sequence[Path], stage: Path, out_dir: Path) -> list[Path]:
        """Guard every staged output, then rename it into place; return final paths.

        Raises
        ------
        PHIGuardError
            An output (its name or bytes) holds an identifying value: nothing is released
            and the staging folder is removed.
        """
        try:
            for path in staged:
                rel = path.relative_to(stage).as_posix()
                found = hits(rel.encode(), self.terms) + hits(
                    guard_bytes(path), self.terms
                )
                if found:
                    raise PHIGuardError(
                        f"output {Path(rel).suffix or 'folder'} of this task holds "
                        f"{', '.join(sorted(set(found)))} of its inputs; nothing released"
                    )
            # the final names and the folders above them: no link planted in OUT_DIR
            check_no_links(out_dir, [p.relative_to(stage).as_posix() for p in staged])
            final: list[Path] = []
            for path in staged:
                dest = out_dir / path.relative_to(stage)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                final.append(dest)
            return final
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def staging_dir(out_dir: Path, task_id: str) -> Path:
    """Where a de-identifying task writes before the guard lets its outputs out."""
    return out_dir / STATE_DIR / STAGING / task_id


def read_facts(
    in_dir: Path, files: Sequence[str], settings: DeidSettings, out_dir: str = ""
) -> Facts:
    """Read the headers of a task's inputs: guard terms, patient key, burned-in verdict."""
    facts = Facts(settings, out_dir=out_dir)
    patient_ids: list[str] = []
    burned: set[str] = set()
    study = ""
    for rel in dict.fromkeys(files):
        try:
            with open_regular(in_dir / rel) as fh:  # never blocks on a FIFO
                obj = read_object(fh, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            raise InputError(f"cannot be read ({exc.strerror or exc})") from None
        ident = identity_of(obj)
        facts.terms.update(terms_of(obj, settings))
        study = study or ident.study
        if ident.patient_id:
            patient_ids.append(ident.patient_id)
        if facts.withheld is None:
            facts.withheld = withheld_reason(
                ident, allow_burned_in=settings.allow_burned_in
            )
        burned.add(ident.burned_in)
    facts.burned_in = "YES" if "YES" in burned else "NO" if burned == {"NO"} else ""
    patient_ids.sort()
    facts.patient = patient_of(
        max(patient_ids, key=patient_ids.count) if patient_ids else "", study
    )
    return facts


def deid_meta(
    meta: Mapping[str, Any], settings: DeidSettings, terms: Terms
) -> dict[str, Any]:
    """Acquisition fields as the profile leaves them (see the module docstring)."""
    out = dict(meta)
    clean = settings.profile.has("clean-descriptors")
    for key in DESCRIPTIONS:
        value = out.pop(key, None)
        if clean and isinstance(value, str):
            cleaned = clean_text(value.encode("utf-8"), terms).decode(
                "utf-8", "replace"
            )
            if cleaned:
                out[key] = cleaned
    for key in UID_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = new_uid(settings, out[key])
    return out


def guard_bytes(path: Path) -> bytes:
    """The bytes of an output the guard searches: headers and text, not pixel values."""
    name = path.name
    if name.endswith((".nii", ".nii.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(348)
            if len(head) < 348:
                return head
            (vox_offset,) = struct.unpack_from("<f", head, 108)
            return head + fh.read(max(0, int(vox_offset) - 348))
    if name.endswith(".npy"):
        with open(path, "rb") as fh:
            head = fh.read(12)
            size = struct.unpack_from("<H" if head[6] == 1 else "<I", head, 8)[0]
            return head + fh.read(size)
    if name.endswith(".png"):
        return png_text(path.read_bytes())
    if name.endswith(".dcm"):
        with open(path, "rb") as fh:
            obj = read_object(fh, os.fstat(fh.fileno()).st_size)
        parts = encode(obj.elems, obj.syntax)
        meta = b"".join(obj.meta.values())
        return meta + b"".join(p for p in parts if isinstance(p, bytes))
    return path.read_bytes()


def png_text(data: bytes) -> bytes:
    """A PNG's bytes without its compressed image data: the signature, every chunk's
    length and type, and the data of every chunk but IDAT (text chunks included, whole).
    Deflated pixel bytes hold any 3-letter word by chance; the pixels are not text."""
    out = [data[:8]]
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        out.append(data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind in (b"zTXt", b"iTXt"):  # compressed text: searched inflated too
            out.append(body)
            out.append(_inflate_text(kind, body))
        elif kind != b"IDAT":
            out.append(body)
        pos += 12 + length
    out.append(data[pos:])  # anything after the chunks (none in a well-formed file)
    return b"".join(out)


def _inflate_text(kind: bytes, body: bytes) -> bytes:
    _keyword, _, rest = body.partition(b"\0")
    if kind == b"iTXt":  # flag, method, language\0, translated keyword\0, text
        if not rest or rest[0] != 1:
            return b""
        rest = rest[2:].split(b"\0", 2)[-1]
    else:
        rest = rest[1:]  # compression method
    try:
        return zlib.decompressobj().decompress(rest, 1 << 24)
    except zlib.error:
        return b""


def finish_record(
    rec: dict[str, Any], task: Task, facts: Facts, digests: Mapping[str, str]
) -> dict[str, Any]:
    """A finished task's record: inputs as tokens with their digests, keyed digest; the
    record itself guarded (a hit fails the task: its outputs are removed)."""
    inputs, digest = keyed_inputs(facts.settings, task.stack.files, digests)
    rec.update(inputs=inputs, inputs_digest=digest)
    found = guard_record(rec, facts.terms)
    if found:
        for out in rec.get("outputs") or []:
            with contextlib.suppress(OSError):
                (Path(facts.out_dir) / out["path"]).unlink()
        raise PHIGuardError(
            f"{task.describe()}: its manifest record would hold {', '.join(found)} of "
            "its inputs; its outputs are withheld"
        )
    return rec


def after_failure(
    rec: dict[str, Any], task: Task, out_dir: str, exc: Exception
) -> dict[str, Any]:
    """A de-identifying task that failed: staging removed; a policy verdict is recorded
    as ``withheld`` rather than ``failed``."""
    with contextlib.suppress(OSError):
        shutil.rmtree(staging_dir(Path(out_dir), task.task_id))
    if isinstance(exc, WithheldError):
        rec["status"] = "withheld"
    return rec
