"""De-identify one DICOM file: policy, header rewrite, PHI guard, streamed copy, atomic write.

The header is parsed element by element (:mod:`~clisonix_cli.dicom.deid.rawio`), the
profile applied (:mod:`~clisonix_cli.dicom.deid.rules`), the marking added, and the new
header searched by the PHI guard before anything is written. The bulk values (the pixel
data) are then copied byte for byte from the input in chunks; the file is written under a
temporary name and renamed into place, and the digests of the input and of the output are
computed on the way (each byte read once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from clisonix_cli.dicom.deid.guard import Terms, hits
from clisonix_cli.dicom.deid.rawio import (
    COPY_CHUNK,
    DicomObject,
    Elem,
    encode_meta,
    encode_runs,
    read_object,
    text_of,
)
from clisonix_cli.dicom.deid.rules import Deidentifier, collect_terms, tag_label
from clisonix_cli.dicom.deid.settings import DeidSettings
from clisonix_cli.dicom.implementation import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
)
from clisonix_cli.digest import Hasher, finish, hasher
from clisonix_cli.errors import (
    BurnedInWithheldError,
    DicomdirWithheldError,
    DocumentWithheldError,
    DuplicateInstanceError,
    FreeTextWithheldError,
    MissingUIDWithheldError,
    PHIGuardError,
    WithheldError,
    WriteFailedError,
)
from clisonix_cli.fsio import atomic_write_chunks
from clisonix_cli.regular import open_regular

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
ENCAPSULATED_DOCUMENT_ROOT = "1.2.840.10008.5.1.4.1.1.104."
SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"
ULTRASOUND_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6.2",
        "1.2.840.10008.5.1.4.1.1.3.1",
    }
)
#: Modalities whose images often carry text burned into the pixels (PS3.15 E.3.1).
BURNED_IN_MODALITIES = frozenset({"US", "SC", "OT"})

SOP_CLASS, SOP_INSTANCE, STUDY_UID, SERIES_UID = (
    0x00080016, 0x00080018, 0x0020000D, 0x0020000E,
)  # fmt: skip
MODALITY, BURNED_IN, PATIENT_ID = 0x00080060, 0x00280301, 0x00100020
_IDENTITY_TAGS = frozenset(
    {SOP_CLASS, SOP_INSTANCE, STUDY_UID, SERIES_UID, MODALITY, BURNED_IN, PATIENT_ID}
)


@dataclass(frozen=True)
class Identity:
    """The few top-level values that place and classify an object."""

    sop_class: str
    sop_instance: str
    study: str
    series: str
    modality: str
    burned_in: str
    patient_id: str


def identity_of(obj: DicomObject) -> Identity:
    """Read :class:`Identity` from a parsed object (file meta as a fallback)."""
    top = {e.tag: e.value for e in obj.elems if e.tag in _IDENTITY_TAGS}

    def value(tag: int, meta_tag: int | None = None) -> str:
        raw = top.get(tag)
        if raw is None and meta_tag is not None:
            raw = obj.meta.get(meta_tag)
        return text_of(raw) if raw is not None else ""

    return Identity(
        sop_class=value(SOP_CLASS, 0x00020002),
        sop_instance=value(SOP_INSTANCE, 0x00020003),
        study=value(STUDY_UID),
        series=value(SERIES_UID),
        modality=value(MODALITY).upper(),
        burned_in=value(BURNED_IN).upper(),
        patient_id=value(PATIENT_ID),
    )


def withheld_reason(ident: Identity, *, allow_burned_in: bool) -> WithheldError | None:
    """Why an object must not be released, or None (policy before any rewrite)."""
    if ident.sop_class == DICOMDIR_CLASS:
        return DicomdirWithheldError("a DICOMDIR (Media Storage Directory) is withheld")
    if ident.sop_class.startswith(ENCAPSULATED_DOCUMENT_ROOT):
        return DocumentWithheldError(
            f"an encapsulated document (SOP Class {ident.sop_class}) is withheld: its "
            "content cannot be de-identified"
        )
    if not (ident.study and ident.series and ident.sop_instance):
        return MissingUIDWithheldError(
            "no Study, Series or SOP Instance UID: the object cannot be placed "
            "consistently and is withheld"
        )
    risky_class = (
        ident.sop_class.startswith(SECONDARY_CAPTURE_ROOT)
        or ident.sop_class in ULTRASOUND_CLASSES
    )
    if not allow_burned_in:
        if ident.burned_in == "YES":
            return BurnedInWithheldError(
                "BurnedInAnnotation is YES: withheld (--allow-burned-in releases it)"
            )
        if (ident.modality in BURNED_IN_MODALITIES or risky_class) and (
            ident.burned_in != "NO"
        ):
            kind = ident.modality if ident.modality in BURNED_IN_MODALITIES else "SC/US"
            return BurnedInWithheldError(
                f"a {kind} object that does not say BurnedInAnnotation NO may carry text "
                "in its pixels: withheld (--allow-burned-in releases it)"
            )
    return None


@dataclass
class FileOutcome:
    """What happened to one input file."""

    written: Path | None = None
    digest: str | None = None
    size: int = 0
    input_digest: str | None = None
    withheld: WithheldError | DuplicateInstanceError | None = None
    counts: Counter[tuple[int, str]] = field(default_factory=Counter)
    burned_in: str = ""


def terms_of(obj: DicomObject, settings: DeidSettings) -> Terms:
    """The identifying values one object holds (its PHI guard terms)."""
    terms = Terms()
    collect_terms(obj.elems, terms, profile=settings.profile)
    if not settings.profile.has("retain-uids"):
        for tag in (0x00020003,):
            raw = obj.meta.get(tag)
            if raw:
                terms.add_uid(raw)
    return terms


def _merge_marking(elems: list[Elem], marking: list[Elem]) -> list[Elem]:
    out: list[Elem] = []
    pending = list(marking)
    for e in elems:
        while pending and pending[0].tag < e.tag:
            out.append(pending.pop(0))
        out.append(e)
    out.extend(pending)
    return out


def _meta_elems(obj: DicomObject, sop_class: str, sop_instance: str) -> bytes:
    return encode_meta(
        [
            (0x00020001, "OB", b"\x00\x01"),
            (0x00020002, "UI", sop_class.encode()),
            (0x00020003, "UI", sop_instance.encode()),
            (0x00020010, "UI", obj.syntax.uid.encode()),
            (0x00020012, "UI", IMPLEMENTATION_CLASS_UID.encode()),
            (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME.encode()),
        ]
    )


def deidentify_file(
    src: Path,
    out_dir: Path,
    settings: DeidSettings,
    *,
    patient: str,
    terms: Terms,
    label: str,
    taken: set[str] | None = None,
) -> FileOutcome:
    """De-identify ``src`` into ``out_dir/<new SOP Instance UID>.dcm``.

    Parameters
    ----------
    src : Path
        The input file (never modified).
    out_dir : Path
        The series folder in OUT_DIR.
    settings : DeidSettings
    patient : str
        The patient key of the object's study (pseudonym and date offset).
    terms : Terms
        Identifying values of the task's inputs (this file's are added). Its words and
        this file's own UIDs are cleaned out of text and searched for in the output (the
        other files' UIDs can only come in as references, which are all replaced).
    label : str
        How messages name the file (a keyed token, never the path).
    taken : set of str or None
        Output names already written by this task: a second object with the same SOP
        Instance UID is withheld (``CLX-E122``) instead of overwriting the first.

    Returns
    -------
    FileOutcome
        ``withheld`` set when the policy keeps the file back (nothing written).

    Raises
    ------
    InputError
        The file cannot be parsed.
    PHIGuardError
        The rewritten header still holds an identifying value (nothing written).
    """
    outcome = FileOutcome()
    size = src.stat().st_size
    with open_regular(src) as fh:
        obj = read_object(fh, size)
        ident = identity_of(obj)
        outcome.burned_in = ident.burned_in
        reason = withheld_reason(ident, allow_burned_in=settings.allow_burned_in)
        if reason is not None:
            outcome.withheld = reason
            outcome.input_digest = _digest_of(fh, size)
            return outcome
        own = terms_of(obj, settings)
        terms.update(own)
        own.words = terms.words
        deid = Deidentifier(
            settings.profile, settings.mapper, patient, own, sop_class=ident.sop_class
        )
        elems = deid.dataset(obj.elems)
        outcome.counts = deid.counts
        if deid.free_text:
            outcome.withheld = FreeTextWithheldError(
                "free text in structured content or graphics is withheld unless "
                + " / ".join(f"--option {o}" for o in sorted(deid.free_text))
                + " asks for it to be cleaned"
            )
            outcome.input_digest = _digest_of(fh, size)
            return outcome
        elems = _merge_marking(elems, settings.marking(obj.syntax))
        new_uid = (
            ident.sop_instance
            if settings.profile.has("retain-uids")
            else settings.mapper.uid(ident.sop_instance)
        )
        parts = encode_runs(elems, obj.syntax)
        head = _meta_elems(obj, ident.sop_class, new_uid)
        text = head + b"".join(p for p in parts if isinstance(p, bytes))
        found = hits(text, own)
        if (
            found
        ):  # values the profile kept on purpose are not leaks: search again without
            found = hits(text, own.without(deid.kept_values))
        if found:
            raise PHIGuardError(
                f"{label}: the de-identified header still holds {', '.join(found)} of "
                "its input; the output is withheld (report this object's layout)"
            )
        final = out_dir / f"{new_uid}.dcm"
        if taken is not None:
            if final.name in taken:
                outcome.withheld = DuplicateInstanceError(
                    "another input of this series has the same SOP Instance UID; this "
                    "duplicate is withheld and the first one is released"
                )
                outcome.input_digest = _digest_of(fh, size)
                return outcome
            taken.add(final.name)
        try:
            outcome.input_digest, outcome.digest, outcome.size = _write(
                fh, size, obj, head, parts, final
            )
        except OSError as exc:
            raise WriteFailedError(
                f"{label}: cannot write its de-identified copy ({exc.strerror or exc}); "
                "check free space and permissions in OUT_DIR"
            ) from None
        outcome.written = final
    return outcome


def _digest_of(fh: BinaryIO, size: int) -> str:
    h = hasher()
    fh.seek(0)
    while chunk := fh.read(COPY_CHUNK):
        h.update(chunk)
    return finish(h)


def _write(
    fh: BinaryIO,
    size: int,
    obj: DicomObject,
    head: bytes,
    parts: list[bytes | tuple[int, int]],
    final: Path,
) -> tuple[str, str, int]:
    """Write ``head`` + parts (bulk ranges copied from ``fh``) to ``final`` atomically;
    return the labelled digests (the manifest's algorithm) of the input and of the output,
    and the output size."""
    if obj.syntax.deflated:  # values are inline: deflate the whole dataset again
        import zlib

        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = b"".join(p for p in parts if isinstance(p, bytes))
        parts = [comp.compress(body) + comp.flush()]
    h_in = hasher()
    written = [0]

    def chunks() -> Iterator[bytes]:
        pos = 0  # next input byte not yet hashed
        for piece in [head, *parts]:
            if isinstance(piece, bytes):
                written[0] += len(piece)
                yield piece
                continue
            offset, length = piece
            pos = _hash_range(fh, h_in, pos, offset)  # header bytes before the bulk
            fh.seek(offset)
            left = length
            while left:
                chunk = fh.read(min(COPY_CHUNK, left))
                if not chunk:
                    raise OSError("the input file shrank while it was copied")
                h_in.update(chunk)
                left -= len(chunk)
                yield chunk
            written[0] += length
            pos = offset + length
        _hash_range(fh, h_in, pos, size)

    out_sha = atomic_write_chunks(final, chunks(), digest=True)
    assert out_sha is not None
    return finish(h_in), out_sha, written[0]


def _hash_range(fh: BinaryIO, h: Hasher, start: int, end: int) -> int:
    if end > start:
        fh.seek(start)
        left = end - start
        while left:
            chunk = fh.read(min(COPY_CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return max(start, end)


__all__ = [
    "FileOutcome",
    "Identity",
    "deidentify_file",
    "identity_of",
    "tag_label",
    "terms_of",
    "withheld_reason",
]
