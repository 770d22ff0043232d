"""Apply a :class:`~clisonix_cli.dicom.deid.profile.Profile` to the elements of one object.

:class:`Deidentifier` walks the elements (sequences recursively) and gives each the action
the profile names, with clisonix's keyed replacements:

- ``U``: a keyed new UID (:meth:`Mapper.uid`), so references stay valid across objects,
  shards and runs; UIDs the table does not name are replaced too unless they are
  standard UIDs (classes, transfer syntaxes, coding schemes: ``1.2.840.10008.*`` and the
  :data:`KEEP_UID_TAGS`);
- PatientID and PatientName: the patient's keyed pseudonym, whatever the table says;
- dates (``C`` of the Modified Dates option, and any DA/DT the table does not name): moved
  by the patient's keyed offset; times are kept; a value that is not a valid date is
  emptied;
- ``D``: a dummy value valid for the VR (``ANONYMIZED``, ``19000101``, ``0``...); a
  sequence marked ``D`` keeps its structure with every text in its items made dummy,
  except the SR Content Sequence and Graphic Annotation Sequence, whose items follow the
  profile (their free text: see below);
- ``C`` on text: the object's own identifying values removed (:func:`guard.clean_text`);
- free text in structured content (TextValue) or graphics (UnformattedTextValue) cannot be
  cleaned reliably: the object is withheld unless the Clean Structured Content / Clean
  Graphics option asks for it to be cleaned;
- private attributes: removed, unless Retain Safe Private and listed in Table E.3.10-1
  (with their private creator); curves and overlays (50xx, 60xx): removed;
- ages over 89 years become ``090Y`` (HIPAA Safe Harbor).
"""

from __future__ import annotations

from collections import Counter

from clisonix_cli.dicom.deid.guard import Terms, clean_text
from clisonix_cli.dicom.deid.keys import Mapper
from clisonix_cli.dicom.deid.profile import Profile, safe_private
from clisonix_cli.dicom.deid.rawio import Elem, dictionary_vr, text_of

PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
CONTENT_SEQUENCE, GRAPHIC_ANNOTATION = 0x0040A730, 0x00700001
TEXT_VALUE, UNFORMATTED_TEXT = 0x0040A160, 0x00700006
#: Marking attributes clisonix writes itself (an input's own values are dropped).
MARKING_TAGS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})
#: Type 2C in the Patient Module when the patient is an animal (PS3.3 C.7.1.1): emptied
#: rather than removed for such objects.
ANIMAL_2C = frozenset({0x00102297, 0x00102299})
SPECIES = frozenset({0x00102201, 0x00102202})
#: Sequences the table lets go (X/Z/D) that are Type 2 in some IODs: emptied there.
TYPE2_SEQUENCES: dict[int, tuple[str, ...]] = {
    0x00081111: (
        "1.2.840.10008.5.1.4.1.1.88.",
    ),  # Ref. Performed Procedure Step (SR, KOS)
}
#: Free-text attributes that make an object unreleasable unless their option cleans them.
FREE_TEXT = {TEXT_VALUE: "clean-structured-content", UNFORMATTED_TEXT: "clean-graphics"}
#: UI attributes that name standard things, not instances (kept).
KEEP_UID_TAGS = frozenset(
    {
        0x00000002, 0x00000003, 0x00020002, 0x00020010, 0x00020012, 0x00041510,
        0x00041512, 0x0004151A, 0x00080016, 0x0008001A, 0x0008001B, 0x00080062,
        0x0008010C, 0x0008010D, 0x00080117, 0x00080118, 0x0008040E, 0x00081150,
        0x0008115A, 0x00083002, 0x00089123, 0x00340003, 0x0040E030, 0x0040E031,
        0x04000010, 0x04000510, 0x30100052, 0x30100053,
    }
)  # fmt: skip
#: Attributes whose whole value identifies someone or somewhere (PHI guard terms).
IDENTIFYING: dict[int, str] = {
    0x00100020: "PatientID",
    0x00101000: "OtherPatientIDs",
    0x00100021: "IssuerOfPatientID",
    0x00080050: "AccessionNumber",
    0x00100030: "PatientBirthDate",
    0x00101040: "PatientAddress",
    0x00102154: "PatientTelephoneNumbers",
    0x00102000: "MedicalAlerts",
    0x00380010: "AdmissionID",
    0x00380060: "ServiceEpisodeID",
    0x00401001: "RequestedProcedureID",
    0x00400009: "ScheduledProcedureStepID",
    0x00400253: "PerformedProcedureStepID",
    0x00402016: "PlacerOrderNumber",
    0x00402017: "FillerOrderNumber",
    0x00120040: "ClinicalTrialSubjectID",
    0x00120042: "ClinicalTrialSubjectReadingID",
    0x00080092: "ReferringPhysicianAddress",
    0x00080094: "ReferringPhysicianTelephoneNumbers",
    0x00080080: "InstitutionName",
    0x00080081: "InstitutionAddress",
    0x00081040: "InstitutionalDepartmentName",
}
_INSTITUTION = frozenset({0x00080080, 0x00080081, 0x00081040})
#: VRs and tags that never take the fast path of :meth:`Deidentifier.dataset`.
_SPECIAL_VRS = frozenset({"AS", "DA", "DT", "PN", "SQ", "UI", "UN"})
_SPECIAL_TAGS = frozenset(
    {0x00100010, 0x00100020, 0x0040A160, 0x00700006, 0x00120062, 0x00120063,
     0x00120064, 0x00280303, 0x00102201, 0x00102202}
)  # fmt: skip
#: VRs whose values can be guard terms (UN: read by its dictionary VR).
_TERM_VRS = frozenset({"DA", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UN", "UT"})
_KEPT_TEXT_VRS = frozenset(
    {"AE", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UC", "UT", "UR"}
)
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
_DUMMY_TEXT = b"ANONYMIZED"
_DUMMY: dict[str, bytes] = {
    "AE": _DUMMY_TEXT, "AS": b"000Y", "CS": _DUMMY_TEXT, "DA": b"19000101",
    "DS": b"0", "DT": b"19000101000000", "IS": b"0", "LO": _DUMMY_TEXT,
    "LT": _DUMMY_TEXT, "PN": _DUMMY_TEXT, "SH": _DUMMY_TEXT, "ST": _DUMMY_TEXT,
    "TM": b"000000", "UC": _DUMMY_TEXT, "UT": _DUMMY_TEXT, "UR": b"",
    "US": b"\x00\x00", "SS": b"\x00\x00", "UL": b"\x00" * 4, "SL": b"\x00" * 4,
    "FL": b"\x00" * 4, "FD": b"\x00" * 8, "AT": b"\x00" * 4,
}  # fmt: skip


def tag_label(tag: int) -> str:
    """``(gggg,eeee)`` of a tag."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _is_private(tag: int) -> bool:
    return bool((tag >> 16) & 1)


def collect_terms(elems: list[Elem], terms: Terms, *, profile: Profile) -> None:
    """Add the identifying values of ``elems`` (and of their items) to ``terms``.

    Institution values are left out under Retain Institution Identity (they are kept on
    purpose), UIDs under Retain UIDs.
    """
    keep_inst = profile.has("institution-identity")
    keep_uids = profile.has("retain-uids")
    for e in elems:
        if e.items is not None:
            for item in e.items:
                collect_terms(item, terms, profile=profile)
            continue
        vr = e.vr
        if vr not in _TERM_VRS or not e.value or (e.tag >> 16) & 1:
            continue
        if vr == "UN":
            vr = dictionary_vr(e.tag)
        kind = IDENTIFYING.get(e.tag)
        if kind is not None and not (keep_inst and e.tag in _INSTITUTION):
            terms.add_word(e.value, kind)
        elif vr == "PN":
            terms.add_name(e.value)
        elif vr == "UI" and not keep_uids and _mapped_uid(e.tag, e.value):
            for part in e.value.split(b"\\"):
                terms.add_uid(part)


def _mapped_uid(tag: int, value: bytes) -> bool:
    return tag not in KEEP_UID_TAGS and not value.startswith(b"1.2.840.10008.")


class Deidentifier:
    """The actions of one profile on the objects of one patient.

    Parameters
    ----------
    profile : Profile
    mapper : Mapper
    patient : str
        The patient key (:func:`~clisonix_cli.dicom.deid.keys.patient_of`) that picks the
        pseudonym and the date offset.
    terms : Terms
        Identifying values removed from cleaned text (``C``).

    Attributes
    ----------
    counts : Counter
        ``(tag, action)`` -> number of elements, for the report.
    free_text : set of str
        Options that would have cleaned free text this object holds (non-empty: the object
        is withheld).
    """

    def __init__(
        self,
        profile: Profile,
        mapper: Mapper,
        patient: str,
        terms: Terms,
        *,
        sop_class: str = "",
    ) -> None:
        self.profile = profile
        self.sop_class = sop_class
        self.mapper = mapper
        self.patient = patient
        self.pseudonym = mapper.pseudonym(patient).encode()
        self.terms = terms
        self.counts: Counter[tuple[int, str]] = Counter()
        self.free_text: set[str] = set()
        self._kept: list[bytes] = []
        self._dates = (
            "C" if profile.has("modified-dates")
            else "K" if profile.has("full-dates") else "D"
        )  # fmt: skip
        self._keep_uids = profile.has("retain-uids")
        self._animal = False

    @property
    def kept_values(self) -> set[bytes]:
        """Values (each of a multi-valued one) of text attributes kept as they were: the
        output holds them by design, so the PHI guard does not search for them."""
        return {
            part.strip(b"\x00 ").lower()
            for value in self._kept
            for part in value.split(b"\\")
        }

    # -- datasets ---------------------------------------------------------------------------

    def dataset(self, elems: list[Elem], *, dummy: bool = False) -> list[Elem]:
        """The de-identified elements of one dataset or item (input order kept)."""
        out: list[Elem] = []
        append = out.append
        kept_private = self._private(elems)
        actions = self.profile.actions
        for e in elems:
            tag = e.tag
            vr = e.vr
            if (  # the common case: an attribute the profile leaves as it is
                not dummy
                and e.items is None
                and tag not in actions
                and vr not in _SPECIAL_VRS
                and tag not in _SPECIAL_TAGS
                and 0x0008 <= tag >> 16 < 0x5000
                and not (tag >> 16) & 1
                and tag & 0xFFFF
            ):
                if vr in _KEPT_TEXT_VRS and e.value:
                    self._kept.append(e.value)
                append(e)
                continue
            group = tag >> 16
            if tag & 0xFFFF == 0 or group == 0x0002 or tag in MARKING_TAGS:
                continue  # group lengths, stray meta, marking: not copied
            if group & 1:
                if tag in kept_private:
                    out.append(e)
                    self.counts[(-1, "K")] += 1
                else:
                    self.counts[(-1, "X")] += 1
                continue
            if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                self.counts[(tag & 0xFF00FFFF, "X")] += 1  # curves, overlays
                continue
            new = self._element(e, dummy)
            if new is not None:
                append(new)
        return out

    def _private(self, elems: list[Elem]) -> set[int]:
        """Private tags kept under Retain Safe Private (their creators included)."""
        if self.profile.private not in ("C", "K"):
            return set()
        creators = {
            (e.tag >> 16, e.tag & 0xFF): text_of(e.value)
            for e in elems
            if _is_private(e.tag) and 0x10 <= (e.tag & 0xFFFF) <= 0xFF
        }
        safe = safe_private()
        kept: set[int] = set()
        for e in elems:
            group, elem = e.tag >> 16, e.tag & 0xFFFF
            if not group & 1 or elem < 0x1000 or e.items is not None:
                continue
            creator = creators.get((group, elem >> 8))
            if creator is not None and (group, creator, elem & 0xFF) in safe:
                kept.add(e.tag)
                kept.add((group << 16) | (elem >> 8))
        return kept

    # -- elements ---------------------------------------------------------------------------

    def _element(self, e: Elem, dummy: bool) -> Elem | None:
        tag = e.tag
        if (
            tag in SPECIES
        ):  # Patient Species: the patient is an animal (before 2297/2299)
            self._animal = True
        vr = e.vr if e.vr != "UN" else dictionary_vr(tag)
        if e.vr == "UN" and vr != "UN" and e.items is None:
            e = Elem(tag, vr, value=e.value)  # a replaced value is written with its VR
        if tag in (PATIENT_ID, PATIENT_NAME):
            self.counts[(tag, "P")] += 1
            return Elem(tag, e.vr, value=self.pseudonym)
        if tag in FREE_TEXT and e.value.strip(b"\x00 "):
            option = FREE_TEXT[tag]
            if not self.profile.has(option):
                self.free_text.add(option)
                return None
            self.counts[(tag, "C")] += 1
            return Elem(tag, e.vr, value=clean_text(e.value, self.terms) or _DUMMY_TEXT)
        action = self.profile.actions.get(tag)
        if action is None:
            action = self._default(tag, vr, e, dummy)
            if action == "K":  # attributes outside the table that stay as they are
                return self._keep(e, vr, dummy)
        if action == "X" and (
            (self._animal and tag in ANIMAL_2C)
            or self.sop_class.startswith(TYPE2_SEQUENCES.get(tag, ("-",)))
        ):
            action = "Z"
        self.counts[(tag, action)] += 1
        if action == "X":
            return None
        if action == "Z":
            return Elem(tag, e.vr, items=[] if e.items is not None else None)
        if action == "D":
            return self._dummy(e, vr)
        if action == "U":
            return self._uid(e) if vr == "UI" else self._keep(e, vr, dummy)
        if action == "C":
            return self._clean(e, vr, dummy)
        return self._keep(e, vr, dummy)  # K, U*

    def _default(self, tag: int, vr: str, e: Elem, dummy: bool) -> str:
        """Action for an attribute the table does not name."""
        if e.items is not None:
            return "K"
        if vr in ("DA", "DT"):
            return self._dates
        if vr == "UI":
            return "U" if _mapped_uid(tag, e.value) and not self._keep_uids else "K"
        if vr == "PN" or (dummy and vr in _TEXT_VRS):
            return "D"
        return "K"

    def _keep(self, e: Elem, vr: str, dummy: bool) -> Elem:
        if e.items is not None:
            return Elem(
                e.tag, e.vr, items=[self.dataset(i, dummy=dummy) for i in e.items]
            )
        if vr == "AS":
            return Elem(e.tag, e.vr, value=_cap_age(e.value))
        if vr in _KEPT_TEXT_VRS and e.value:
            self._kept.append(e.value)
        return e

    def _dummy(self, e: Elem, vr: str) -> Elem:
        if e.items is not None:
            # The SR content tree and the presentation graphics keep their meaning: their
            # items follow the profile (free text in them is handled apart).
            dummy = e.tag not in (CONTENT_SEQUENCE, GRAPHIC_ANNOTATION)
            return Elem(
                e.tag, e.vr, items=[self.dataset(i, dummy=dummy) for i in e.items]
            )
        if vr in ("DA", "DT") and self._dates != "D":
            return self._date(e, vr)
        return Elem(e.tag, e.vr, value=_DUMMY.get(vr, b""))

    def _uid(self, e: Elem) -> Elem:
        if self._keep_uids:
            return e
        parts = [p.strip(b"\x00 ") for p in e.value.split(b"\\")]
        new = b"\\".join(
            self.mapper.uid(p.decode("latin-1")).encode() if p else b"" for p in parts
        )
        return Elem(e.tag, "UI", value=new)

    def _clean(self, e: Elem, vr: str, dummy: bool) -> Elem | None:
        if e.items is not None:
            return Elem(
                e.tag, e.vr, items=[self.dataset(i, dummy=dummy) for i in e.items]
            )
        if vr in ("DA", "DT"):
            return self._date(e, vr)
        if vr in _TEXT_VRS:
            return Elem(e.tag, e.vr, value=clean_text(e.value, self.terms))
        return self._keep(e, vr, dummy)  # TM, numbers (times stay with modified dates)

    def _date(self, e: Elem, vr: str) -> Elem:
        """Dates moved by the patient's offset (``K`` under Full Dates); invalid ones
        emptied."""
        if self._dates != "C":
            return self._keep(e, vr, False)
        shift = self.mapper.shift_date if vr == "DA" else self.mapper.shift_datetime
        values = []
        for part in text_of(e.value).split("\\"):
            moved = shift(part, self.patient) if part.strip() else None
            if moved is not None:
                values.append(moved)
        return Elem(e.tag, e.vr, value="\\".join(values).encode())


def _cap_age(value: bytes) -> bytes:
    """HIPAA Safe Harbor: an Age String over 89 years becomes ``090Y``."""
    out = []
    for part in value.rstrip(b"\x00 ").split(b"\\"):
        if part.endswith(b"Y") and part[:-1].isdigit() and int(part[:-1]) > 89:
            part = b"090Y"
        out.append(part)
    return b"\\".join(out)
