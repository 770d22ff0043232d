"""The writer registry: every ``WRITERS`` entry declared by a module of this package.

Adding a file format is one new module here (plus its tests): ``formats/png.py`` defines its
write function and ``WRITERS = (Writer(name="png", suffix=..., streams=..., write=...),)``
(see :mod:`clisonix_cli.formats._declare`); ``--format png`` validation, the task's writer
lookup and the registry tests pick it up with no other edit. Modules are found with
:mod:`pkgutil` (no hand-kept list can drift) and imported on the first call to
:func:`file_writers`, so importing this module imports nothing heavy. Private modules
(``_name.py``) hold shared code and declare nothing; every other module must declare
``WRITERS``.

This package writes files from arrays and imports no other room. Writers that belong to
another room (the derived DICOM series of :mod:`clisonix_cli.dicom.write`) are declared by
the layer above that sees both, which joins them to these with :func:`writer_table`
(:mod:`clisonix_cli.taskarray.writers`).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable

from clisonix_cli.formats._declare import Provenance, Source, VolumeSource, Writer

# The declarations are public here, for the rooms above.
__all__ = [
    "Provenance",
    "Source",
    "VolumeSource",
    "Writer",
    "file_writers",
    "writer_table",
]


def writer_table(writers: Iterable[Writer]) -> dict[str, Writer]:
    """Writers by name, in the order given.

    Raises
    ------
    RuntimeError
        Two writers share a name or an output suffix (their outputs would collide).
    """
    table: dict[str, Writer] = {}
    suffixes: dict[str, str] = {}
    for writer in writers:
        if writer.name in table:
            raise RuntimeError(f"writer name '{writer.name}' declared twice")
        if writer.suffix in suffixes:
            raise RuntimeError(
                f"writers '{suffixes[writer.suffix]}' and '{writer.name}' both write "
                f"'{writer.suffix}' outputs"
            )
        table[writer.name] = writer
        suffixes[writer.suffix] = writer.name
    return table


@functools.cache  # two threads may both discover on a first call: same table
def _discover() -> dict[str, Writer]:
    import clisonix_cli.formats as pkg

    found: list[Writer] = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "registry" or info.ispkg:
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        declared = getattr(module, "WRITERS", None)
        if not isinstance(declared, tuple) or not all(
            isinstance(w, Writer) for w in declared
        ):
            raise RuntimeError(
                f"{module.__name__} declares no WRITERS tuple of Writer; a module of "
                "clisonix_cli.formats is a format (or private: _name.py)"
            )
        found += declared
    return writer_table(found)


def file_writers() -> dict[str, Writer]:
    """Every writer declared in this package, by name, in module order (imports the
    format modules once, lazily)."""
    return dict(_discover())
