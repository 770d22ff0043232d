"""Pipelines: parse ``--op`` specs and TOML files, validate, hash, run.

A pipeline is an ordered list of ops with bound parameters. It is validated completely when
it is built (unknown op, unknown/missing parameter, wrong type, out of range: the
:class:`~clisonix_cli.errors.PipelineError` family, exit 2) so a bad pipeline fails before any
series is read. Its canonical form (op names, versions, every parameter with defaults filled
and types normalised) is hashed with sha256 over canonical JSON; the hash goes into every
manifest record and sidecar. See ``docs/pipelines.md``.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clisonix_cli.errors import (
    ClisonixError,
    PipelineFileError,
    PipelineSyntaxError,
    TransformFailedError,
)
from clisonix_cli.transforms._declare import Op
from clisonix_cli.transforms.image import Image
from clisonix_cli.transforms.registry import get_op

#: Version of the TOML pipeline format (the optional top-level ``format`` key).
TOML_FORMAT = 1


@dataclass(frozen=True)
class Step:
    """One op of a pipeline with its bound (converted, checked, defaulted) parameters."""

    op: Op
    params: Mapping[str, Any]

    def canonical(self) -> dict[str, Any]:
        """Return ``{"name", "version", "params"}``, every parameter in declaration order.

        Returns
        -------
        dict
            The step's part of the canonical pipeline (what is hashed and recorded).
        """
        return {
            "name": self.op.name,
            "version": self.op.version,
            "params": dict(self.params),
        }


def parse_op_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,key=value`` (or ``name`` alone) into name and raw values.

    Values are kept as strings; :meth:`Op.bind` converts them. Tuple values use ``x``
    (``spacing=1x1x2.5``), so a comma always separates parameters.

    Parameters
    ----------
    spec : str
        One ``--op`` value.

    Returns
    -------
    name : str
        The op name (not checked against the registry here).
    raw : dict of str to str
        Parameter values as written, in order.

    Raises
    ------
    PipelineSyntaxError
        Empty spec, empty name, an item without ``=``, an empty key or a repeated key.
    """
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise PipelineSyntaxError(
            f"--op '{spec}': no op name; expected name or name:key=value,key=value"
        )
    raw: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise PipelineSyntaxError(
                    f"--op '{spec}': op '{name}': cannot read {item.strip()!r} as "
                    "key=value; expected name:key=value,key=value"
                )
            if key in raw:
                raise PipelineSyntaxError(
                    f"--op '{spec}': op '{name}' parameter '{key}' given twice"
                )
            raw[key] = value.strip()
    return name, raw


