"""The pydicom header reader: what the fast reader leaves (big endian, deflate, enhanced).

Enhanced multi-frame objects are read here, with their per-frame functional groups (geometry,
scaling, dimension indices) turned into one plain dict per frame. pydicom stays quiet and
does not validate: its warnings and log lines can quote element values.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clisonix_cli.dicom import limits
from clisonix_cli.dicom.header import (
    CSA_CREATOR,
    FLAG_SEQUENCES,
    FLOAT_LISTS,
    INT_LISTS,
    KEYWORDS,
    MAX_VALUE_BYTES,
    MULTI_VALUED,
    UNDEFINED_LENGTH,
    VR_OF,
    FileHeader,
    NotDicom,
    Walk,
    checked_pixel_info,
    csa_fields,
)
from clisonix_cli.dicom.pixels_pydicom import file_has_pixel_tag
from clisonix_cli.dicom.syntax import (
    DEFLATED_LE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    NATIVE_SYNTAXES,
)
from clisonix_cli.errors import (
    ClisonixError,
    InputError,
    PixelDataSizeError,
    TruncatedFileError,
)
from clisonix_cli.fsio import open_regular

__all__ = ["pydicom_header"]


def _capped(ds: Any, keyword: str) -> Any:
    """``ds.get(keyword)``, None when the value is longer than the index keeps (never read)."""
    try:
        raw = ds.get_item(keyword, keep_deferred=True)
    except (KeyError, ValueError, TypeError):
        return None
    length = getattr(raw, "length", None) if raw is not None else None
    if isinstance(length, int) and MAX_VALUE_BYTES < length < UNDEFINED_LENGTH:
        return None
    return ds.get(keyword)


def _plain(value: Any, keyword: str) -> Any:
    """A pydicom value as plain Python (tuples for multi-valued), None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, str | bytes) and len(value) > MAX_VALUE_BYTES:
        value = value[:MAX_VALUE_BYTES]
    vr = VR_OF.get(keyword, "")
    seq = _as_list(value)
    if keyword in MULTI_VALUED:
        if keyword in FLOAT_LISTS:
            return tuple(float(v) for v in seq)
        if keyword in INT_LISTS:
            return tuple(int(v) for v in seq)
        return tuple(str(v).strip(" \x00") for v in seq)
    if not seq:
        return None
    value = seq[0]
    if vr in ("DS", "FD"):
        return float(value)
    if vr in ("IS", "US"):
        return int(value)
    return str(value).strip()


def _first(item: Any, seq_kw: str, attr: str) -> Any:
    """``item.<seq_kw>[0].<attr>`` or None."""
    if item is None:
        return None
    seq = item.get(seq_kw)
    if not seq:
        return None
    return seq[0].get(attr)


