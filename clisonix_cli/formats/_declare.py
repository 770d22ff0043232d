"""How a writer is declared, and what every writer is given to write.

Every public module of this package declares ``WRITERS = (Writer(...), ...)``;
:mod:`clisonix_cli.formats.registry` collects them. A writer's ``write`` takes one
:class:`Source`, whatever the format: the data (a whole array or a :class:`VolumeSource`
that delivers it a few slices at a time), its geometry and scaling, the acquisition fields,
the sidecar document (built only once the data are written) and the provenance.

Light on purpose: numpy is imported for type checking only, so that the registry and
``--format`` validation import nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Provenance",
    "SidecarArg",
    "SidecarFn",
    "Source",
    "VolumeSource",
    "WriteFn",
    "Writer",
    "source_of",
]


@runtime_checkable
class VolumeSource(Protocol):
    """A volume delivered in pieces (e.g. :class:`clisonix_cli.dicom.volume.StackStream`).

    ``slabs()`` yields ``(k, R, C)`` arrays of type ``dtype`` whose concatenation along the
    first axis, reshaped to ``shape``, is the volume in C order.
    """

    @property
    def shape(self) -> tuple[int, ...]:
        """(S, R, C) or (T, S, R, C)."""
        ...

    @property
    def dtype(self) -> np.dtype[Any]:
        """Type of every slab."""
        ...

    def slabs(self) -> Iterator[np.ndarray]:
        """The ``(k, R, C)`` pieces, in order; each valid until the next is asked for."""
        ...


#: Builds the sidecar document; called once, after the data are written, so that it can
#: hold facts gathered while they were streamed (e.g. the digest of the inputs).
SidecarFn = Callable[[], Mapping[str, Any]]

#: A sidecar as the public ``write_*`` functions take it: the mapping itself, or a
#: :data:`SidecarFn`.
SidecarArg = Mapping[str, Any] | SidecarFn | None


@dataclass(frozen=True)
class Provenance:
    """Where written data came from: the input stack and the pipeline applied to it.

    Parameters
    ----------
    series_uid : str
        SeriesInstanceUID of the input series.
    stack_key : str
        The input stack within that series.
    pipeline : sequence of dict
        The pipeline's canonical form (empty for a pure conversion).
    pipeline_sha256 : str
        Hash of that canonical form.
    deid : mapping or None
        A de-identifying run's fields for writers of identifiers (pseudonym, marking);
        ``series_uid`` is then the keyed new UID.
    """

    series_uid: str
    stack_key: str
    pipeline: Sequence[Mapping[str, Any]]
    pipeline_sha256: str
    deid: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Source:
    """What a writer writes.

    Parameters
    ----------
    data : (S, R, C) or (T, S, R, C) ndarray, or VolumeSource
        Stored values. A :class:`VolumeSource` only goes to writers that stream
        (:attr:`Writer.streams`); the others get an array.
    affine_lps : (4, 4) ndarray
        Voxel index ``(s, r, c, 1)`` -> patient LPS mm.
    slope, intercept : float
        Real value = stored * slope + intercept.
    meta : mapping
        Acquisition fields by DICOM keyword, in DICOM units (``RepetitionTime`` in ms), as
        the reader gives them; a writer takes what its format stores.
    sidecar : callable or None
        Builds the sidecar document; a writer that writes one calls it once, after the
        data.
    provenance : Provenance or None
        The input stack and pipeline, for writers that derive identifiers from them.
    """

    data: np.ndarray | VolumeSource
    affine_lps: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    sidecar: SidecarFn | None = None
    provenance: Provenance | None = None


def source_of(
    data: np.ndarray | VolumeSource,
    affine_lps: np.ndarray,
    *,
    slope: float,
    intercept: float,
    sidecar: SidecarArg,
) -> Source:
    """The :class:`Source` of a public ``write_*`` call: a mapping sidecar is also the meta.

    Parameters
    ----------
    data : ndarray or VolumeSource
    affine_lps : (4, 4) ndarray
    slope, intercept : float
    sidecar : mapping, callable or None
        A mapping is written as it is and read for acquisition fields; a callable is
        called after the data are written and gives no acquisition fields.

    Returns
    -------
    Source
    """
    if sidecar is None or isinstance(sidecar, Mapping):
        doc = sidecar
        return Source(
            data, affine_lps, slope, intercept,
            meta=doc or {}, sidecar=None if doc is None else lambda: doc,
        )  # fmt: skip
    return Source(data, affine_lps, slope, intercept, sidecar=sidecar)


#: ``write(path, source, digests)``: writes ``source`` at ``path`` (a file, or a folder for
#: a ``suffix`` of ``""``) atomically, returns every file written, and puts the digest of
#: each into ``digests`` (when given) where it was computed on the way.
WriteFn = Callable[[Path, Source, MutableMapping[Path, str] | None], list[Path]]


@dataclass(frozen=True)
class Writer:
    """One ``--format``: its name, output suffix, what it accepts and its write function.

    Parameters
    ----------
    name : str
        The ``--format`` value.
    suffix : str
        Appended to a task's output stem to name its output; ``""`` when the output is a
        folder of files.
    streams : bool
        Whether ``write`` takes a :class:`VolumeSource` (slices written as they are read,
        the volume never whole in memory); when False it needs a whole array.
    write : WriteFn
        Writes one :class:`Source`.
    ndims : tuple of int
        Dimensionalities of ``data`` it writes.
    kinds : str
        numpy dtype kinds of ``data`` it writes (``b`` bool, ``i``/``u`` integers,
        ``f`` floats, ``c`` complex); the registry tests write and read back every
        declared combination.
    """

    name: str
    suffix: str
    streams: bool
    write: WriteFn
    ndims: tuple[int, ...] = (3, 4)
    kinds: str = "biuf"
