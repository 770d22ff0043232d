"""Synthetic DICOM studies (phantoms) that look like PACS exports, byte-identical per seed.

The phantoms are defined in patient space (LPS millimetres) and sampled at each voxel's
position, so every orientation (axial, oblique, coronal) shows the same anatomy and the
geometry written in the headers is the geometry of the pixels: a reader that gets the
geometry wrong sees the phantom in the wrong place.

- CT: int16 stored values with RescaleSlope 1 / RescaleIntercept -1024; air (-1000 HU)
  outside an elliptical body, subcutaneous fat (-100 HU), soft tissue (40 HU), a bone ring
  (850 HU), a spine (700 HU), a liver-like organ (55 HU) holding a lesion sphere (115 HU,
  +60 over the organ), plus Gaussian noise (sigma 10 HU).
- MR: uint16 (BitsStored 12), a head: scalp, skull, grey and white matter, two ventricles,
  with Rician-like noise.

Every UID is ``2.25.<128-bit integer from sha256>`` of the seed and the object's indices;
dates and times come from the seed, never from the clock. Files are written atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from clisonix_cli.dicom.synth_phi import (
    REFERENCED_IMAGE_SEQUENCE,
    add_phi,
    phi_file_name,
    phi_rel_dir,
    referenced_image,
    write_nonimage,
)
from clisonix_cli.dicom.write import (
    PER_FILE_TAGS,
    SeriesEncoder,
    derived_uid,
    file_meta_for,
)
from clisonix_cli.errors import MissingDependencyError, UsageError
from clisonix_cli.fsio import atomic_write_bytes, sha256_file

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

MODALITIES = ("CT", "MR", "mixed")
SYNTAXES = ("explicit", "rle", "j2k", "mixed")
ORIENTATIONS = ("axial", "oblique", "coronal")


_SYNTAX_UIDS: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "j2k": JPEG2000Lossless,
}


def synth_uid(seed: int, *parts: object) -> str:
    """A stable DICOM UID ``2.25.<int>`` derived from the seed and ``parts`` with sha256.

    Parameters
    ----------
    seed : int
        The synthesis seed.
    *parts : object
        What the UID names (e.g. ``"series", 0, 0, 1``); joined with ``|``.

    Returns
    -------
    str
        At most 44 characters, no leading zeros in the integer component (PS3.5 9.1).
    """
    return derived_uid("clisonix-synth", seed, *parts)


def _h(seed: int, *parts: object) -> int:
    """A stable 64-bit integer from the seed and ``parts`` (dates, accession numbers)."""
    key = "|".join(["clisonix-synth-int", str(seed), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def _ds(value: float, decimals: int) -> str:
    """Format a Decimal String (at most 16 characters, PS3.5 6.2) with fixed rounding."""
    text = f"{round(value, decimals):.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class SeriesPlan:
    """One synthetic series: where it goes and how it looks (no pixels)."""

    patient: int
    study: int
    series: int
    rel_dir: str
    modality: str
    orientation: str
    syntax: str
    slices: int
    rows: int
    cols: int
    noise_sd: float | None = None  # None: 10 HU for CT, 20 for MR
    hu_offset: float = 0.0  # CT calibration error added to every HU value
    kernel: str = "STANDARD"  # CT (0018,1210) Convolution Kernel
    phi: bool = False  # identifying values everywhere (``--phi``, synth_phi.py)


def plan(
    *,
    patients: int = 2,
    studies: int = 1,
    series: int = 2,
    slices: int = 24,
    rows: int = 64,
    cols: int = 64,
    modality: str = "CT",
    syntax: str = "explicit",
    noise_sd: float | None = None,
    hu_offset: float = 0.0,
    kernel: str = "STANDARD",
    phi: bool = False,
    seed: int = 0,
) -> list[SeriesPlan]:
    """The series :func:`synthesize` writes, in writing order.

    Series ``j`` of each study gets orientation ``ORIENTATIONS[j % 3]``; with
    ``modality="mixed"`` even series are CT and odd ones MR; with ``syntax="mixed"`` odd
    series are RLE Lossless and even ones explicit VR little endian.

    Raises
    ------
    UsageError
        A count or size out of range, or an unknown modality or syntax.
    """
    if modality not in MODALITIES:
        raise UsageError(
            f"--modality {modality!r} is not one of {', '.join(MODALITIES)}"
        )
    if syntax not in SYNTAXES:
        raise UsageError(f"--syntax {syntax!r} is not one of {', '.join(SYNTAXES)}")
    for name, value, lo, hi in (
        ("patients", patients, 1, 999),
        ("studies", studies, 1, 99),
        ("series", series, 1, 99),
        ("slices", slices, 1, 9999),
        ("rows", rows, 8, 4096),
        ("cols", cols, 8, 4096),
    ):
        if not lo <= value <= hi:
            raise UsageError(f"--{name} {value} is out of range [{lo}, {hi}]")
    if noise_sd is not None and not 0.0 <= noise_sd <= 1000.0:
        raise UsageError(f"--noise-sd {noise_sd} is out of range [0, 1000]")
    if not -1000.0 <= hu_offset <= 1000.0:
        raise UsageError(f"--hu-offset {hu_offset} is out of range [-1000, 1000]")
    if not (0 < len(kernel) <= 16 and kernel.isascii() and kernel.isprintable()):
        raise UsageError(
            f"--kernel {kernel!r}: expected 1 to 16 printable ASCII characters"
        )
    if syntax == "j2k" and min(rows, cols) < 32:
        # pylibjpeg-openjpeg encodes with 6 resolution levels: 2**5 pixels at least.
        raise UsageError(
            f"--syntax j2k needs --rows and --cols >= 32, got {rows}x{cols} - the JPEG "
            "2000 encoder uses 6 resolution levels"
        )
    out: list[SeriesPlan] = []
    for p in range(patients):
        for s in range(studies):
            for j in range(series):
                mod = modality if modality != "mixed" else ("CT", "MR")[j % 2]
                syn = syntax if syntax != "mixed" else ("explicit", "rle")[j % 2]
                out.append(
                    SeriesPlan(
                        patient=p,
                        study=s,
                        series=j,
                        rel_dir=phi_rel_dir(seed, p, s, j)
                        if phi
                        else f"PAT{p:03d}/STU{s:02d}/SER{j + 1:02d}",
                        modality=mod,
                        orientation=ORIENTATIONS[j % 3],
                        syntax=syn,
                        slices=slices,
                        rows=rows,
                        cols=cols,
                        noise_sd=noise_sd,
                        hu_offset=hu_offset,
                        kernel=kernel,
                        phi=phi,
                    )
                )
    return out


def slice_name(seed: int, sp: SeriesPlan, k: int) -> str:
    """File name of slice ``k`` (0-based) of a series."""
    return phi_file_name(seed, sp, k) if sp.phi else f"IM{k + 1:05d}.dcm"


# --- phantoms (patient LPS mm in, stored values out) -------------------------------------
# Only IEEE-exact arithmetic (+ - * / sqrt, no sin/exp): the same bytes on every CPU.


class _Canvas:
    """Patient coordinates of one slice and scratch buffers to paint shapes in place."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        self.xyz = (x, y, z)
        self.lo = tuple(float(a.min()) for a in self.xyz)
        self.hi = tuple(float(a.max()) for a in self.xyz)
        self.acc = np.empty_like(x)
        self.tmp = np.empty_like(x)
        self.mask = np.empty(x.shape, dtype=bool)

    def paint(
        self,
        img: np.ndarray,
        value: float,
        center: Sequence[float],
        semi: Sequence[float | None],
        scale: np.ndarray | None = None,
    ) -> None:
        """Set ``img`` to ``value`` inside an axis-aligned ellipsoid (``None`` semi-axis:
        unbounded along that axis, i.e. an elliptic cylinder); ``scale`` divides x and y."""
        grow = 1.1 if scale is not None else 1.0  # scale stays below 1.05
        for ax in range(3):
            s_ax = semi[ax]
            if s_ax is not None and (
                self.hi[ax] < center[ax] - s_ax * grow
                or self.lo[ax] > center[ax] + s_ax * grow
            ):
                return  # the shape does not reach this slice
        first = True
        for ax in range(3):
            s_ax = semi[ax]
            if s_ax is None:
                continue
            dst = self.acc if first else self.tmp
            np.subtract(self.xyz[ax], np.float32(center[ax]), out=dst)
            if scale is not None and ax < 2:
                np.divide(dst, scale, out=dst)
            np.multiply(dst, np.float32(1.0 / s_ax), out=dst)
            np.square(dst, out=dst)
            if not first:
                np.add(self.acc, dst, out=self.acc)
            first = False
        np.less_equal(self.acc, np.float32(1.0), out=self.mask)
        np.copyto(img, np.float32(value), where=self.mask)


