"""The pieces: the profile table, the keyed mapping, the PHI guard, element-level I/O."""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
from pathlib import Path

import pydicom
import pytest

from clisonix_cli.dicom.deid import profile
from clisonix_cli.dicom.deid.guard import Terms, clean_text, hits
from clisonix_cli.dicom.deid.keys import (
    MAX_SHIFT_DAYS,
    MIN_SHIFT_DAYS,
    DeidKey,
    Mapper,
    patient_of,
)
from clisonix_cli.dicom.deid.rawio import encode, encode_meta, read_object
from clisonix_cli.errors import DeidOptionError, InputError

from .conftest import KEY, OTHER_KEY, expected_offset, expected_uid

ROOT = Path(__file__).resolve().parents[2]

# --- the table ------------------------------------------------------------------------------


def test_table_is_the_standard_table() -> None:
    rows = profile.table()
    assert profile.table_edition() == "2024e"
    assert len(rows) >= 620  # 621 rows in PS3.15 2024e, plus clisonix's additions
    by_tag = {r.tag: r for r in rows}
    assert by_tag["(0010,0010)"].basic == "Z"  # Patient's Name
    assert by_tag["(0010,0020)"].basic == "Z/D"  # Patient ID
    assert by_tag["(0020,000D)"].basic == "U"  # Study Instance UID
    assert by_tag["(0008,0020)"].options["modified_dates"] == "C"  # Study Date
    assert by_tag["(0010,1010)"].options["patient_characteristics"] == "K"  # Age
    assert by_tag["(gggg,eeee) odd"].options["safe_private"] == "C"
    codes = {a for r in rows for a in [r.basic, *r.options.values()]}
    assert codes <= {
        "X",
        "Z",
        "D",
        "U",
        "C",
        "K",
        "X/Z",
        "X/D",
        "Z/D",
        "X/Z/D",
        "X/Z/U*",
    }
    assert len(profile.safe_private()) > 100  # PS3.15 Table E.3.10-1


def test_table_tool_reads_the_standard_text() -> None:
    """tools/ps315_table.py parses the XHTML rendering of Table E.1-1 and E.3.10-1."""
    spec = importlib.util.spec_from_file_location(
        "ps315_table", ROOT / "tools/ps315_table.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    head = "".join(f"<th><p>{h}</p></th>" for h in [
        "Attribute Name", "Tag", "Retd. (from PS3.6 )", "In Std. Comp. IOD (from PS3.3 )",
        "Basic Prof.", *(h for h, _ in tool.OPTION_COLUMNS)])  # fmt: skip
    row = "".join(f"<td><p>{c}</p></td>" for c in [
        "Patient&#8203;'s Name", "(0010,0010)", "N", "Y", "Z", *[""] * 10])  # fmt: skip
    html = f'<a id="table_E.1-1"></a><table><tr>{head}</tr><tr>{row}</tr></table>'
    (parsed,) = tool.read_xhtml(html.replace(" )", ")"))
    assert parsed["tag"] == "(0010,0010)" and parsed["basic"] == "Z"
    assert parsed["name"] == "Patient's Name"


@pytest.mark.parametrize(
    ("options", "tag", "action"),
    [
        ((), 0x00100020, "D"),  # Z/D -> D
        ((), 0x00080022, "Z"),  # Acquisition Date X/Z -> Z
        ((), 0x00081110, "X"),  # Referenced Study Sequence X/Z: a Type 3 sequence
        ((), 0x00400555, "Z"),  # Acquisition Context Sequence: Type 2
        ((), 0x00082112, "U*"),  # Source Image Sequence X/Z/U*
        (("modified-dates",), 0x00080020, "C"),
        (("full-dates",), 0x00080020, "K"),
        (("retain-uids",), 0x0020000D, "K"),
        (("device-identity",), 0x00181000, "K"),
        (("institution-identity",), 0x00080080, "K"),
        (("clean-descriptors",), 0x0008103E, "C"),
        (("patient-characteristics", "clean-descriptors"), 0x00380500, "C"),
    ],
)
def test_resolved_actions(options: tuple[str, ...], tag: int, action: str) -> None:
    assert profile.resolve(options).actions[tag] == action


