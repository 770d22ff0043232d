"""The op registry: the ``OP`` of every module of :mod:`clisonix_cli.transforms.ops`, by name.

Op modules are found with :mod:`pkgutil` (no hand-kept list can drift) and imported on the
first call to :func:`all_ops`: every public module of ``ops`` declares one ``OP``. Importing
an op module imports numpy and the declarations only: kernels compile on their first call
(see :mod:`clisonix_cli.transforms._declare`), so listing ops, parsing a pipeline and
``clisonix ops`` never import numba.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

from clisonix_cli.transforms import ops
from clisonix_cli.transforms._declare import Op

_LOCK = threading.Lock()
_OPS: dict[str, Op] | None = None


def _discover() -> dict[str, Op]:
    found: dict[str, Op] = {}
    for info in sorted(pkgutil.iter_modules(ops.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"{ops.__name__}.{info.name}")
        op = getattr(module, "OP", None)
        if not isinstance(op, Op):
            raise RuntimeError(
                f"{module.__name__} declares no OP: every public module of "
                f"{ops.__name__} is an op (shared helpers take a leading underscore)"
            )
        if op.name in found:
            raise RuntimeError(
                f"op name '{op.name}' declared twice ({info.name}.py and another module)"
            )
        found[op.name] = op
    return dict(sorted(found.items()))


def all_ops() -> dict[str, Op]:
    """Return every registered op by name, sorted by name.

    Op modules are imported once, on the first call (thread-safe).

    Returns
    -------
    dict of str to Op
        A new dict on each call: changing it does not change the registry.
    """
    global _OPS
    if _OPS is None:
        with _LOCK:
            if _OPS is None:
                _OPS = _discover()
    return dict(_OPS)


def get_op(name: str) -> Op:
    """Return the op called ``name``.

    Parameters
    ----------
    name : str
        An op name, as in ``--op NAME:...`` (``clisonix ops`` lists them).

    Returns
    -------
    Op
        Its declaration.

    Raises
    ------
    PipelineError
        Unknown name; the message lists the valid ones.
    """
    ops = all_ops()
    if name not in ops:
        from clisonix_cli.errors import PipelineError

        raise PipelineError(
            f"unknown op '{name}'; valid ops: {', '.join(ops)} (see clisonix ops)"
        )
    return ops[name]
