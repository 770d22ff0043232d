"""Run one fuzz target under atheris (libFuzzer): ``python fuzz/fuzz.py TARGET [ARGS]``.

``TARGET`` is ``file`` or ``codec`` (see ``targets.py``); the remaining arguments go to
libFuzzer (``-runs=N``, ``-rss_limit_mb=...``, corpus folders). ``make fuzz`` runs every
target through ``fuzz/run.py``, which seeds the corpus and keeps the findings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Coverage comes from clisonix's own code: instrumenting pydicom too halves the speed
# (measured: 53 -> 111 inputs/s for the file target).
with atheris.instrument_imports(include=["clisonix_cli", "targets"]):
    import targets


def main() -> None:
    """Pick the target named by the first argument and hand the rest to libFuzzer."""
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: fuzz.py {{{','.join(targets.TARGETS)}}} [libFuzzer args]")
    target = targets.TARGETS[sys.argv[1]]
    for warm in (b"", bytes(200)):  # the lazy imports (pydicom, decoders) happen here,
        target(warm)  # not in the first input's time limit
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
