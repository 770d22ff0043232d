"""Element-level DICOM reading and writing: headers parsed, bulk values left in the file.

De-identification rewrites the header and copies the pixel data byte for byte, so it reads
elements as raw bytes (no pydicom ``Dataset``, no value conversion) and never loads a
bulk value (Pixel Data, Float Pixel Data, or any binary value over
:data:`BULK_BYTES`): :func:`read_object` records where such a value lies in the file, and
:func:`write_object` copies it from there in chunks.

Supported encodings: implicit VR little endian, explicit VR little and big endian (what
every other transfer syntax uses for the dataset), and deflated explicit VR little endian
(inflated in memory within the decoding caps of :mod:`clisonix_cli.dicom.limits`:
deflated objects are small documents, and a deflate bomb fails its file). Sequences of defined or
undefined length are parsed into items; on output every sequence and item gets a defined
length, except encapsulated pixel data, which is copied as it is.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from clisonix_cli.dicom.limits import InflatingReader, current_limits
from clisonix_cli.errors import InputError, TruncatedFileError

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
#: Binary values longer than this stay in the input file and are copied in chunks.
BULK_BYTES = 256 << 10
COPY_CHUNK = 1 << 20  # bulk values are copied in pieces of this size
_READ_AHEAD = 16 << 10  # the first read: the whole header of most files

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"


@dataclass(slots=True)
class Elem:
    """One element: tag, VR and either raw value bytes, items, or a bulk location.

    ``items`` holds the items of a sequence, each a list of elements. ``bulk`` is
    ``(offset, length)`` in the input file of a value left there; with ``encapsulated`` the
    span runs from the first item tag to the end of the sequence delimiter. ``raw`` holds
    the element's own encoded bytes as read (header and value): an element kept as it was
    is written back from them.
    """

    tag: int
    vr: str
    value: bytes = b""
    items: list[list[Elem]] | None = None
    bulk: tuple[int, int] | None = None
    encapsulated: bool = False
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class Syntax:
    """How the dataset after the file meta is encoded."""

    uid: str
    little: bool = True
    implicit: bool = False
    deflated: bool = False


def syntax_of(uid: str) -> Syntax:
    """The encoding of a transfer syntax (unknown ones: explicit VR little endian, as
    PS3.5 10 requires of every other syntax)."""
    uid = uid.strip("\x00 ")
    if uid == IMPLICIT_LE:
        return Syntax(uid, implicit=True)
    if uid == EXPLICIT_BE:
        return Syntax(uid, little=False)
    if uid == DEFLATED_LE:
        return Syntax(uid, deflated=True)
    return Syntax(uid)


@functools.lru_cache(maxsize=8192)
def dictionary_vr(tag: int) -> str:
    """The VR a tag has in the data dictionary (``UN`` when unknown or private data;
    ``LO`` for private creators; the first of an ambiguous ``US or SS``)."""
    group, elem = tag >> 16, tag & 0xFFFF
    if elem == 0:
        return "UL"  # group length
    if group & 1:
        return "LO" if 0x0010 <= elem <= 0x00FF else "UN"
    from pydicom.datadict import dictionary_VR

    try:
        vr = str(dictionary_VR(tag))
    except KeyError:
        return "UN"
    return vr.split(" or ")[0] if " or " in vr else vr


class Reader:
    """Buffered reading of a dataset from a file (or from bytes, for deflated data)."""

    __slots__ = ("base", "buf", "fh", "little", "pos", "size")

    def __init__(
        self, fh: BinaryIO | None, start: int, size: int, data: bytes = b""
    ) -> None:
        self.fh = fh
        self.base = start  # file offset of buf[0]
        self.buf = data
        self.pos = 0
        self.size = size  # file offset where the data end
        self.little = True

    def tell(self) -> int:
        """Offset in the file (or in the inflated bytes)."""
        return self.base + self.pos

    def at_end(self) -> bool:
        return self.tell() >= self.size

    def need(self, n: int) -> None:
        """Make ``n`` bytes from the current position available in ``buf``."""
        if self.pos + n <= len(self.buf):
            return
        if self.fh is None or self.tell() + n > self.size:
            raise TruncatedFileError(
                f"the file ends inside an element (offset {self.tell()}, {n} bytes "
                f"wanted, {self.size - self.tell()} left): truncated"
            )
        keep = self.buf[self.pos :]
        self.base += self.pos
        self.pos = 0
        self.fh.seek(self.base + len(keep))
        want = max(n - len(keep), _READ_AHEAD)
        self.buf = keep + self.fh.read(min(want, self.size - self.base - len(keep)))
        if len(self.buf) < n:
            raise TruncatedFileError(
                f"the file ends inside an element (offset {self.tell()}): truncated"
            )

    def read(self, n: int) -> bytes:
        self.need(n)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if self.tell() + n > self.size:
            raise TruncatedFileError(
                f"a value of {n} bytes at offset {self.tell()} runs past the end of the "
                f"file ({self.size} bytes): truncated"
            )
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        self.base = self.tell() + n
        self.buf = b""
        self.pos = 0


_LE = (struct.Struct("<HH"), struct.Struct("<I"), struct.Struct("<HH2sH"))
_BE = (struct.Struct(">HH"), struct.Struct(">I"), struct.Struct(">HH2sH"))


def _u32(r: Reader, at: int) -> int:
    v: int = (_LE if r.little else _BE)[1].unpack_from(r.buf, at)[0]
    return v


def _tag(r: Reader) -> int:
    """Peek the tag at the current position."""
    r.need(4)
    group, elem = (_LE if r.little else _BE)[0].unpack_from(r.buf, r.pos)
    return int((group << 16) | elem)


def _skip_fragments(r: Reader) -> None:
    """Skip the items of encapsulated pixel data up to and including its delimiter."""
    while True:
        r.need(8)
        tag, length = _tag(r), _u32(r, r.pos + 4)
        r.pos += 8
        if tag == SEQ_END:
            return
        if tag != ITEM or length == UNDEFINED:
            raise InputError(
                f"encapsulated pixel data holds ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                f"at offset {r.tell() - 8}, expected an item; the file is damaged"
            )
        r.skip(length)


def _items(r: Reader, length: int, implicit: bool, depth: int) -> list[list[Elem]]:
    if depth > 32:
        raise InputError("sequences nested more than 32 deep; refusing the file")
    items: list[list[Elem]] = []
    end = None if length == UNDEFINED else r.tell() + length
    while end is None or r.tell() < end:
        r.need(8)
        tag, ilen = _tag(r), _u32(r, r.pos + 4)
        r.pos += 8
        if tag == SEQ_END:
            break
        if tag != ITEM:
            raise InputError(
                f"a sequence holds ({tag >> 16:04X},{tag & 0xFFFF:04X}) at offset "
                f"{r.tell() - 8}, expected an item; the file is damaged"
            )
        items.append(_dataset(r, ilen, implicit, depth + 1, top=False))
    if end is not None and r.tell() != end:
        raise InputError("a sequence's items overrun its declared length")
    return items


_VR_NAMES = {
    vr.encode(): vr
    for vr in (
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM "
        "UC UI UL UN UR US UT UV"
    ).split()
}


def _dataset(
    r: Reader,
    length: int,
    implicit: bool,
    depth: int,
    *,
    top: bool,
    stop_after: int = 0xFFFFFFFF,
) -> list[Elem]:
    """Elements of one dataset or item (the hot loop: one pass, few calls per element)."""
    out: list[Elem] = []
    append = out.append
    s_tag, s_u32, s_hdr = _LE if r.little else _BE
    end: int | None = None  # an item of undefined length ends at its delimiter
    if top:
        end = r.size
    elif length != UNDEFINED:
        end = r.tell() + length
    buf, nbuf = r.buf, len(r.buf)
    while True:
        pos = r.pos
        here = r.base + pos
        if end is not None:
            if here >= end:
                break
            if top and end - here < 8:
                _trailing(r, end - here)
                break
        if pos + 12 > nbuf:
            r.need(min(12, r.size - here) if r.size - here >= 8 else 8)
            buf, nbuf, pos = r.buf, len(r.buf), r.pos
        group, elem = s_tag.unpack_from(buf, pos)
        tag = (group << 16) | elem
        if (
            tag == ITEM_END
        ):  # end of an undefined-length item (tolerated in a defined one)
            r.pos = pos + 8
            break
        if top and tag > stop_after:
            break
        if group == 0xFFFE or implicit:
            n = s_u32.unpack_from(buf, pos + 4)[0]
            vr = "" if group == 0xFFFE else dictionary_vr(tag)
            hl = 8
        else:
            raw_vr = buf[pos + 4 : pos + 6]
            vr = _VR_NAMES.get(raw_vr) or _odd_vr(raw_vr, tag, here)
            if vr in LONG_VRS:
                if pos + 12 > nbuf:
                    raise TruncatedFileError("the file ends inside an element header")
                n, hl = s_u32.unpack_from(buf, pos + 8)[0], 12
            else:
                n, hl = s_hdr.unpack_from(buf, pos)[3], 8
        stop = pos + hl + n
        if (
            n != UNDEFINED
            and stop <= nbuf
            and vr != "SQ"
            and vr != "UN"
            and not (top and (tag in PIXEL_TAGS or n > BULK_BYTES))
        ):  # the common case: a value in the buffer
            r.pos = stop
            append(
                Elem(tag, vr, buf[pos + hl : stop], None, None, False, buf[pos:stop])
            )
            continue
        r.pos = pos + hl
        if n == UNDEFINED and tag not in PIXEL_TAGS and vr not in BINARY_VRS:
            # A sequence; UN of undefined length holds implicit VR LE items (PS3.5 6.2.2).
            append(Elem(tag, "SQ", items=_items(r, n, implicit or vr == "UN", depth)))
        elif vr == "SQ" or (vr == "UN" and dictionary_vr(tag) == "SQ"):
            append(Elem(tag, "SQ", items=_items(r, n, implicit or vr == "UN", depth)))
        elif n == UNDEFINED:  # encapsulated pixel data (or an encapsulated icon)
            start = r.tell()
            _skip_fragments(r)
            span = (start, r.tell() - start)
            if top:
                append(Elem(tag, vr, bulk=span, encapsulated=True))
            else:
                append(Elem(tag, vr, value=_span_bytes(r, span), encapsulated=True))
        elif top and (tag in PIXEL_TAGS or (vr in BINARY_VRS and n > BULK_BYTES)):
            append(Elem(tag, vr, bulk=(r.tell(), n)))
            r.skip(n)
        else:
            head = buf[pos : pos + hl]
            value = r.read(n)
            append(Elem(tag, vr, value, None, None, False, head + value))
        buf, nbuf = r.buf, len(r.buf)
    return out


def _odd_vr(raw: bytes, tag: int, at: int) -> str:
    """A VR that is not in the list: valid if two capitals (a VR newer than this code)."""
    if len(raw) == 2 and 65 <= raw[0] <= 90 and 65 <= raw[1] <= 90:
        return raw.decode("ascii")
    raise InputError(
        f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) at offset {at} has no valid VR "
        f"({raw!r}); the file is damaged or mislabels its transfer syntax"
    )


def _trailing(r: Reader, n: int) -> None:
    """Fewer than 8 bytes after the last element: zero padding, or a truncated file."""
    rest = r.read(n)
    if rest.strip(b"\x00"):
        raise TruncatedFileError(
            f"the file ends inside an element header (offset {r.tell() - n}, {n} bytes "
            "left): truncated"
        )


def _span_bytes(r: Reader, span: tuple[int, int]) -> bytes:
    """Bytes of an already skipped span (small, nested encapsulated values only)."""
    start, n = span
    if r.fh is None:
        return bytes(r.buf[start - r.base : start - r.base + n])
    here = r.fh.tell()
    r.fh.seek(start)
    data = r.fh.read(n)
    r.fh.seek(here)
    return data


@dataclass
class DicomObject:
    """The parsed header of one file: its file meta and dataset elements (bulk values
    stay in the file)."""

    preamble: bool
    meta: dict[int, bytes]
    syntax: Syntax
    elems: list[Elem]
    size: int


def _meta(head: bytes) -> tuple[bool, dict[int, bytes], int]:
    """The preamble and group 0002 (always explicit VR little endian) from the first bytes
    of the file; returns where the dataset starts."""
    preamble = len(head) >= 132 and head[128:132] == b"DICM"
    pos = 132 if preamble else 0
    meta: dict[int, bytes] = {}
    while pos + 8 <= len(head):
        group, elem, raw_vr, short = _LE[2].unpack_from(head, pos)
        if group != 0x0002:
            break
        vr = raw_vr.decode("latin-1")
        if vr in LONG_VRS:
            if pos + 12 > len(head):
                raise TruncatedFileError(
                    "the file ends inside its file meta information"
                )
            length, pos = _LE[1].unpack_from(head, pos + 8)[0], pos + 12
        else:
            length, pos = short, pos + 8
        if pos + length > len(head):
            raise TruncatedFileError(
                "the file meta information is longer than the file or than 64 KiB"
            )
        meta[(group << 16) | elem] = head[pos : pos + length]
        pos += length
    return preamble, meta, pos


def text_of(value: bytes) -> str:
    """A text value without its padding (ASCII-compatible decoding, never fails)."""
    return value.rstrip(b"\x00 ").decode("latin-1").strip()


def read_object(
    fh: BinaryIO, size: int, *, stop_after: int = 0xFFFFFFFF
) -> DicomObject:
    """Parse a Part 10 file (or a bare dataset) up to its end, leaving bulk values.

    Parameters
    ----------
    fh : binary file
        Positioned at 0.
    size : int
        The file's size in bytes.
    stop_after : int
        Stop before the first top-level tag above this one (a quick look at the first
        groups; a deflated dataset is read whole).

    Raises
    ------
    InputError
        Damaged or truncated data (``TruncatedFileError`` for the latter).
    """
    head = fh.read(min(size, _READ_AHEAD))
    preamble, meta, start = _meta(head)
    ts = meta.get(0x00020010)
    syntax = syntax_of(text_of(ts)) if ts is not None else _guess(head[start:])
    if syntax.deflated:
        fh.seek(start)
        name = str(getattr(fh, "name", "the file"))
        data = InflatingReader(fh, current_limits().allowed(size), name).read()
        r = Reader(None, 0, len(data), data)
        elems = _dataset(r, UNDEFINED, False, 0, top=True)
        for e in elems:  # nothing stays behind in a deflated stream: values inline
            if e.bulk is not None:
                start_, n = e.bulk
                e.value, e.bulk = data[start_ : start_ + n], None
        return DicomObject(preamble, meta, syntax, elems, size)
    r = Reader(fh, start, size, head[start:])
    r.little = syntax.little
    elems = _dataset(r, UNDEFINED, syntax.implicit, 0, top=True, stop_after=stop_after)
    return DicomObject(preamble, meta, syntax, elems, size)


def _guess(head: bytes) -> Syntax:
    """No file meta: explicit VR little endian if the first element has a VR, else
    implicit VR little endian (as pydicom and dcmtk guess)."""
    if len(head) >= 6 and 65 <= head[4] <= 90 and 65 <= head[5] <= 90:
        return Syntax(EXPLICIT_LE)
    return Syntax(IMPLICIT_LE, implicit=True)


# --- writing -------------------------------------------------------------------------------


def _pad(vr: str, value: bytes) -> bytes:
    if len(value) % 2 == 0:
        return value
    return value + (b"\x00" if vr in ("UI", "OB", "UN") else b" ")


def encode_header(tag: int, vr: str, length: int, syntax: Syntax) -> bytes:
    """An element header in the dataset's encoding."""
    end = "<" if syntax.little else ">"
    group, elem = tag >> 16, tag & 0xFFFF
    if syntax.implicit or group == 0xFFFE:
        return struct.pack(end + "HHI", group, elem, length)
    if vr in LONG_VRS:
        return struct.pack(end + "HH2sHI", group, elem, vr.encode(), 0, length)
    return struct.pack(end + "HH2sH", group, elem, vr.encode(), length)


