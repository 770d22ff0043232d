"""How a transform op is declared once: parameters, kernel switch, driver, reference.

Every module of :mod:`clisonix_cli.transforms.ops` defines ``OP = Op(...)``; the registry,
the ``--op``/TOML parser, ``clisonix ops``, the docs and the property tests all read these
declarations. The op module's docstring is the op's definition in ``docs/ops.md``: its
formulas, conventions and reference, with no copy elsewhere.

Rules for op modules (read this before writing one)
---------------------------------------------------
1. **Never import numba at module level.** ``clisonix ops``, ``clisonix --help`` and
   ``Pipeline.from_cli`` import every op module to read its ``OP``; a test asserts that
   ``"numba" not in sys.modules`` afterwards. Heavy references (scipy, skimage) are imported
   inside the ``reference`` function, never at module level. Module level may import
   numpy, :mod:`clisonix_cli.errors` and this module.
2. Decorate kernels with :func:`kernel`. It returns a lazy :class:`Kernel`: numba is imported
   and the function compiled (``njit(cache=True, nogil=True)``) on the **first call**, not at
   decoration time. Use :data:`prange` from this module for parallel loops (it is swapped for
   ``numba.prange`` when the kernel compiles); a kernel may call another :func:`kernel` of the
   same module by its global name (the compiled dispatcher is swapped in too). Any other global
   a kernel reads must be a number, a tuple or a numpy array.
3. ``apply(img: Image, **params) -> Image`` validates nothing the declaration already checks,
   allocates contiguous outputs and calls the kernel(s). Spatial ops return the new affine
   (``img.affine_lps``) in the returned :class:`Image`. The real value of a voxel is
   ``vol * slope + intercept``: an op that uses values must honour a pending slope/intercept
   (fold it in, then return ``slope=1, intercept=0``); an op that only moves voxels (flip,
   crop, reorient, nearest resampling) may pass them through unchanged.
4. ``reference(img, **params) -> Image`` computes the same thing with numpy/scipy/skimage in
   float64 (tests and ``bench`` only). ``atol``/``rtol`` are the tolerances of ``apply``
   against it; justify them in a comment next to ``OP``. When an op can output an integer
   dtype, ``extra={"int_atol": N}`` sets the tolerance (in output units) for those outputs.
   ``extra={"compare": fn}`` replaces the comparison altogether for ops whose result is
   not unique (``fn(got, want, img, params)`` raises AssertionError; e.g. ``svd``).
5. ``examples`` are parameter mappings (partial: missing params take their defaults) that the
   generic registry test runs through :meth:`Op.bind` and then ``apply`` vs ``reference`` on
   small random volumes (3-D, sides 1..12, float32 values in [-2000, 3000], also int16).
6. Parameter values arrive already converted and checked by :meth:`Op.bind`:
   ``Param.type`` converts strings from ``--op`` and TOML values, ``Param.choices`` and
   ``Param.check`` validate one value, and ``Op.resolve`` (optional) checks combinations and
   normalises (e.g. a window ``preset`` filling ``center``/``width``), raising the
   :mod:`clisonix_cli.errors` ``PipelineError`` subclasses with a one-line message that names
   the op and the parameter.
7. Bump ``version`` whenever outputs change for the same parameters.

Sketch::

    import numpy as np

    from clisonix_cli.transforms._declare import Op, Param, kernel, positive, prange
    from clisonix_cli.transforms.image import Image


    @kernel(parallel=True)
    def _flip_rows(vol: np.ndarray, out: np.ndarray) -> None:
        for s in prange(vol.shape[0]):
            ...

    def apply(img: Image, *, axis: str = "row") -> Image: ...
    def reference(img: Image, *, axis: str = "row") -> Image: ...

    OP = Op(name="flip", version=1, family="spatial", summary="...", params=(...,),
            apply=apply, reference=reference, atol=0.0, examples=({"axis": "row"},))
"""

from __future__ import annotations

import functools
import os
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from clisonix_cli.errors import (
    MissingParameterError,
    ParameterRangeError,
    ParameterTypeError,
    UnknownParameterError,
)
from clisonix_cli.runtime import apply_process_policy
from clisonix_cli.transforms.image import Image

F = TypeVar("F", bound=Callable[..., Any])

#: One switch for fastmath, off by default (results must not depend on it silently).
FASTMATH = os.environ.get("CLISONIX_FASTMATH", "0") == "1"


def prange(*args: int) -> range:
    """Parallel range inside :func:`kernel` bodies (plain ``range`` when not compiled)."""
    return range(*args)