def _enhanced_frames(ds: Any, n_frames: int) -> list[dict[str, Any]]:
    """Per-frame geometry, scaling and dimension indices of an enhanced multi-frame object."""
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    frames: list[dict[str, Any]] = []
    top_slope = ds.get("RescaleSlope")
    top_inter = ds.get("RescaleIntercept")
    for i in range(n_frames):
        item = per_frame[i] if i < len(per_frame) else None

        def find(seq_kw: str, attr: str, item: Any = item) -> Any:
            val = _first(item, seq_kw, attr)
            return val if val is not None else _first(shared, seq_kw, attr)

        fc = item.get("FrameContentSequence") if item is not None else None
        fc0 = fc[0] if fc else None
        slope = find("PixelValueTransformationSequence", "RescaleSlope")
        inter = find("PixelValueTransformationSequence", "RescaleIntercept")
        ipp = find("PlanePositionSequence", "ImagePositionPatient")
        iop = find("PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = find("PixelMeasuresSequence", "PixelSpacing")
        dims = fc0.get("DimensionIndexValues") if fc0 is not None else None
        if dims is not None and not isinstance(dims, list | tuple):
            dims = [dims]
        frames.append(
            {
                "ImagePositionPatient": tuple(float(v) for v in ipp) if ipp else None,
                "ImageOrientationPatient": tuple(float(v) for v in iop)
                if iop
                else None,
                "PixelSpacing": tuple(float(v) for v in spacing) if spacing else None,
                "SliceThickness": _num(find("PixelMeasuresSequence", "SliceThickness")),
                "SpacingBetweenSlices": _num(
                    find("PixelMeasuresSequence", "SpacingBetweenSlices")
                ),
                "RescaleSlope": _num(slope if slope is not None else top_slope),
                "RescaleIntercept": _num(inter if inter is not None else top_inter),
                "EchoTime": _num(find("MREchoSequence", "EffectiveEchoTime")),
                "StackID": str(fc0.get("StackID"))
                if fc0 is not None and fc0.get("StackID") is not None
                else None,  # noqa: E501
                "InStackPositionNumber": _int(fc0.get("InStackPositionNumber"))
                if fc0 is not None
                else None,  # noqa: E501
                "TemporalPositionIndex": _int(fc0.get("TemporalPositionIndex"))
                if fc0 is not None
                else None,  # noqa: E501
                "FrameAcquisitionNumber": _int(fc0.get("FrameAcquisitionNumber"))
                if fc0 is not None
                else None,  # noqa: E501
                "DimensionIndexValues": tuple(int(v) for v in dims) if dims else None,
            }
        )
    return frames


def _as_list(value: Any) -> list[Any]:
    """A pydicom value as a list (MultiValue and sequences unpacked, scalars wrapped)."""
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _num(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """No pydicom warnings or log lines (they can quote element values), no validation."""
    import logging

    from pydicom import config

    logger = logging.getLogger("pydicom")
    old_level, old_mode = logger.level, config.settings.reading_validation_mode
    logger.setLevel(logging.CRITICAL)
    config.settings.reading_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(old_level)
        config.settings.reading_validation_mode = old_mode


@contextmanager
def _parse_errors() -> Iterator[None]:
    """Map what pydicom raises on a broken file to the index's errors (a skipped file)."""
    from pydicom.errors import InvalidDicomError

    try:
        yield
    except (ClisonixError, NotDicom):
        raise
    except InvalidDicomError as exc:
        raise NotDicom(str(exc)) from None
    except (EOFError, OSError) as exc:
        raise TruncatedFileError(
            f"the file ends early ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is a skipped file
        raise InputError(
            f"the header cannot be parsed ({type(exc).__name__})"
        ) from None


def _dcmread(path: Path, has_preamble: bool, **kw: Any) -> Any:
    import pydicom

    with _parse_errors():
        return pydicom.dcmread(path, force=not has_preamble, **kw)


def _deflated_header(path: Path, rel: str) -> tuple[Any, int | None] | None:
    """A Deflated Explicit VR Little Endian file's header, inflated up to its Pixel Data.

    None when the file is not deflated. pydicom alone would inflate the whole dataset (a
    1 MB file can hold 1 GB): here the scan inflates no further than the header, and no
    more than :attr:`~clisonix_cli.dicom.limits.DecodeLimits.header_bytes`.
    """
    with _parse_errors(), open_regular(path) as fh:
        if limits.file_syntax(fh) != DEFLATED_LE:
            return None
        cap = limits.current_limits().header_bytes
        return limits.read_deflated(fh, path, rel, limit=cap, stop_before_pixels=True)


def _check_deflated_pixels(info: Any, length: int | None) -> None:
    """The declared Pixel Data length of a deflated file against the matrix (not inflated)."""
    if length is None or length < 0:
        return
    need = limits.claimed_bytes(
        info.rows, info.cols, info.n_frames, info.samples_per_pixel, info.bits_allocated
    )
    if length < need:
        raise PixelDataSizeError(
            f"(7FE0,0010) 'Pixel Data' declares {length} bytes, the header claims {need} "
            "- the header or the pixel data is corrupt"
        )
    limits.check_native_length("", length, need, "(7FE0,0010) 'Pixel Data'")


def pydicom_header(path: Path, rel: str, size: int, has_preamble: bool) -> FileHeader:
    """Read the header with pydicom, pixel data deferred (``NotDicom``: not DICOM)."""
    with _quiet_pydicom():
        deflated = _deflated_header(path, rel)
        if deflated is not None:
            ds, deflated_pixels = deflated
        else:
            ds, deflated_pixels = _dcmread(path, has_preamble, defer_size=4096), None
        guessed_pixels = deflated_pixels is not None
        if len(ds) == 0 and deflated is None:
            # pydicom returns an empty dataset when the (encapsulated) pixel data is cut
            # short; the header itself may be fine: read it alone.
            ds = _dcmread(path, has_preamble, stop_before_pixels=True)
            guessed_pixels = file_has_pixel_tag(path)
        meta = getattr(ds, "file_meta", None)
        syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        if not syntax:
            syntax = IMPLICIT_LE if ds.is_implicit_VR else EXPLICIT_LE
        values: dict[str, Any] = {}
        for kw in KEYWORDS:
            try:
                val = _plain(_capped(ds, kw), kw)
            except Exception:  # noqa: BLE001 - a value pydicom cannot convert is absent
                val = None
            if val is not None:
                values[kw] = val
        if not values:
            raise NotDicom("no known attribute in the dataset")
        for tag, flag in FLAG_SEQUENCES.items():
            if tag in ds:
                values[flag] = True
        walk = Walk()
        pixel_tag = next(
            (t for t in (0x7FE00010, 0x7FE00008, 0x7FE00009) if t in ds), 0
        )
        if guessed_pixels:
            pixel_tag = 0x7FE00010
            if deflated is not None:  # seen in the inflated stream, not guessed
                walk.pixel_tag = pixel_tag
        elif pixel_tag:
            raw = ds.get_item(pixel_tag, keep_deferred=True)
            walk.pixel_tag = pixel_tag
            tell = getattr(raw, "value_tell", None)
            length = getattr(raw, "length", None)
            if syntax in NATIVE_SYNTAXES and tell is not None:
                walk.pixel_offset = int(tell)
                walk.pixel_length = (
                    None if length in (None, UNDEFINED_LENGTH) else int(length)
                )
        csa = None
        if "MOSAIC" in (values.get("ImageType") or ()):
            csa_raw = _private_csa(ds)
            csa = csa_fields(csa_raw)
        info = checked_pixel_info(values, syntax, walk, size)
        if deflated is not None:
            _check_deflated_pixels(info, deflated_pixels)
        frames = None
        if (
            "PerFrameFunctionalGroupsSequence" in ds
            or "SharedFunctionalGroupsSequence" in ds
        ):
            frames = _enhanced_frames(ds, info.n_frames)
    return FileHeader(
        path=rel,
        values=values,
        pixel=info,
        has_pixels=bool(pixel_tag),
        frames=frames,
        csa=csa,
        parser="pydicom",
    )


def _private_csa(ds: Any) -> bytes | None:
    try:
        block = ds.private_block(0x0029, CSA_CREATOR)
        elem = block[0x10]
    except KeyError:
        return None
    value = elem.value
    return bytes(value) if isinstance(value, bytes | bytearray) else None
