"""``clisonix synth --phi``: synthetic studies full of findable identifying values.

Every identifying attribute, the private block, the nested sequences, and the folder and
file names hold a *canary*: a unique string (``ZQX`` + 9 characters from sha256 of the seed
and what it names) that no real header holds, so that a test can search every byte a
de-identifying run writes for every canary (:func:`canaries`). Dates are distinctive too
(studies in 2019, births in 1931-1933), and the original UIDs are known from the seed.

Besides the image series each study gets non-image objects that de-identification must
handle: a Key Object Selection document and a structured report (both referencing the
images), a grayscale presentation state, and an encapsulated PDF (withheld).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from clisonix_cli.dicom.write import SeriesEncoder, derived_uid, file_meta_for
from clisonix_cli.fsio import atomic_write_bytes

if TYPE_CHECKING:
    from clisonix_cli.dicom.synth import SeriesPlan

CANARY_PREFIX = "ZQX"
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
BASIC_TEXT_SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.11"
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: Per-file tag of the phi series: each slice references the one before it.
REFERENCED_IMAGE_SEQUENCE = 0x00081140


def canary(seed: int, *parts: object) -> str:
    """A unique findable string for ``parts`` (12 characters, upper case and digits)."""
    key = "|".join(["clisonix-canary", str(seed), *map(str, parts)]).encode()
    digest = base64.b32encode(hashlib.sha256(key).digest()).decode()
    return CANARY_PREFIX + digest[:9]


def _uid(seed: int, *parts: object) -> str:
    return derived_uid("clisonix-synth", seed, *parts)


def phi_rel_dir(seed: int, p: int, s: int, j: int) -> str:
    """Folders named like a careless export: patient name and MRN, study, series."""
    return (
        f"{canary(seed, 'dir-patient', p)}_{canary(seed, 'mrn', p)}/"
        f"{canary(seed, 'dir-study', p, s)}/{canary(seed, 'dir-series', p, s, j)}"
    )


def phi_file_name(seed: int, sp: SeriesPlan, k: int) -> str:
    """A slice file named with the patient's name and the series description."""
    return f"{canary(seed, 'family', sp.patient)}_{canary(seed, 'file', sp.patient, sp.study, sp.series)}_{k + 1:05d}.dcm"


def phi_dates(seed: int, p: int, s: int) -> tuple[str, str]:
    """(study date in 2019, birth date in 1931-1933) of a patient's study."""
    h = int(hashlib.sha256(f"phi-date|{seed}|{p}".encode()).hexdigest()[:8], 16)
    study = _dt.date(2019, 1, 10) + _dt.timedelta(days=h % 200 + 30 * s)
    birth = _dt.date(1931, 1, 1) + _dt.timedelta(days=h % 1000)
    return study.strftime("%Y%m%d"), birth.strftime("%Y%m%d")


def _name(seed: int, role: str, p: int) -> str:
    return "^".join(
        canary(seed, role, part, p) for part in ("family", "given", "middle")
    )


