"""How a transform op is declared once: parameters, kernel switch, driver, reference.

Every op module in this package defines ``OP = Op(...)``; the registry, the ``--op``/TOML
parser, ``clisonix ops``, the docs and the property tests all read these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clisonix_cli.transforms.image import Image

F = TypeVar("F", bound=Callable[..., Any])

#: One switch for fastmath, off by default (results must not depend on it silently).
FASTMATH = os.environ.get("CLISONIX_FASTMATH", "0") == "1"


def kernel(*, parallel: bool = False) -> Callable[[F], F]:
    """Compile a kernel with numba: cached on disk, GIL released, fastmath from one switch.

    numba is imported here, at decoration time, so importing an op module costs a numba
    import but no compilation; the first call compiles (or loads the on-disk cache).
    """

    def wrap(func: F) -> F:
        import numba

        return numba.njit(  # type: ignore[no-any-return]
            cache=True, nogil=True, parallel=parallel, fastmath=FASTMATH
        )(func)

    return wrap


REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """One parameter of an op.

    ``type`` is ``float``, ``int``, ``str``, ``bool`` or ``tuple`` (three floats along
    (S, R, C); one number on the command line means the same value on every axis).
    ``check`` returns an error message (why the value is out of range) or None.
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
        return None if all(lo <= v <= hi for v in values) else f"must be in [{lo}, {hi}]"

    return check


@dataclass(frozen=True)
class Op:
    """A transform op, declared once.

    ``apply(img, **params) -> Image`` is the numba-backed pipeline step; ``reference`` has the
    same signature and is written with numpy/scipy/scikit-image (tests and ``bench`` only).
    ``atol``/``rtol`` are the tolerances of ``apply`` against ``reference``, justified in the
    op's module. ``examples`` are parameter sets the property tests and ``bench`` use.
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

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)
