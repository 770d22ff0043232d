"""The fast header reader: walk the data elements of a file without pydicom.

Header parsing is what makes a pydicom loop slow (NOTES.md: 0.4-0.7 ms per file whatever the
payload). For the common native encodings (explicit and implicit VR little endian, and the
explicit-VR encapsulated syntaxes) :func:`fast_header` walks the data elements itself from the
first few KiB of the file, up to (7FE0,0010) Pixel Data, keeps the tags it needs, skips every
other value and sequence without decoding it, and records where the pixel bytes lie. Anything
unusual (big endian, deflate, enhanced multi-frame functional groups, an encoding surprise)
raises :class:`~clisonix_cli.dicom.header.Fallback`: pydicom reads those.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from clisonix_cli.dicom.header import (
    CSA_CREATOR,
    FLAG_SEQUENCES,
    FLOAT_LISTS,
    INT_LISTS,
    MAX_CSA_BYTES,
    MAX_VALUE_BYTES,
    MULTI_VALUED,
    UNDEFINED_LENGTH,
    WANTED,
    Fallback,
    FileHeader,
    NotDicom,
    Walk,
    checked_pixel_info,
    csa_fields,
)
from clisonix_cli.dicom.syntax import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from clisonix_cli.errors import TruncatedFileError

__all__ = ["HEAD_BYTES", "fast_header", "looks_like_dataset"]

HEAD_BYTES = 16384  # the first read: the header of nearly every single-frame file
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_FUNCTIONAL_GROUPS = frozenset({0x52009229, 0x52009230})
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_LONG_VRS = frozenset(
    {
        b"OB",
        b"OD",
        b"OF",
        b"OL",
        b"OV",
        b"OW",
        b"SQ",
        b"SV",
        b"UC",
        b"UN",
        b"UR",
        b"UT",
        b"UV",
    }
)
_VRS = _LONG_VRS | frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip


_S_HDR_EXPLICIT = struct.Struct("<HH2sH")
_S_HDR_IMPLICIT = struct.Struct("<HHI")
_S_U32 = struct.Struct("<I")
_S_U16 = struct.Struct("<H")


class _Buffer:
    """A window on the file: the bytes at [base, base + len(buf)), refilled on demand."""

    __slots__ = ("base", "buf", "fh", "size")

    def __init__(self, fh: BinaryIO, size: int, first: bytes) -> None:
        self.fh = fh
        self.size = size
        self.base = 0
        self.buf = first

    def window(self, pos: int, need: int) -> tuple[bytes, int]:
        """Return (buf, offset of ``pos`` in buf) with at least ``need`` bytes available.

        Raises ``TruncatedFileError`` when the file ends before ``pos + need``.
        """
        off = pos - self.base
        if 0 <= off and off + need <= len(self.buf):
            return self.buf, off
        if pos + need > self.size:
            raise TruncatedFileError(
                f"the file ends at byte {self.size}, inside a data element that needs "
                f"bytes up to {pos + need}"
            )
        self.fh.seek(pos)
        self.buf = self.fh.read(max(need, HEAD_BYTES))
        self.base = pos
        if len(self.buf) < need:  # the file shrank while we read it
            raise TruncatedFileError(f"the file ends before byte {pos + need}")
        return self.buf, 0


def _skip_undefined(r: _Buffer, pos: int, implicit: bool, depth: int) -> int:
    """Skip the items of an undefined-length sequence starting at ``pos``; return the end."""
    if depth > 16:
        raise Fallback("sequences nested deeper than 16 levels")
    while True:
        buf, off = r.window(pos, 8)
        group, elem, length = _S_HDR_IMPLICIT.unpack_from(buf, off)
        tag = (group << 16) | elem
        if tag == _SEQ_END:
            return pos + 8
        if tag != _ITEM:
            raise Fallback(
                f"expected an item tag in a sequence, found ({group:04X},{elem:04X})"
            )
        pos += 8
        if length != UNDEFINED_LENGTH:
            pos += length
            continue
        pos = _walk_item(r, pos, implicit, depth + 1)


def _walk_item(r: _Buffer, pos: int, implicit: bool, depth: int) -> int:
    """Skip the elements of an undefined-length item up to its delimiter; return the end."""
    while True:
        buf, off = r.window(pos, 8)
        group, elem = struct.unpack_from("<HH", buf, off)
        tag = (group << 16) | elem
        if tag == _ITEM_END:
            return pos + 8
        pos, _ = _element_end(r, pos, implicit, depth)


def _explicit_value(
    r: _Buffer, pos: int, vr: bytes, length: int
) -> tuple[int, int] | None:
    """(value start, value length) of the explicit-VR element at ``pos``; None: unknown VR.

    ``length`` is the 16-bit length of the element header; long VRs (PS3.5 7.1.2) hold a
    32-bit length after two reserved bytes instead.
    """
    if vr in _LONG_VRS:
        buf, off = r.window(pos, 12)
        return pos + 12, _S_U32.unpack_from(buf, off + 8)[0]
    if vr in _VRS:
        return pos + 8, length
    return None


def _element_end(r: _Buffer, pos: int, implicit: bool, depth: int) -> tuple[int, int]:
    """End of the element starting at ``pos`` (nested sequences walked); and its value start."""
    buf, off = r.window(pos, 8)
    if implicit:
        _, _, length = _S_HDR_IMPLICIT.unpack_from(buf, off)
        start = pos + 8
        if length == UNDEFINED_LENGTH:
            return _skip_undefined(r, start, True, depth), start
        return start + length, start
    _, _, vr, length = _S_HDR_EXPLICIT.unpack_from(buf, off)
    found = _explicit_value(r, pos, vr, length)
    if found is None:
        raise Fallback(f"unknown VR {vr!r}")
    start, length = found
    if length == UNDEFINED_LENGTH:
        # an undefined-length UN holds an implicit VR little endian sequence (PS3.5 6.2.2)
        return _skip_undefined(r, start, implicit or vr == b"UN", depth), start
    return start + length, start


# One dict lookup per element: keyword of a wanted tag, or 1 = pixel data, 2 = enhanced.
_ACTION: dict[int, str | int] = {tag: kw for tag, (kw, _) in WANTED.items()}
_ACTION.update({t: 1 for t in _PIXEL_TAGS})
_ACTION.update({t: 2 for t in _FUNCTIONAL_GROUPS})
_ACTION.update({t: 3 for t in FLAG_SEQUENCES})
_VR_LONG: dict[bytes, bool] = {vr: vr in _LONG_VRS for vr in _VRS}


def _walk_dataset(r: _Buffer, pos: int, implicit: bool) -> Walk:
    """Walk top-level elements from ``pos`` to the pixel data (or the end of the file).

    The hot loop of the index: one ``unpack_from`` and one dict lookup per element; values
    of unwanted elements and whole defined-length sequences are skipped without reading.
    """
    out = Walk()
    values = out.values
    action_of = _ACTION.get
    vr_long = _VR_LONG.get
    unpack_hdr = (_S_HDR_IMPLICIT if implicit else _S_HDR_EXPLICIT).unpack_from
    unpack_u32 = _S_U32.unpack_from
    size = r.size
    buf, base = r.buf, r.base
    blen = len(buf)
    creators: dict[int, str] = {}
    while True:
        off = pos - base
        if off < 0 or off + 12 > blen:
            if pos >= size:
                if pos > size:
                    raise TruncatedFileError(
                        f"the last data element ends at byte {pos}, past the end of the "
                        f"file ({size} bytes)"
                    )
                return out  # clean end of file: no pixel data
            buf, off = r.window(pos, min(12, size - pos))
            base, blen = r.base, len(buf)
            if blen - off < 8:
                raise TruncatedFileError(
                    f"the file ends inside a data element at byte {pos}"
                )
        if implicit:
            group, elem, length = unpack_hdr(buf, off)
            start = pos + 8
            vr = b""
        else:
            group, elem, vr, length = unpack_hdr(buf, off)
            is_long = vr_long(vr)
            if is_long:
                if blen - off < 12:
                    buf, off = r.window(pos, 12)
                    base, blen = r.base, len(buf)
                length = unpack_u32(buf, off + 8)[0]
                start = pos + 12
            elif is_long is None:
                raise Fallback(f"unknown VR {vr!r} at ({group:04X},{elem:04X})")
            else:
                start = pos + 8
        tag = (group << 16) | elem
        action = action_of(tag)
        if action is not None:
            if action == 1:
                out.pixel_tag = tag
                out.pixel_offset = start
                out.pixel_length = None if length == UNDEFINED_LENGTH else length
                return out
            if action == 2:
                raise Fallback("enhanced multi-frame functional groups")
            if action == 3:  # a sequence whose presence is recorded, content skipped
                values[FLAG_SEQUENCES[tag]] = b"1"
                action = None
        if length == UNDEFINED_LENGTH:
            pos = _skip_undefined(r, start, implicit or vr == b"UN", 1)
            buf, base = r.buf, r.base
            blen = len(buf)
            continue
        end = start + length
        if action is not None:
            take = min(length, MAX_VALUE_BYTES)  # capped: memory never follows a value
            voff = start - base
            if voff + take <= blen:
                values[action] = buf[voff : voff + take]  # type: ignore[index]
            else:
                if end > size:
                    raise TruncatedFileError(
                        f"({group:04X},{elem:04X}) needs bytes up to {end}, the file has {size}"
                    )
                vbuf, voff = r.window(start, take)
                values[action] = vbuf[voff : voff + take]  # type: ignore[index]
                buf, base = r.buf, r.base
                blen = len(buf)
        elif (
            group == 0x0029
            and length <= MAX_CSA_BYTES
            and b"MOSAIC" in values.get("ImageType", b"")
        ):
            vbuf, voff = r.window(start, length)
            if 0x0010 <= elem < 0x0100:
                creators[elem] = (
                    vbuf[voff : voff + length].decode("latin-1").strip(" \x00")
                )
            elif (elem & 0xFF) == 0x10 and creators.get(elem >> 8) == CSA_CREATOR:
                out.csa = vbuf[voff : voff + length]
            buf, base = r.buf, r.base
            blen = len(buf)
        elif group > 0x7FE0 and group != 0xFFFC:
            return out  # past the pixel data group: no pixels
        pos = end


def _text(raw: bytes) -> str | None:
    return raw.decode("latin-1").strip(" \x00") or None


def _us(raw: bytes) -> int | None:
    return _S_U16.unpack_from(raw, 0)[0] if len(raw) >= 2 else None


def _ds(raw: bytes) -> float | None:
    text = raw.decode("latin-1").strip(" \x00")
    return float(text.split("\\", 1)[0]) if text else None


def _is(raw: bytes) -> int | None:
    text = raw.decode("latin-1").strip(" \x00")
    return int(float(text.split("\\", 1)[0])) if text else None


def _fd(raw: bytes) -> float | None:
    return float(struct.unpack_from("<d", raw, 0)[0]) if len(raw) >= 8 else None


def _floats(raw: bytes) -> tuple[float, ...] | None:
    text = raw.decode("latin-1").strip(" \x00")
    return tuple(float(p) for p in text.split("\\")) if text else None


def _strings(raw: bytes) -> tuple[str, ...] | None:
    text = raw.decode("latin-1").strip(" \x00")
    return tuple(p.strip(" \x00") for p in text.split("\\")) if text else None


def _us_list(raw: bytes) -> tuple[int, ...] | None:
    n = len(raw) // 2
    return struct.unpack_from(f"<{n}H", raw, 0) if n else None


def _at_list(raw: bytes) -> tuple[int, ...] | None:
    n = len(raw) // 4
    pairs = struct.unpack_from(f"<{2 * n}H", raw, 0)
    return tuple((pairs[2 * k] << 16) | pairs[2 * k + 1] for k in range(n)) or None


def _flag(raw: bytes) -> bool:
    return True


def _decoder(keyword: str, vr: str) -> Callable[[bytes], Any]:
    if keyword in FLAG_SEQUENCES.values():
        return _flag
    if vr == "AT":
        return _at_list
    if keyword in INT_LISTS:
        return _us_list
    if keyword in FLOAT_LISTS:
        return _floats
    if keyword in MULTI_VALUED:
        return _strings
    return {"US": _us, "DS": _ds, "IS": _is, "FD": _fd}.get(vr, _text)


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    kw: _decoder(kw, vr)
    for kw, vr in [*WANTED.values(), *((f, "") for f in FLAG_SEQUENCES.values())]
}


# Most values repeat across the files of a series (manufacturer, orientation, spacing...):
# decoded values are memoised by their raw bytes (bounded; values are immutable).
_DECODE_CACHE: dict[tuple[str, bytes], Any] = {}
_DECODE_CACHE_MAX = 65536
_MISSING = object()


def _decode_values(raw: dict[str, bytes]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    decoders = _DECODERS
    cache = _DECODE_CACHE
    for kw, data in raw.items():
        key = (kw, data)
        val = cache.get(key, _MISSING)
        if val is _MISSING:
            try:
                val = decoders[kw](data)
            except (ValueError, struct.error):
                val = None  # a malformed number: treat as absent, like a missing attribute
            if len(cache) >= _DECODE_CACHE_MAX:
                cache.clear()
            cache[key] = val
        if val is not None:
            values[kw] = val
    return values


def _parse_meta(r: _Buffer, pos: int) -> tuple[str | None, int]:
    """Walk group 0002 (always explicit VR little endian); return (syntax UID, dataset start)."""
    syntax: str | None = None
    while True:
        if pos + 8 > r.size:
            if pos != r.size:
                raise TruncatedFileError(
                    f"the file ends at byte {r.size}, inside the file meta (group 0002)"
                )
            return syntax, pos
        buf, off = r.window(pos, 8)
        group, elem, vr, length = _S_HDR_EXPLICIT.unpack_from(buf, off)
        if group != 0x0002:
            return syntax, pos
        found = _explicit_value(r, pos, vr, length)
        if found is None:
            raise NotDicom(
                f"file meta element ({group:04X},{elem:04X}) has no valid VR"
            )
        start, length = found
        if length == UNDEFINED_LENGTH:
            raise NotDicom("undefined length in the file meta group")
        if elem == 0x0010:
            vbuf, voff = r.window(start, length)
            syntax = vbuf[voff : voff + length].decode("latin-1").strip(" \x00")
        pos = start + length


def looks_like_dataset(head: bytes) -> str | None:
    """For a file without the DICM marker: 'meta', 'explicit', 'implicit' or None."""
    if len(head) < 8:
        return None
    group, elem = struct.unpack_from("<HH", head, 0)
    vr = head[4:6]
    if group == 0x0002 and vr in _VRS:
        return "meta"
    if group != 0x0008:
        return None
    if vr in _VRS:
        return "explicit"
    length = _S_U32.unpack_from(head, 4)[0]
    if elem <= 0x0018 and length < 1024:
        return "implicit"
    return None


def _fast_walk(fh: BinaryIO, size: int, head: bytes) -> tuple[str, Walk, str]:
    """Parse the file with the fast reader; return (syntax, walk, how the file starts).

    ``head`` holds the first bytes of the file (read once by the caller).
    """
    r = _Buffer(fh, size, head)
    if len(head) >= 132 and head[128:132] == b"DICM":
        start = "preamble"
        syntax, pos = _parse_meta(r, 132)
        if syntax is None:
            raise Fallback("no (0002,0010) Transfer Syntax UID in the file meta")
    else:
        kind = looks_like_dataset(head)
        if kind is None:
            raise NotDicom("no DICM marker and no dataset at the start")
        start = "raw"
        if kind == "meta":
            syntax, pos = _parse_meta(r, 0)
            if syntax is None:
                raise Fallback("no (0002,0010) Transfer Syntax UID in the file meta")
        else:
            syntax, pos = (EXPLICIT_LE if kind == "explicit" else IMPLICIT_LE), 0
    if syntax in (DEFLATED_LE, EXPLICIT_BE):
        raise Fallback(f"transfer syntax {syntax}")
    if (
        syntax != IMPLICIT_LE
        and syntax != EXPLICIT_LE
        and not syntax.startswith(("1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5"))
    ):
        raise Fallback(f"transfer syntax {syntax}")
    return syntax, _walk_dataset(r, pos, syntax == IMPLICIT_LE), start


def fast_header(fh: BinaryIO, head: bytes, size: int, rel: str) -> FileHeader:
    """The fast reader's header; raises ``Fallback`` for what it leaves to pydicom."""
    syntax, walk, start = _fast_walk(fh, size, head)
    values = _decode_values(walk.values)
    if start == "raw" and not (
        values.get("SOPClassUID") or (values.get("Rows") and values.get("Columns"))
    ):
        raise NotDicom("no SOP Class UID and no image matrix")
    info = checked_pixel_info(values, syntax, walk, size)
    csa = csa_fields(walk.csa) if walk.csa is not None else None
    if "MOSAIC" in (values.get("ImageType") or ()) and csa is None:
        raise Fallback("mosaic without a CSA header in reach")
    return FileHeader(rel, values, info, bool(walk.pixel_tag), None, csa, "fast")