def add_phi(ds: Dataset, seed: int, sp: SeriesPlan) -> None:
    """Give a series' shared header an identifying value (a canary) in every attribute
    that can hold one, a private block and nested sequences."""
    p, s, j = sp.patient, sp.study, sp.series
    c = canary
    study_date, birth = phi_dates(seed, p, s)
    ds.PatientName = (
        f"{c(seed, 'family', p)}^{c(seed, 'given', p)}^{c(seed, 'middle', p)}"
    )
    ds.PatientID = c(seed, "mrn", p)
    ds.OtherPatientIDs = c(seed, "other-id", p)
    ds.PatientBirthDate = birth
    ds.PatientAddress = f"{c(seed, 'street', p)} STREET {c(seed, 'city', p)}"
    ds.PatientTelephoneNumbers = c(seed, "phone", p)
    ds.PatientComments = f"comment {c(seed, 'comment', p)}"
    ds.AdditionalPatientHistory = f"history {c(seed, 'history', p)}"
    ds.EthnicGroup = c(seed, "ethnic", p)
    ds.AccessionNumber = c(seed, "accession", p, s)
    ds.StudyID = c(seed, "study-id", p, s)
    ds.StudyDescription = f"STUDY {c(seed, 'study-desc', p, s)}"
    ds.SeriesDescription = f"{ds.SeriesDescription} {c(seed, 'series-desc', p, s, j)}"
    ds.ProtocolName = f"PROTOCOL {c(seed, 'protocol', p, s, j)}"
    ds.ImageComments = f"image {c(seed, 'image-comment', p, s, j)}"
    ds.InstitutionName = f"{c(seed, 'institution', p)} HOSPITAL"
    ds.InstitutionAddress = f"{c(seed, 'inst-address', p)} ROAD"
    ds.InstitutionalDepartmentName = c(seed, "department", p)
    ds.StationName = c(seed, "station", p)
    ds.DeviceSerialNumber = c(seed, "serial", p)
    ds.ReferringPhysicianName = _name(seed, "referring", p)
    ds.PerformingPhysicianName = _name(seed, "performing", p)
    ds.NameOfPhysiciansReadingStudy = _name(seed, "reading", p)
    ds.OperatorsName = _name(seed, "operator", p)
    for tag in ("StudyDate", "SeriesDate", "ContentDate", "AcquisitionDate"):
        setattr(ds, tag, study_date)
    ds.add_new(0x00090010, "LO", c(seed, "creator", p))
    ds.add_new(0x00091001, "LO", c(seed, "private-id", p))
    ds.add_new(0x00091002, "LO", _name(seed, "private-name", p))
    ds.add_new(0x00091003, "DA", birth)
    request = Dataset()
    request.RequestedProcedureID = c(seed, "requested-id", p, s)
    request.ScheduledProcedureStepID = c(seed, "step-id", p, s)
    request.RequestedProcedureDescription = c(seed, "requested-desc", p, s)
    code = Dataset()
    code.CodeValue = c(seed, "code-value", p, s)
    code.CodingSchemeDesignator = "99ZQX"
    code.CodeMeaning = c(seed, "code-meaning", p, s)
    request.ScheduledProtocolCodeSequence = Sequence([code])
    ds.RequestAttributesSequence = Sequence([request])
    other = Dataset()
    other.PatientID = c(seed, "other-seq-id", p)
    other.IssuerOfPatientID = c(seed, "issuer", p)
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref_study.ReferencedSOPInstanceUID = _uid(seed, "study", p, s)
    ds.ReferencedStudySequence = Sequence([ref_study])


def referenced_image(seed: int, sp: SeriesPlan, k: int, sop_class: str) -> Dataset:
    """Per-file values of a phi slice: a reference to the slice before it (the first
    slice references the last)."""
    prev = (k - 1) % sp.slices
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = _uid(
        seed, "instance", sp.patient, sp.study, sp.series, prev
    )
    values = Dataset()
    values.ReferencedImageSequence = Sequence([ref])
    return values


_CANARY = re.compile(CANARY_PREFIX + r"[A-Z2-7]{9}")


def _found(ds: Dataset) -> set[str]:
    out: set[str] = set()
    for elem in ds.iterall():
        if elem.VR != "SQ":
            out.update(_CANARY.findall(str(elem.value)))
    return out


def canaries(seed: int, plans: list[SeriesPlan]) -> set[str]:
    """Every canary a phi set holds (rebuilt from the same functions that write them)."""
    out: set[str] = set()
    for sp in plans:
        ds = Dataset()
        ds.SeriesDescription = ""
        add_phi(ds, seed, sp)
        out |= _found(ds)
        out.update(_CANARY.findall(phi_rel_dir(seed, sp.patient, sp.study, sp.series)))
        out.update(_CANARY.findall(phi_file_name(seed, sp, 0)))
    for series in _studies(plans).values():
        for _kind, ds in _nonimage(seed, series, "1.2.840.10008.5.1.4.1.1.2"):
            out |= _found(ds)
            out.update(
                _CANARY.findall(ds.get("EncapsulatedDocument", b"").decode("latin-1"))
            )
    return out


# --- non-image objects -------------------------------------------------------------------


def _patient_study(ds: Dataset, seed: int, sp: SeriesPlan) -> None:
    p, s = sp.patient, sp.study
    study_date, birth = phi_dates(seed, p, s)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"{canary(seed, 'family', p)}^{canary(seed, 'given', p)}"
    ds.PatientID = canary(seed, "mrn", p)
    ds.PatientBirthDate = birth
    ds.PatientSex = "O"
    ds.StudyInstanceUID = _uid(seed, "study", p, s)
    ds.StudyDate = study_date
    ds.StudyTime = "101010"
    ds.ReferringPhysicianName = _name(seed, "referring", p)
    ds.StudyID = canary(seed, "study-id", p, s)
    ds.AccessionNumber = canary(seed, "accession", p, s)
    ds.Manufacturer = "CLISONIX"
    ds.ContentDate = study_date
    ds.ContentTime = "101500"
    ds.InstanceNumber = 1


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
        value,
        scheme,
        meaning,
    )
    return item