def test_option_parsing() -> None:
    assert profile.parse_options(None) == ("modified-dates",)
    assert profile.parse_options(["basic"]) == ()
    assert profile.parse_options(["clean-descriptors,retain-uids"]) == (
        "clean-descriptors", "retain-uids",
    )  # fmt: skip
    with pytest.raises(DeidOptionError):
        profile.parse_options(["what"])


# --- keyed mapping --------------------------------------------------------------------------


def test_uids_are_keyed_valid_and_stable() -> None:
    m, other = Mapper(DeidKey(KEY)), Mapper(DeidKey(OTHER_KEY))
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    new = m.uid(uid)
    assert new == expected_uid(uid) and new == Mapper(DeidKey(KEY)).uid(uid)
    assert new.startswith("2.25.") and len(new) <= 64 and new[5] != "0"
    assert other.uid(uid) != new and m.uid(uid + "1") != new
    assert "DeidKey(fingerprint=" in repr(DeidKey(KEY)) and KEY.decode() not in repr(
        DeidKey(KEY)
    )


def test_dates_move_by_the_patients_offset_and_keep_intervals() -> None:
    m = Mapper(DeidKey(KEY))
    offset = m.offset_days("MRN1")
    assert offset == expected_offset("MRN1")
    assert -MAX_SHIFT_DAYS < offset <= -MIN_SHIFT_DAYS
    a, b = m.shift_date("20200301", "MRN1"), m.shift_date("20200315", "MRN1")
    assert a is not None and b is not None
    assert (dt.date.fromisoformat(f"{b[:4]}-{b[4:6]}-{b[6:]}")
            - dt.date.fromisoformat(f"{a[:4]}-{a[4:6]}-{a[6:]}")).days == 14  # fmt: skip
    assert m.shift_datetime("20200301123456.5+0100", "MRN1") == f"{a}123456.5+0100"
    for bad in ("", "2020", "20201301", "2020-03-01", "abcdefgh"):
        assert m.shift_date(bad, "MRN1") is None
    assert m.shift_date("2020.03.01", "MRN1") == a  # ACR-NEMA form
    assert patient_of("  ", "1.2.3") == "study:1.2.3" and patient_of("X", "1.2") == "X"


def test_pseudonym_is_keyed() -> None:
    m = Mapper(DeidKey(KEY))
    assert m.pseudonym("MRN1") == m.pseudonym("MRN1") != m.pseudonym("MRN2")
    assert m.pseudonym("MRN1") != Mapper(DeidKey(OTHER_KEY)).pseudonym("MRN1")
    assert len(m.pseudonym("MRN1")) <= 16  # fits SH too


# --- the guard ------------------------------------------------------------------------------


def test_guard_matches_whole_tokens_and_exact_uids() -> None:
    t = Terms()
    t.add_name(b"LEE^ANNA^ZQ")
    t.add_word(b"MRN123", "PatientID")
    t.add_uid(b"1.2.3.44")
    assert hits(b"SLEEP study", t) == []  # LEE inside a word
    assert hits(b"patient lee here", t) == ["name"]  # any case, whole token
    assert hits(b"ID=MRN123;", t) == ["PatientID"]
    assert hits(b"2.25.1.2.3.445", t) == [] and hits(b"ref 1.2.3.44\x00", t) == ["UID"]
    assert hits(b"zq", t) == []  # under 3 characters: not searched
    t.add_word(b"ANONYMIZED", "name")  # clisonix's own vocabulary is never a term
    assert hits(b"ANONYMIZED", t) == []
    assert clean_text(b"Scan of Anna Lee, MRN123 ok", t) == b"Scan of , ok"


