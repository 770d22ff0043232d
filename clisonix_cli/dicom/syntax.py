"""Transfer syntaxes: the UIDs clisonix tells apart, their names, and who decodes each.

Naming a syntax needs no pydicom import (0.3-0.45 s of the scan); which installed plugin
decodes it asks pydicom once per syntax. :func:`decoder_for` is the scan's decoder preflight
and the choice :func:`clisonix_cli.dicom.pixels.read_frames` makes.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "DEFLATED_FRAMES",
    "DEFLATED_LE",
    "EXPLICIT_BE",
    "EXPLICIT_LE",
    "IMPLICIT_LE",
    "J2K",
    "JPEG",
    "JPEG_LOSSLESS",
    "JPEG_LS",
    "NATIVE_SYNTAXES",
    "RLE",
    "decoder_for",
    "plugin_for",
    "syntax_name",
]

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = (
    "1.2.840.10008.1.2.1.99"  # whole dataset deflated; pixels native once inflated
)
DEFLATED_FRAMES = (
    "1.2.840.10008.1.2.8.1"  # Deflated Image Frame Compression (per frame)
)
RLE = "1.2.840.10008.1.2.5"

NATIVE_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE})
JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
J2K = (
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
)

# (pydicom plugin name, the name we report), most preferred first. pylibjpeg first: it is
# the fastest here (RLE 0.7 vs 7 ms/slice, NOTES.md) and single-threaded, so --jobs scales.
_PLUGINS: dict[str, tuple[tuple[str, str], ...]] = {
    RLE: (("pylibjpeg", "pylibjpeg-rle"), ("pydicom", "pydicom-rle"), ("gdcm", "gdcm")),
    **{
        u: (("pylibjpeg", "pylibjpeg-libjpeg"), ("gdcm", "gdcm"), ("pillow", "pillow"))
        for u in JPEG
    },
    **{
        u: (("pylibjpeg", "pylibjpeg-libjpeg"), ("gdcm", "gdcm")) for u in JPEG_LOSSLESS
    },
    **{
        u: (
            ("pylibjpeg", "pylibjpeg-libjpeg"),
            ("pyjpegls", "pyjpegls"),
            ("gdcm", "gdcm"),
        )
        for u in JPEG_LS
    },
    **{
        u: (("pylibjpeg", "pylibjpeg-openjpeg"), ("gdcm", "gdcm"), ("pillow", "pillow"))
        for u in J2K
    },
}


@lru_cache(maxsize=64)
def plugin_for(transfer_syntax_uid: str) -> tuple[str, str] | None:
    """(pydicom plugin, reported name) of the preferred installed decoder, or None."""
    if transfer_syntax_uid in NATIVE_SYNTAXES:
        return ("", "native")
    if transfer_syntax_uid == DEFLATED_LE:
        return ("", "pydicom-deflate")
    if transfer_syntax_uid == DEFLATED_FRAMES:
        return ("", "zlib")
    choices = _PLUGINS.get(transfer_syntax_uid)
    if not choices:
        return None
    from pydicom.pixels.decoders.base import get_decoder

    try:
        available = set(get_decoder(transfer_syntax_uid).available_plugins)
    except NotImplementedError:
        return None
    for plugin, name in choices:
        if plugin in available:
            return (plugin, name)
    return None


def decoder_for(transfer_syntax_uid: str) -> str | None:
    """Name the installed decoder that ``read_frames`` uses for a transfer syntax.

    Parameters
    ----------
    transfer_syntax_uid : str
        (0002,0010) Transfer Syntax UID.

    Returns
    -------
    str or None
        ``"native"`` (uncompressed), ``"pydicom-deflate"``, ``"zlib"``,
        ``"pylibjpeg-rle"``, ``"pydicom-rle"``, ``"pylibjpeg-libjpeg"``,
        ``"pylibjpeg-openjpeg"``, ``"pyjpegls"``, ``"gdcm"``, ``"pillow"``; None when no
        installed plugin decodes the syntax (the scan's decoder preflight reports it).
    """
    found = plugin_for(str(transfer_syntax_uid).strip())
    return None if found is None else found[1]


#: Names of the image transfer syntaxes, as pydicom's UID dictionary spells them (a test
#: checks): naming them needs no pydicom import, which costs the scan 0.3-0.45 s.
_SYNTAX_NAMES: dict[str, str] = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
    "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 and 4)",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless, Non-Hierarchical, First-Order Prediction "
    "(Process 14 [Selection Value 1])",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless Image Compression",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless) Image Compression",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Image Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.91": "JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.4.201": "High-Throughput JPEG 2000 Image Compression "
    "(Lossless Only)",
    "1.2.840.10008.1.2.4.202": "High-Throughput JPEG 2000 with RPCL Options Image "
    "Compression (Lossless Only)",
    "1.2.840.10008.1.2.4.203": "High-Throughput JPEG 2000 Image Compression",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}


def syntax_name(uid: str) -> str:
    """Human name of a transfer syntax UID (the UID itself when unknown)."""
    known = _SYNTAX_NAMES.get(uid)
    if known is not None:
        return known
    from pydicom.uid import UID

    name = UID(uid).name
    return str(name) if name else uid