def encode(elems: list[Elem], syntax: Syntax) -> Iterator[bytes | tuple[int, int]]:
    """The encoded elements: bytes, and ``(offset, length)`` for each bulk value."""
    for e in elems:
        if e.raw:
            yield e.raw
        elif e.items is not None:
            body = b"".join(_encode_items(e.items, syntax))
            yield encode_header(e.tag, e.vr, len(body), syntax) + body
        elif e.bulk is not None:
            length = UNDEFINED if e.encapsulated else e.bulk[1]
            yield encode_header(e.tag, e.vr, length, syntax)
            yield e.bulk
        elif e.encapsulated:
            yield encode_header(e.tag, e.vr, UNDEFINED, syntax) + e.value
        else:
            value = _pad(e.vr, e.value)
            if not syntax.implicit and e.vr not in LONG_VRS and len(value) > 0xFFFF:
                raise InputError(
                    f"({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) {e.vr} value of "
                    f"{len(value)} bytes does not fit a 16-bit length"
                )
            yield encode_header(e.tag, e.vr, len(value), syntax) + value


def encode_runs(elems: list[Elem], syntax: Syntax) -> list[bytes | tuple[int, int]]:
    """:func:`encode` with consecutive bytes joined: a few large pieces to write."""
    out: list[bytes | tuple[int, int]] = []
    run: list[bytes] = []
    for p in encode(elems, syntax):
        if isinstance(p, bytes):
            run.append(p)
        else:
            out.append(b"".join(run))
            out.append(p)
            run = []
    out.append(b"".join(run))
    return out


def _encode_items(items: list[list[Elem]], syntax: Syntax) -> Iterator[bytes]:
    for item in items:
        parts = list(encode(item, syntax))
        body = b"".join(p for p in parts if isinstance(p, bytes))
        yield encode_header(ITEM, "", len(body), syntax) + body


def encode_meta(meta: list[tuple[int, str, bytes]]) -> bytes:
    """Preamble, ``DICM`` and group 0002 with its group length (explicit VR LE)."""
    ex = Syntax(EXPLICIT_LE)
    body = b"".join(
        encode_header(tag, vr, len(_pad(vr, v)), ex) + _pad(vr, v)
        for tag, vr, v in meta
    )
    length = encode_header(0x00020000, "UL", 4, ex) + struct.pack("<I", len(body))
    return b"\x00" * 128 + b"DICM" + length + body