def _evidence(seed: int, series: list[SeriesPlan], sop_class: str) -> Sequence:
    """CurrentRequestedProcedureEvidenceSequence: every image of the study."""
    sp0 = series[0]
    study = Dataset()
    study.StudyInstanceUID = _uid(seed, "study", sp0.patient, sp0.study)
    items = []
    for sp in series:
        ser = Dataset()
        ser.SeriesInstanceUID = _uid(seed, "series", sp.patient, sp.study, sp.series)
        refs = []
        for k in range(sp.slices):
            ref = Dataset()
            ref.ReferencedSOPClassUID = sop_class
            ref.ReferencedSOPInstanceUID = _uid(
                seed, "instance", sp.patient, sp.study, sp.series, k
            )
            refs.append(ref)
        ser.ReferencedSOPSequence = Sequence(refs)
        items.append(ser)
    study.ReferencedSeriesSequence = Sequence(items)
    return Sequence([study])


def _document(
    seed: int, series: list[SeriesPlan], kind: str, sop_class: str
) -> Dataset:
    sp0 = series[0]
    p, s = sp0.patient, sp0.study
    ds = Dataset()
    _patient_study(ds, seed, sp0)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(seed, kind, p, s)
    ds.SeriesInstanceUID = _uid(seed, f"{kind}-series", p, s)
    ds.SeriesNumber = {"kos": 90, "sr": 91, "pr": 92, "pdf": 93}[kind]
    ds.Modality = {"kos": "KO", "sr": "SR", "pr": "PR", "pdf": "DOC"}[kind]
    return ds