# --- element-level I/O ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["MR2_UNCR.dcm", "emri_small_big_endian.dcm", "liver_deflate.dcm", "693_UNCI.dcm",
     "explicit_VR-UN.dcm", "JPEG2000_UNC.dcm", "OBXXXX1A_rle.dcm"],
)  # fmt: skip
def test_parse_and_encode_round_trip(shared_data: Path, name: str) -> None:
    """Element-level parse + encode gives a dataset pydicom reads as the original."""
    path = shared_data / "pydicom-data" / name
    data = path.read_bytes()
    obj = read_object(io.BytesIO(data), len(data))
    parts = list(encode(obj.elems, obj.syntax))
    body = b"".join(
        p if isinstance(p, bytes) else data[p[0] : p[0] + p[1]] for p in parts
    )
    if obj.syntax.deflated:
        import zlib

        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = comp.compress(body) + comp.flush()
    meta = [(t, "UI" if t != 0x00020001 else "OB", v) for t, v in sorted(obj.meta.items())
            if t not in (0x00020000, 0x00020013, 0x00020016, 0x00020100)]  # fmt: skip
    rebuilt = pydicom.dcmread(io.BytesIO(encode_meta(meta) + body))
    original = pydicom.dcmread(path)
    for elem in original:
        if elem.tag.group == 0x0002 or elem.tag.element == 0:
            continue
        assert rebuilt[elem.tag].value == elem.value, elem.tag


@pytest.mark.parametrize(
    "data",
    [
        b"\x00" * 128
        + b"DICM"
        + b"\x02\x00\x10\x00UI\x04\x001.2\x00"
        + b"\x08\x00\x16\x00U",
        b"\x00" * 128 + b"DICM\x08\x00\x16\x00@@\x04\x00abcd",  # no valid VR
        b"\x00" * 128
        + b"DICM\x08\x00\x16\x00SQ\x00\x00\xff\xff\xff\xff\x08\x00\x10\x00",
    ],
)
def test_damaged_bytes_raise_input_errors(data: bytes) -> None:
    with pytest.raises(InputError):
        read_object(io.BytesIO(data), len(data))


# --- synth --phi ----------------------------------------------------------------------------


def test_phi_set_holds_every_canary_and_is_reproducible(
    phi_set: Path, tmp_path: Path
) -> None:
    from clisonix_cli.dicom.synth import plan, synthesize
    from clisonix_cli.dicom.synth_phi import canaries

    from .conftest import PHI_ARGS

    args = {k: v for k, v in PHI_ARGS.items() if k != "seed"}
    found = canaries(7, plan(phi=True, seed=7, **args))  # type: ignore[arg-type]
    blob = b"".join(
        p.relative_to(phi_set).as_posix().encode()
        + (p.read_bytes() if p.is_file() else b"")
        for p in sorted(phi_set.rglob("*"))
    )
    assert found and all(c.encode() in blob for c in found)
    again = tmp_path / "again"
    synthesize(again, phi=True, **PHI_ARGS)  # type: ignore[arg-type]
    assert {
        p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()
    } == {
        p.relative_to(phi_set): p.read_bytes()
        for p in phi_set.rglob("*")
        if p.is_file()
    }


def test_guard_reads_png_text_chunks_not_image_data() -> None:
    import struct
    import zlib

    from clisonix_cli.taskarray.deid_transform import png_text

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    terms = Terms()
    terms.add_name(b"DOE^JANE")
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", bytes(13))
    image = chunk(b"IDAT", zlib.compress(b"xx DOE xx"))  # pixels are not searched
    end = chunk(b"IEND", b"")
    assert hits(png_text(head + image + end), terms) == []
    for text in (
        chunk(b"tEXt", b"Comment\0Jane Doe"),
        chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"Jane Doe")),
        chunk(b"iTXt", b"Comment\0\1\0en\0\0" + zlib.compress(b"Jane Doe")),
    ):
        assert hits(png_text(head + text + image + end), terms), text[4:8]