class Kernel:
    """A numba kernel compiled on first call (``njit(cache=True, nogil=True)``).

    Calling it compiles (or loads the on-disk cache) once per process and per argument
    types; :attr:`dispatcher` gives the compiled numba dispatcher. Compilation happens under
    a lock, so threads may call the same kernel concurrently.
    """

    def __init__(self, func: Callable[..., Any], *, parallel: bool) -> None:
        self.py_func = func
        self.parallel = parallel
        self._dispatcher: Any = None
        self._lock = threading.RLock()
        functools.update_wrapper(self, func)

    @property
    def dispatcher(self) -> Any:
        """The compiled numba dispatcher (imports numba and compiles lazily)."""
        if self._dispatcher is None:
            with self._lock:
                if self._dispatcher is None:
                    self._dispatcher = self._compile()
        return self._dispatcher

    def _compile(self) -> Any:
        apply_process_policy()  # before numba's threading layer can start
        import numba

        func = self.py_func
        # Give the kernel numba's prange and the compiled form of sibling kernels; the
        # module's own globals stay untouched (numba resolves globals at compile time).
        glb = dict(func.__globals__)
        for name in _global_names(func.__code__):
            value = glb.get(name)
            if value is self:
                continue  # recursion: numba resolves the function's own name itself
            if value is prange:
                glb[name] = numba.prange
            elif isinstance(value, Kernel):
                glb[name] = value.dispatcher
        new = types.FunctionType(
            func.__code__, glb, func.__name__, func.__defaults__, func.__closure__
        )
        new.__qualname__ = func.__qualname__
        new.__module__ = func.__module__
        new.__doc__ = func.__doc__
        return numba.njit(
            cache=True, nogil=True, parallel=self.parallel, fastmath=FASTMATH
        )(new)

    def __call__(self, *args: Any) -> Any:
        return self.dispatcher(*args)


def _global_names(code: types.CodeType) -> set[str]:
    """Global names a code object (and the code objects nested in it) reads."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def kernel(*, parallel: bool = False) -> Callable[[F], F]:
    """Declare a numba kernel: cached on disk, GIL released, fastmath from one switch.

    Nothing is imported or compiled at decoration time (see the module docstring, rule 2):
    the returned :class:`Kernel` compiles on its first call.
    """

    def wrap(func: F) -> F:
        return cast(F, Kernel(func, parallel=parallel))

    return wrap


REQUIRED: Any = object()

_TYPE_NAMES: dict[type, str] = {
    float: "float",
    int: "int",
    str: "str",
    bool: "bool",
    tuple: "float x3",
}


@dataclass(frozen=True)
class Param:
    """One parameter of an op.

    ``type`` is ``float``, ``int``, ``str``, ``bool`` or ``tuple`` (three floats along
    (S, R, C); one number on the command line means the same value on every axis, ``AxBxC``
    gives three, TOML also takes a list). ``choices`` lists the valid strings of a ``str``
    parameter. ``check`` returns an error message (why the value is out of range) or None.
    A default of ``None`` means "not set" (the op decides, see ``Op.resolve``).
    """

    name: str
    type: type
    doc: str
    default: Any = REQUIRED
    unit: str | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type_name(self) -> str:
        """Human name of the type (``float``, ``int``, ``str``, ``bool``, ``float x3``)."""
        return _TYPE_NAMES.get(self.type, self.type.__name__)

    def convert(self, raw: Any, *, op: str = "?") -> Any:
        """Convert a command-line string or a TOML value to this parameter's type.

        Raises
        ------
        ParameterTypeError
            When the value cannot be read as the declared type.
        """
        where = f"op '{op}' parameter '{self.name}'"
        if raw is None and self.default is None:
            return None
        try:
            value = _convert(self.type, raw)
        except (TypeError, ValueError) as exc:
            raise ParameterTypeError(
                f"{where}: cannot read {raw!r} as {self.type_name} ({exc}); "
                f"expected {self._expected()}"
            ) from None
        return value

    def validate(self, value: Any, *, op: str = "?") -> None:
        """Check ``choices`` and ``check`` for an already converted value.

        Raises
        ------
        ParameterRangeError
            When the value is not one of the choices or fails ``check``.
        """
        if value is None and self.default is None:
            return
        where = f"op '{op}' parameter '{self.name}'"
        if self.choices is not None and value not in self.choices:
            raise ParameterRangeError(
                f"{where}: {value!r} is not one of {', '.join(self.choices)}"
            )
        if self.check is not None:
            problem = self.check(value)
            if problem is not None:
                raise ParameterRangeError(f"{where}: {value!r} {problem}")

    def _expected(self) -> str:
        if self.type is tuple:
            return "one number or three as AxBxC (e.g. 1.5 or 1x1x2.5)"
        if self.type is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"a {self.type_name}"


def _convert(kind: type, raw: Any) -> Any:
    """Convert ``raw`` (str from ``--op`` or a TOML value) to ``kind``; ValueError if not."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("not a boolean")
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError("a boolean is not an integer")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str):
            return int(raw.strip())
        raise ValueError("not an integer")
    if kind is float:
        return _to_float(raw)
    if kind is str:
        if isinstance(raw, str):
            return raw.strip()
        raise ValueError("not a string")
    if kind is tuple:
        items: Sequence[Any]
        if isinstance(raw, str):
            items = [p for p in raw.strip().lower().split("x")]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            items = [raw]
        values = tuple(_to_float(v) for v in items)
        if len(values) == 1:
            values = values * 3
        if len(values) != 3:
            raise ValueError(f"{len(values)} values, expected 1 or 3")
        return values
    raise ValueError(f"unsupported parameter type {kind!r}")