def _kos_or_sr(
    seed: int, series: list[SeriesPlan], kind: str, image_class: str
) -> Dataset:
    sp0 = series[0]
    p, s = sp0.patient, sp0.study
    cls = KOS_CLASS if kind == "kos" else BASIC_TEXT_SR_CLASS
    ds = _document(seed, series, kind, cls)
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    if kind == "kos":
        ds.ConceptNameCodeSequence = Sequence([_code("113000", "DCM", "Of Interest")])
        ds.ContentTemplateSequence = Sequence([Dataset()])
        ds.ContentTemplateSequence[0].MappingResource = "DCMR"
        ds.ContentTemplateSequence[0].TemplateIdentifier = "2010"
        ds.SeriesDescription = canary(seed, "kos-title", p, s)
    else:
        ds.ConceptNameCodeSequence = Sequence(
            [_code("18748-4", "LN", "Diagnostic imaging report")]
        )
        ds.CompletionFlag = "COMPLETE"
        ds.VerificationFlag = "VERIFIED"
        observer = Dataset()
        observer.VerifyingObserverName = _name(seed, "sr-observer", p)
        observer.VerifyingObserverIdentificationCodeSequence = Sequence()
        observer.VerifyingOrganization = canary(seed, "institution", p)
        observer.VerificationDateTime = phi_dates(seed, p, s)[0] + "120000"
        ds.VerifyingObserverSequence = Sequence([observer])
    content = []
    for sp in series:
        for k in range(0, sp.slices, max(1, sp.slices // 2)):
            item = Dataset()
            item.RelationshipType = "CONTAINS"
            item.ValueType = "IMAGE"
            ref = Dataset()
            ref.ReferencedSOPClassUID = image_class
            ref.ReferencedSOPInstanceUID = _uid(
                seed, "instance", sp.patient, sp.study, sp.series, k
            )
            item.ReferencedSOPSequence = Sequence([ref])
            content.append(item)
    if kind == "sr":
        person = Dataset()
        person.RelationshipType = "CONTAINS"
        person.ValueType = "PNAME"
        person.ConceptNameCodeSequence = Sequence(
            [_code("121008", "DCM", "Person Observer Name")]
        )
        person.PersonName = _name(seed, "reading", p)
        content.append(person)
        ds.PerformedProcedureCodeSequence = Sequence()
    ds.ContentSequence = Sequence(content)
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(seed, series, image_class)
    return ds


def _presentation_state(
    seed: int, series: list[SeriesPlan], image_class: str
) -> Dataset:
    sp0 = series[0]
    p, s = sp0.patient, sp0.study
    ds = _document(seed, series, "pr", GSPS_CLASS)
    ds.ContentLabel = "SYNTHPR"
    ds.ContentDescription = canary(seed, "pr-label", p, s)
    ds.PresentationCreationDate = phi_dates(seed, p, s)[0]
    ds.PresentationCreationTime = "101600"
    ds.ContentCreatorName = _name(seed, "operator", p)
    ser = Dataset()
    ser.SeriesInstanceUID = _uid(seed, "series", p, s, 0)
    ref = Dataset()
    ref.ReferencedSOPClassUID = image_class
    ref.ReferencedSOPInstanceUID = _uid(seed, "instance", p, s, 0, 0)
    ser.ReferencedImageSequence = Sequence([ref])
    ds.ReferencedSeriesSequence = Sequence([ser])
    ds.PresentationLUTShape = "IDENTITY"
    ds.SoftcopyVOILUTSequence = Sequence([Dataset()])
    ds.SoftcopyVOILUTSequence[0].WindowCenter = "40"
    ds.SoftcopyVOILUTSequence[0].WindowWidth = "400"
    ds.ImageHorizontalFlip = "N"
    ds.ImageRotation = 0
    ds.DisplayedAreaSelectionSequence = Sequence([Dataset()])
    area = ds.DisplayedAreaSelectionSequence[0]
    area.DisplayedAreaTopLeftHandCorner = [1, 1]
    area.DisplayedAreaBottomRightHandCorner = [sp0.cols, sp0.rows]
    area.PresentationSizeMode = "SCALE TO FIT"
    area.PresentationPixelSpacing = ["1", "1"]
    return ds


def _pdf(seed: int, series: list[SeriesPlan]) -> Dataset:
    sp0 = series[0]
    p, s = sp0.patient, sp0.study
    ds = _document(seed, series, "pdf", PDF_CLASS)
    title = canary(seed, "pdf-title", p, s)
    ds.DocumentTitle = title
    ds.BurnedInAnnotation = "YES"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.ConceptNameCodeSequence = Sequence()
    body = f"%PDF-1.4\n% {title} {canary(seed, 'family', p)}\n%%EOF\n".encode()
    ds.EncapsulatedDocument = body + (b"\x00" if len(body) % 2 else b"")
    return ds


def _studies(plans: list[SeriesPlan]) -> dict[tuple[int, int], list[SeriesPlan]]:
    studies: dict[tuple[int, int], list[SeriesPlan]] = {}
    for sp in plans:
        studies.setdefault((sp.patient, sp.study), []).append(sp)
    return dict(sorted(studies.items()))


def nonimage_name(seed: int, p: int, s: int, kind: str) -> str:
    """Relative path of a study's non-image object (``kind``: kos, sr, pr, pdf)."""
    folder = phi_rel_dir(seed, p, s, 0).rsplit("/", 1)[0]
    return f"{folder}/DOCS/{kind.upper()}_{canary(seed, 'family', p)}.dcm"


def nonimage_names(seed: int, plans: list[SeriesPlan]) -> list[str]:
    """Every non-image object :func:`write_nonimage` writes, relative to the set."""
    kinds = ("kos", "sr", "pr", "pdf")
    return [nonimage_name(seed, p, s, k) for (p, s) in _studies(plans) for k in kinds]


def write_nonimage(seed: int, out_dir: Path, plans: list[SeriesPlan]) -> list[Path]:
    """Write a KOS, an SR, a presentation state and a PDF per study of a phi set."""
    paths: list[Path] = []
    for (p, s), series in _studies(plans).items():
        image_class = (
            "1.2.840.10008.5.1.4.1.1.2" if series[0].modality == "CT"
            else "1.2.840.10008.5.1.4.1.1.4"
        )  # fmt: skip
        for kind, ds in _nonimage(seed, series, image_class):
            data = SeriesEncoder(ds, per_file=()).encode(
                file_meta_for(ds.SOPClassUID, ds.SOPInstanceUID, EXPLICIT_LE), Dataset()
            )
            path = out_dir / nonimage_name(seed, p, s, kind)
            atomic_write_bytes(path, data)
            paths.append(path)
    return paths


def _nonimage(
    seed: int, series: list[SeriesPlan], image_class: str
) -> Iterator[tuple[str, Dataset]]:
    yield "kos", _kos_or_sr(seed, series, "kos", image_class)
    yield "sr", _kos_or_sr(seed, series, "sr", image_class)
    yield "pr", _presentation_state(seed, series, image_class)
    yield "pdf", _pdf(seed, series)