def read_toml(path: Path) -> list[tuple[str, dict[str, Any], str]]:
    """Read a TOML pipeline file into ``(name, raw params, where)`` entries, in order.

    Format::

        format = 1            # optional; only 1 exists
        [[op]]
        name = "rescale"
        [[op]]
        name = "window"
        preset = "brain"

    Parameters
    ----------
    path : Path
        The TOML file.

    Returns
    -------
    list of (str, dict, str)
        Per ``[[op]]`` table: the op name, its raw parameter values, and where it stands
        (file name and table number, for messages).

    Raises
    ------
    PipelineFileError
        Unreadable file or invalid TOML.
    PipelineSyntaxError
        Unknown top-level key, ``op`` not an array of tables, an entry without ``name``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:  # the path as given: a bare name would hide a wrong folder
        raise PipelineFileError(
            f"{path}: cannot read the pipeline file ({type(exc).__name__}: "
            f"{exc.strerror or exc}); check the path"
        ) from None
    except UnicodeDecodeError as exc:
        raise PipelineFileError(
            f"{path}: the pipeline file is not UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); save it as UTF-8 TOML (see docs/pipelines.md)"
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineFileError(
            f"{path.name}: not valid TOML ({exc}); see docs/pipelines.md for the format"
        ) from None
    extra = sorted(set(doc) - {"op", "format"})
    if extra:
        raise PipelineSyntaxError(
            f"{path.name}: unknown top-level key(s) {', '.join(extra)}; "
            "expected [[op]] tables and an optional format = 1"
        )
    if doc.get("format", TOML_FORMAT) != TOML_FORMAT:
        raise PipelineSyntaxError(
            f"{path.name}: format = {doc['format']!r} is not supported; expected 1"
        )
    ops = doc.get("op", [])
    if not isinstance(ops, list) or not all(isinstance(t, dict) for t in ops):
        raise PipelineSyntaxError(
            f"{path.name}: 'op' must be an array of tables ([[op]] entries)"
        )
    entries = []
    for k, table in enumerate(ops, start=1):
        where = f"{path.name} [[op]] #{k}"
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PipelineSyntaxError(
                f"{where}: missing or empty 'name' (e.g. name = \"window\")"
            )
        raw = {key: value for key, value in table.items() if key != "name"}
        entries.append((name.strip(), raw, where))
    return entries


def _bind(name: str, raw: Mapping[str, Any], where: str) -> Step:
    try:
        op = get_op(name)
        return Step(op, op.bind(raw))
    except ClisonixError as exc:
        raise type(exc)(f"{where}: {exc.message}") from None


@dataclass(frozen=True)
class Pipeline:
    """An ordered, validated list of :class:`Step`; empty means identity.

    Build it with :meth:`from_cli` or :meth:`from_steps`; run it with :meth:`run`.
    """

    steps: tuple[Step, ...] = ()
    _sha: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Hash the canonical form once (the pipeline is frozen)."""
        object.__setattr__(
            self, "_sha", hashlib.sha256(self.canonical_json()).hexdigest()
        )

    @classmethod
    def from_cli(
        cls, op_specs: Sequence[str], toml_path: Path | None = None
    ) -> Pipeline:
        """Parse and validate a TOML file's ops (first) then ``--op`` specs (in order).

        Parameters
        ----------
        op_specs : sequence of str
            ``--op`` values, ``name:key=value,...``.
        toml_path : Path, optional
            A pipeline TOML file (``docs/pipelines.md``).

        Returns
        -------
        Pipeline
            The validated pipeline (empty: the identity).

        Raises
        ------
        PipelineError
            Any problem, as the matching subclass, with a one-line message naming the op
            and the parameter (exit 2).
        """
        steps: list[Step] = []
        if toml_path is not None:
            for name, raw, where in read_toml(Path(toml_path)):
                steps.append(_bind(name, raw, where))
        for spec in op_specs:
            name, raw = parse_op_spec(spec)
            steps.append(_bind(name, raw, f"--op '{spec}'"))
        return cls(tuple(steps))

    @classmethod
    def from_steps(cls, steps: Sequence[tuple[str, Mapping[str, Any]]]) -> Pipeline:
        """Build a pipeline from Python ``(name, params)`` pairs.

        Parameters
        ----------
        steps : sequence of (str, mapping)
            Op names and their parameters (values typed or as strings).

        Returns
        -------
        Pipeline
            The validated pipeline.

        Raises
        ------
        PipelineError
            Any problem, as the matching subclass, naming the step, op and parameter.
        """
        return cls(
            tuple(
                _bind(name, params, f"step {k} ({name})")
                for k, (name, params) in enumerate(steps, start=1)
            )
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as ``(name, params)`` pairs, re-bound and re-hashed on arrival."""
        # Travel as (name, params) pairs and re-bind on arrival (cloudpickle, loky, Dask):
        # no function objects in the payload, and the hash is recomputed, not trusted.
        pairs = tuple((s.op.name, dict(s.params)) for s in self.steps)
        return (_rebuild, (pairs,))

    def __len__(self) -> int:
        """Return the number of steps."""
        return len(self.steps)

    def canonical(self) -> list[dict[str, Any]]:
        """Return every step as ``{"name", "version", "params"}``; params complete, typed.

        Returns
        -------
        list of dict
            The canonical form, one entry per step (:meth:`Step.canonical`).
        """
        return [step.canonical() for step in self.steps]

    def canonical_json(self) -> bytes:
        """Return the bytes that are hashed: sorted keys, no spaces, ASCII, tuples as lists.

        Returns
        -------
        bytes
            Canonical JSON of :meth:`canonical`.
        """
        return json.dumps(
            self.canonical(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        ).encode("ascii")

    @property
    def sha256(self) -> str:
        """sha256 (hex) of :meth:`canonical_json`."""
        return self._sha

    def segments(self) -> list[list[Step]]:
        """Group the steps as they run: a run of pointwise ops is one fused segment.

        Returns
        -------
        list of list of Step
            The segments, in order; every step in exactly one.
        """
        groups: list[list[Step]] = []
        for step in self.steps:
            fusable = step.op.pointwise is not None
            if groups and fusable and groups[-1][0].op.pointwise is not None:
                groups[-1].append(step)
            else:
                groups.append([step])
        return groups

    def run(self, img: Image) -> Image:
        """Run every step on one 3-D image; consecutive pointwise ops run as one pass.

        Parameters
        ----------
        img : Image
            The volume (S, R, C), its affine and its pending rescale.

        Returns
        -------
        Image
            The transformed image (``img`` itself is left as it was; an empty pipeline
            returns it).

        Raises
        ------
        TransformFailedError
            An op failed on this volume (the message names the op and its position).
        """
        from clisonix_cli.transforms.fuse import run_pointwise

        position = 0
        for group in self.segments():
            position += len(group)
            before = img
            try:
                if group[0].op.pointwise is not None:
                    img = run_pointwise(img, [(s.op, s.params) for s in group])
                else:
                    img = group[0].op.apply(img, **group[0].params)
                if img.display is None and before.display is not None:
                    img = replace(img, display=before.display)  # carried past the op
            except ClisonixError:
                raise
            except (ValueError, ArithmeticError, MemoryError, TypeError) as exc:
                names = "+".join(s.op.name for s in group)
                raise TransformFailedError(
                    f"op {names} (step {position} of {len(self)}) failed on a volume of "
                    f"shape {tuple(img.vol.shape)} {img.vol.dtype}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return img

    def slab_output(self) -> tuple[str, float, float] | None:
        """Output dtype, slope and intercept when the pipeline may run slab by slab.

        True of a pipeline of pointwise ops that need no statistics of the volume
        (``rescale``, ``window``, ``clip``, ``cast`` without ``scale=fit``): each voxel
        is mapped on its own, so :meth:`run` on a few slices gives exactly those slices
        of the result. None otherwise (``normalize``, spatial ops, filters...).
        """
        from clisonix_cli.transforms.fuse import chain_output

        if not self.steps:
            return None
        return chain_output([(s.op, s.params) for s in self.steps])

    def warm_up(
        self,
        dtype: Any,
        spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
        *,
        slope: float = 1.0,
        intercept: float = 0.0,
    ) -> None:
        """Load the kernels a run on ``dtype`` input calls, by running on a tiny volume.

        numba loads a cached kernel (or compiles it) on its first call for each argument
        type; in a fresh process the first call also loads numba's runtime (0.5-0.7 s of
        CPU measured, the dominant fixed cost of a one-series run). Running the pipeline on
        a (4, 16, 16) volume of the input's type loads exactly the specializations the real
        volume will call, so a caller can do it on a thread while the real volume is read.
        Its real values (``stored * slope + intercept``) ramp over -1000..1000 and 0..1
        in a checkerboard: wide, varied data as CT and MR windows and normalizations
        expect, so that no op takes a degenerate path (a constant volume). Nothing is
        returned or kept; an op that refuses the tiny volume is ignored (the real run
        reports its own errors).

        Parameters
        ----------
        dtype : numpy dtype
            Stored type of the volume the pipeline will run on.
        spacing_mm : (float, float, float)
            Voxel spacing along (S, R, C), so that spatial ops size like the real run.
        slope, intercept : float
            Pending rescale of the real volume.
        """
        import numpy as np

        if not self.steps:
            return
        kind = np.dtype(dtype)
        real = np.linspace(-1000.0, 1000.0, 4 * 16 * 16).reshape(4, 16, 16)
        real[:, ::2, ::2] = np.linspace(0.0, 1.0, 4 * 8 * 8).reshape(4, 8, 8)
        stored = (real - intercept) / (slope or 1.0)
        if kind.kind in "iu":
            info = np.iinfo(kind)
            stored = np.clip(np.rint(stored), info.min, info.max)
        vol = np.ascontiguousarray(
            stored.astype(kind) if kind.kind in "iuf" else stored
        )
        affine = np.diag([*(float(s) or 1.0 for s in spacing_mm), 1.0])
        try:
            self.run(
                Image(vol=vol, affine_lps=affine, slope=slope, intercept=intercept)
            )
        except Exception:  # noqa: BLE001 - the real run reports what fails
            return


def _rebuild(pairs: Sequence[tuple[str, Mapping[str, Any]]]) -> Pipeline:
    """Unpickle a :class:`Pipeline` (see ``Pipeline.__reduce__``)."""
    return Pipeline.from_steps(pairs)