def _to_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        value = float(raw.strip())
    else:
        raise ValueError("not a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def positive(value: Any) -> str | None:
    """``check`` for values that must be > 0 (all entries, for tuples)."""
    values = value if isinstance(value, tuple) else (value,)
    return None if all(v > 0 for v in values) else "must be > 0"


def non_negative(value: Any) -> str | None:
    """``check`` for values that must be >= 0 (all entries, for tuples)."""
    values = value if isinstance(value, tuple) else (value,)
    return None if all(v >= 0 for v in values) else "must be >= 0"


def between(lo: float, hi: float) -> Callable[[Any], str | None]:
    """``check`` for values in the closed range [lo, hi]."""

    def check(value: Any) -> str | None:
        values = value if isinstance(value, tuple) else (value,)
        return (
            None if all(lo <= v <= hi for v in values) else f"must be in [{lo}, {hi}]"
        )

    return check


@dataclass(frozen=True)
class Op:
    """A transform op, declared once.

    ``apply(img, **params) -> Image`` is the numba-backed pipeline step; ``reference`` has the
    same signature and is written with numpy/scipy/scikit-image (tests and ``bench`` only).
    ``atol``/``rtol`` are the tolerances of ``apply`` against ``reference``, justified in the
    op's module. ``examples`` are parameter sets the property tests and ``bench`` use.

    Optional hooks (all default to None, so older declarations keep working):

    ``resolve(params) -> params``
        Receives every parameter converted, checked and with defaults filled; checks
        combinations and normalises (raise ``PipelineError`` subclasses naming op and
        parameter). Its result is what ``apply`` receives and what the canonical form holds.
    ``pointwise(ctx, params) -> step``
        For ops whose output voxel depends only on the same input voxel (plus whole-volume
        statistics): lets :mod:`clisonix_cli.transforms.fuse` collapse consecutive such ops
        into one pass. Only the intensity ops of this package use it.
    ``geometry(shape, affine_lps, params) -> (shape, affine_lps)``
        For ops that change the grid: the output shape and affine without running the op
        (planning, ``--dry-run``, memory estimates).
    """

    name: str
    version: int
    family: str
    summary: str
    params: tuple[Param, ...]
    apply: Callable[..., Image]
    reference: Callable[..., Image]
    atol: float = 1e-6
    rtol: float = 0.0
    examples: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    pointwise: Callable[..., Any] | None = None
    geometry: Callable[..., tuple[tuple[int, ...], Any]] | None = None

    def bind(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Convert, check, fill defaults and resolve a parameter mapping.

        ``raw`` values may be strings (``--op``), TOML values or Python values. The result
        holds every declared parameter, in declaration order.

        Raises
        ------
        UnknownParameterError, MissingParameterError, ParameterTypeError, ParameterRangeError
            One-line messages naming the op and the parameter (and the valid keys).
        """
        known = [p.name for p in self.params]
        for key in raw:
            if key not in known:
                valid = (
                    ", ".join(known) if known else "(none: this op takes no parameters)"
                )
                raise UnknownParameterError(
                    f"op '{self.name}': unknown parameter '{key}'; valid parameters: {valid}"
                )
        bound: dict[str, Any] = {}
        for p in self.params:
            if p.name in raw:
                value = p.convert(raw[p.name], op=self.name)
            elif p.required:
                raise MissingParameterError(
                    f"op '{self.name}': missing required parameter '{p.name}' "
                    f"({p.doc.rstrip('.')}); e.g. --op {self.name}:{p.name}=VALUE"
                )
            else:
                value = p.default
            p.validate(value, op=self.name)
            bound[p.name] = value
        if self.resolve is not None:
            bound = self.resolve(bound)
        return bound