def ct_phantom_hu(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Noise-free CT values in HU at patient positions (LPS mm, phantom centred at 0).

    Parameters
    ----------
    x, y, z : ndarray of float32, same shape
        Patient coordinates (left, posterior, superior) in millimetres.

    Returns
    -------
    ndarray of float32
        Hounsfield units: air -1000, fat -100, soft tissue 40, liver-like organ 55, lesion
        sphere 115 (+60 over the organ), spine 700, bone ring 850.
    """
    cv = _Canvas(x, y, z)
    # The body widens away from z = 0 (rational in z: exact arithmetic) so slices differ.
    zz = np.square(z)
    scale = np.float32(1.0) + np.float32(0.05) * zz / (zz + np.float32(60.0**2))
    hu = np.full(x.shape, -1000.0, dtype=np.float32)
    o = (0.0, 0.0, 0.0)
    cv.paint(hu, -100.0, o, (160.0, 115.0, None), scale)  # subcutaneous fat
    cv.paint(hu, 40.0, o, (148.0, 103.0, None), scale)  # muscle / soft tissue
    cv.paint(hu, 850.0, o, (128.0, 92.0, None), scale)  # bone ring (ribs)
    cv.paint(hu, 40.0, o, (119.0, 84.0, None), scale)
    cv.paint(hu, 55.0, (-55.0, -10.0, 0.0), (60.0, 45.0, None))  # liver-like organ
    cv.paint(hu, 700.0, (0.0, 62.0, 0.0), (18.0, 18.0, None))  # spine
    cv.paint(hu, 115.0, (-50.0, -15.0, 0.0), (15.0, 15.0, 15.0))  # lesion sphere
    return hu


def mr_phantom(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Noise-free MR signal (arbitrary units, T2-like) of a head at patient positions.

    Parameters
    ----------
    x, y, z : ndarray of float32, same shape
        Patient coordinates (left, posterior, superior) in millimetres.

    Returns
    -------
    ndarray of float32
        Signal: background 0, scalp 600, skull 60, grey matter 900, white matter 700,
        ventricles (CSF) 1800.
    """
    cv = _Canvas(x, y, z)
    sig = np.zeros(x.shape, dtype=np.float32)
    o = (0.0, 0.0, 0.0)
    cv.paint(sig, 600.0, o, (72.0, 92.0, 80.0))  # scalp
    cv.paint(sig, 60.0, o, (68.0, 88.0, 76.0))  # skull
    cv.paint(sig, 900.0, o, (63.0, 83.0, 71.0))  # grey matter
    cv.paint(sig, 700.0, o, (45.0, 62.0, 50.0))  # white matter
    for cx in (-11.0, 11.0):
        cv.paint(sig, 1800.0, (cx, -4.0, 12.0), (6.0, 22.0, 10.0))  # ventricles
    return sig


# --- geometry ----------------------------------------------------------------------------


def _directions(orientation: str) -> tuple[np.ndarray, np.ndarray]:
    """Row (increasing column index) and column (increasing row index) unit vectors."""
    if orientation == "axial":
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    if orientation == "coronal":
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    # oblique: tilted 20 degrees about L-R, then 10 degrees about S-I
    a, b = math.radians(20.0), math.radians(10.0)
    rx = np.array(
        [[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]]
    )
    rz = np.array(
        [[math.cos(b), -math.sin(b), 0], [math.sin(b), math.cos(b), 0], [0, 0, 1]]
    )
    rot = rz @ rx
    return rot[:, 0], rot[:, 1]


@dataclass(frozen=True)
class _Geometry:
    iop: tuple[str, ...]  # six DS strings
    spacing: tuple[str, str]  # PixelSpacing strings: row spacing, column spacing
    thickness: str
    ipps: tuple[tuple[str, str, str], ...]  # per instance, DS strings
    locations: tuple[str, ...]  # SliceLocation per instance
    row_dir: np.ndarray  # the rounded values the header holds
    col_dir: np.ndarray
    d_mm: float
    positions: np.ndarray  # (S, 3) float64 from the rounded header strings


def _geometry(sp: SeriesPlan) -> _Geometry:
    fov = 360.0 if sp.modality == "CT" else 240.0
    d_mm = round(fov / max(sp.rows, sp.cols), 4)
    thick = round(min(max(120.0 / sp.slices, 0.5), 5.0), 3)
    u, v = _directions(sp.orientation)
    iop = tuple(_ds(float(t), 6) for t in (*u, *v))
    u = np.array([float(t) for t in iop[:3]])
    v = np.array([float(t) for t in iop[3:]])
    n = np.cross(u, v)
    # CT axial goes head to feet (first instance most superior), everything else ascends.
    step = -1.0 if (sp.modality == "CT" and sp.orientation == "axial") else 1.0
    center = np.array([0.0, 0.0, 0.0])
    ipps: list[tuple[str, str, str]] = []
    locs: list[str] = []
    for k in range(sp.slices):
        p = (
            center
            - (sp.cols - 1) / 2.0 * d_mm * u
            - (sp.rows - 1) / 2.0 * d_mm * v
            + step * (k - (sp.slices - 1) / 2.0) * thick * n
        )
        ipps.append((_ds(p[0], 4), _ds(p[1], 4), _ds(p[2], 4)))
        locs.append(_ds(float(np.dot(p, n)), 4))
    positions = np.array([[float(t) for t in ipp] for ipp in ipps])
    return _Geometry(
        iop=iop,
        spacing=(_ds(d_mm, 4), _ds(d_mm, 4)),
        thickness=_ds(thick, 3),
        ipps=tuple(ipps),
        locations=tuple(locs),
        row_dir=u,
        col_dir=v,
        d_mm=d_mm,
        positions=positions,
    )


def _slice_coords(
    geo: _Geometry, k: int, rows: int, cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient coordinates (float32, (R, C) each) of every pixel of slice ``k``."""
    c = np.arange(cols, dtype=np.float32)[None, :] * np.float32(geo.d_mm)
    r = np.arange(rows, dtype=np.float32)[:, None] * np.float32(geo.d_mm)
    p0 = geo.positions[k]
    out = []
    for ax in range(3):
        out.append(
            np.float32(p0[ax])
            + c * np.float32(geo.row_dir[ax])
            + r * np.float32(geo.col_dir[ax])
        )
    return out[0], out[1], out[2]


def _ct_slice(
    geo: _Geometry, k: int, sp: SeriesPlan, rng: np.random.Generator
) -> np.ndarray:
    x, y, z = _slice_coords(geo, k, sp.rows, sp.cols)
    hu = ct_phantom_hu(x, y, z)
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= np.float32(10.0 if sp.noise_sd is None else sp.noise_sd)
    hu += noise
    # stored = HU - intercept (-1024), kept within the 12-bit CT range [0, 4095].
    hu += np.float32(1024.0 + sp.hu_offset)
    np.rint(hu, out=hu)
    np.clip(hu, 0, 4095, out=hu)
    return hu.astype("<i2")


def _mr_slice(
    geo: _Geometry, k: int, sp: SeriesPlan, rng: np.random.Generator
) -> np.ndarray:
    x, y, z = _slice_coords(geo, k, sp.rows, sp.cols)
    sig = mr_phantom(x, y, z)
    noise = rng.standard_normal((2, *sig.shape), dtype=np.float32)
    noise *= np.float32(20.0 if sp.noise_sd is None else sp.noise_sd)
    # Rician magnitude noise: |signal + n1 + i n2|
    sig += noise[0]
    np.square(sig, out=sig)
    np.square(noise[1], out=noise[1])
    sig += noise[1]
    np.sqrt(sig, out=sig)
    np.rint(sig, out=sig)
    np.clip(sig, 0, 4095, out=sig)
    return sig.astype("<u2")


# --- headers -----------------------------------------------------------------------------


def _base_dataset(seed: int, sp: SeriesPlan, geo: _Geometry) -> Dataset:
    p, s, j = sp.patient, sp.study, sp.series
    ds = Dataset()
    ct = sp.modality == "CT"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = [
        "ORIGINAL",
        "PRIMARY",
        "AXIAL" if sp.orientation == "axial" else "OTHER",
    ]
    ds.SOPClassUID = CT_IMAGE_STORAGE if ct else MR_IMAGE_STORAGE
    base = _dt.date(2021, 1, 4) + _dt.timedelta(days=_h(seed, "date", p) % 900)
    study_date = (base + _dt.timedelta(days=45 * s)).strftime("%Y%m%d")
    secs = 7 * 3600 + _h(seed, "time", p, s) % (10 * 3600)
    study_time = f"{secs // 3600:02d}{secs % 3600 // 60:02d}{secs % 60:02d}"
    series_secs = secs + 300 * (j + 1)
    series_time = (
        f"{series_secs // 3600:02d}{series_secs % 3600 // 60:02d}{series_secs % 60:02d}"
    )
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = study_time
    ds.SeriesTime = series_time
    ds.ContentTime = series_time
    ds.AccessionNumber = f"SYN{_h(seed, 'acc', p, s) % 10**8:08d}"
    ds.Modality = sp.modality
    ds.Manufacturer = "CLISONIX"
    ds.InstitutionName = "SYNTHETIC HOSPITAL"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTH CT CHEST" if ct else "SYNTH MR HEAD"
    ds.SeriesDescription = (
        f"{'CT' if ct else 'T2'} {sp.orientation.upper()} {geo.thickness}mm {sp.syntax}"
    )
    ds.ManufacturerModelName = "PHANTOM"
    ds.PatientName = f"SYNTH^P{p:03d}"
    ds.PatientID = f"SYNTH-P{p:03d}"
    birth = _dt.date(1940, 1, 1) + _dt.timedelta(days=_h(seed, "birth", p) % 20000)
    ds.PatientBirthDate = birth.strftime("%Y%m%d")
    ds.PatientSex = ("F", "M")[_h(seed, "sex", p) % 2]
    ds.BodyPartExamined = "CHEST" if ct else "HEAD"
    ds.SliceThickness = geo.thickness
    if ct:
        ds.KVP = "120"
        ds.ConvolutionKernel = sp.kernel
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "4000"
        ds.EchoTime = "90"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = "3"
        ds.SpacingBetweenSlices = geo.thickness
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = synth_uid(seed, "study", p, s)
    ds.SeriesInstanceUID = synth_uid(seed, "series", p, s, j)
    ds.StudyID = str(s + 1)
    ds.SeriesNumber = j + 1
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = list(geo.iop)
    ds.FrameOfReferenceUID = synth_uid(seed, "for", p, s)
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = sp.rows
    ds.Columns = sp.cols
    ds.PixelSpacing = list(geo.spacing)
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if ct else 12
    ds.HighBit = 15 if ct else 11
    ds.PixelRepresentation = 1 if ct else 0
    if ct:
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
    else:
        ds.WindowCenter = "900"
        ds.WindowWidth = "1800"
    return ds


def _encoder(syntax: str) -> Callable[[np.ndarray, Dataset], bytes]:
    """The frame encoder for a compressed syntax, chosen explicitly (stable bytes)."""
    if syntax == "rle":
        from pydicom.pixels.encoders.base import RLELosslessEncoder as enc

        plugin = "pylibjpeg" if "pylibjpeg" in enc.available_plugins else "pydicom"
    else:
        from pydicom.pixels.encoders.base import JPEG2000LosslessEncoder as enc

        if "pylibjpeg" not in enc.available_plugins:
            raise MissingDependencyError(
                "--syntax j2k needs a JPEG 2000 encoder; none is installed - "
                "pip install pylibjpeg pylibjpeg-openjpeg"
            )
        plugin = "pylibjpeg"

    def encode(frame: np.ndarray, ds: Dataset) -> bytes:
        out: bytes = enc.encode(
            frame,
            encoding_plugin=plugin,
            rows=ds.Rows,
            columns=ds.Columns,
            samples_per_pixel=1,
            bits_allocated=ds.BitsAllocated,
            bits_stored=ds.BitsStored,
            pixel_representation=ds.PixelRepresentation,
            photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )
        return out

    return encode


def _write_series(seed: int, out_dir: Path, sp: SeriesPlan) -> list[Path]:
    geo = _geometry(sp)
    base = _base_dataset(seed, sp, geo)
    if sp.phi:
        add_phi(base, seed, sp)
    per_file = (*PER_FILE_TAGS, REFERENCED_IMAGE_SEQUENCE) if sp.phi else PER_FILE_TAGS
    encoder = SeriesEncoder(base, per_file)
    tsyntax = _SYNTAX_UIDS[sp.syntax]
    compress = None if sp.syntax == "explicit" else _encoder(sp.syntax)
    rng = np.random.default_rng([seed, sp.patient, sp.study, sp.series])
    make_slice = _ct_slice if sp.modality == "CT" else _mr_slice
    series_dir = out_dir / sp.rel_dir
    paths: list[Path] = []
    for k in range(sp.slices):
        frame = make_slice(geo, k, sp, rng)
        uid = synth_uid(seed, "instance", sp.patient, sp.study, sp.series, k)
        values = (
            referenced_image(seed, sp, k, base.SOPClassUID) if sp.phi else Dataset()
        )
        values.SOPInstanceUID = uid
        values.InstanceNumber = k + 1
        values.ImagePositionPatient = list(geo.ipps[k])
        values.SliceLocation = geo.locations[k]
        if compress is None:
            values.PixelData = frame.tobytes()
            values["PixelData"].VR = "OW"
        else:
            values.PixelData = encapsulate([compress(frame, base)])
            values["PixelData"].VR = "OB"
            values["PixelData"].is_undefined_length = True
        data = encoder.encode(file_meta_for(base.SOPClassUID, uid, tsyntax), values)
        path = series_dir / slice_name(seed, sp, k)
        atomic_write_bytes(path, data)
        paths.append(path)
    return paths


def synthesize(
    out_dir: Path,
    *,
    seed: int = 0,
    patients: int = 2,
    studies: int = 1,
    series: int = 2,
    slices: int = 24,
    rows: int = 64,
    cols: int = 64,
    modality: str = "CT",
    syntax: str = "explicit",
    jobs: int = 1,
    noise_sd: float | None = None,
    hu_offset: float = 0.0,
    kernel: str = "STANDARD",
    phi: bool = False,
) -> list[Path]:
    """Write synthetic DICOM studies under ``out_dir``; the same arguments give the same bytes.

    Layout: ``out_dir/PAT000/STU00/SER01/IM00001.dcm`` (no patient name in any path).

    Parameters
    ----------
    out_dir : Path
        Destination folder (created when missing).
    seed : int
        Drives UIDs, dates, noise; nothing depends on the clock.
    patients, studies, series : int
        Counts: ``studies`` per patient, ``series`` per study.
    slices, rows, cols : int
        Size of every series (S, R, C).
    modality : {"CT", "MR", "mixed"}
        ``mixed`` alternates CT (even series) and MR (odd series).
    syntax : {"explicit", "rle", "j2k", "mixed"}
        Transfer syntax: explicit VR little endian, RLE Lossless, JPEG 2000 Lossless;
        ``mixed`` makes odd series RLE and even ones explicit.
    jobs : int
        Worker processes writing series in parallel (the bytes do not depend on it).
    noise_sd : float or None
        SD of the added noise (HU for CT, per channel for MR); None: 10 HU / 20.
    hu_offset : float
        CT only: a calibration error added to every HU value (air at -1000 + offset).
    kernel : str
        CT only: the (0018,1210) Convolution Kernel written (the pixels do not change).
    phi : bool
        Fill every identifying attribute, folder and file name with a canary and add a
        KOS, an SR, a presentation state and a PDF per study (:mod:`.synth_phi`).

    Returns
    -------
    list of Path
        Every file written, in writing order (sorted by path).

    Raises
    ------
    UsageError
        Bad counts, sizes, modality or syntax.
    MissingDependencyError
        ``syntax="j2k"`` without a JPEG 2000 encoder.
    """
    series_plans = plan(
        patients=patients,
        studies=studies,
        series=series,
        slices=slices,
        rows=rows,
        cols=cols,
        modality=modality,
        syntax=syntax,
        noise_sd=noise_sd,
        hu_offset=hu_offset,
        kernel=kernel,
        phi=phi,
        seed=seed,
    )
    if syntax in ("j2k",):
        _encoder(syntax)  # fail before any work when no encoder is installed
    if jobs < 1:
        raise UsageError(f"--jobs {jobs} is out of range, expected >= 1")
    out = Path(out_dir)
    if jobs == 1 or len(series_plans) == 1:
        paths = [p for sp in series_plans for p in _write_series(seed, out, sp)]
        return paths + (write_nonimage(seed, out, series_plans) if phi else [])
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Each series has its own generator, so the bytes are the same for any jobs.
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(series_plans)),
        mp_context=multiprocessing.get_context("spawn"),
    ) as pool:
        per_series = list(
            pool.map(
                _write_series,
                [seed] * len(series_plans),
                [out] * len(series_plans),
                series_plans,
            )
        )
    written = [p for paths in per_series for p in paths]
    return written + (write_nonimage(seed, out, series_plans) if phi else [])


def sha256sums(root: Path, paths: Sequence[Path]) -> str:
    """``sha256sum``-compatible text for ``paths`` (relative to ``root``, sorted, POSIX ``/``).

    ``sha256sum -c SHA256SUMS`` run in ``root`` checks the files against it.
    """
    root = Path(root)
    rel = sorted((p.relative_to(root).as_posix(), p) for p in paths)
    return "".join(f"{sha256_file(p)}  {name}\n" for name, p in rel)


def series_summary(plans: Sequence[SeriesPlan]) -> list[dict[str, object]]:
    """JSON-ready description of planned series (for ``clisonix synth --json``)."""
    return [
        {
            "dir": sp.rel_dir,
            "modality": sp.modality,
            "orientation": sp.orientation,
            "syntax": sp.syntax,
            "shape": [sp.slices, sp.rows, sp.cols],
        }
        for sp in plans
    ]
