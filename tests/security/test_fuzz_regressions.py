"""Every input the fuzzer ever found (``make fuzz``) is replayed: none may crash again.

Files live in ``tests/data/fuzz-regressions/<target>/`` (``crash-*``, ``timeout-*``,
``oom-*`` as libFuzzer names them); the targets are ``fuzz/targets.py``, which needs no
fuzzer to run. A target returns normally when clisonix classified or decoded the input, or
rejected it with a stable code.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEPT = ROOT / "tests" / "data" / "fuzz-regressions"


def _targets() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "clisonix_fuzz_targets", ROOT / "fuzz" / "targets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CASES = sorted(
    (p.parent.name, p) for p in KEPT.glob("*/*") if p.is_file() and p.name != ".gitkeep"
)


def test_every_target_has_a_folder() -> None:
    assert sorted(p.name for p in KEPT.iterdir() if p.is_dir()) == sorted(
        _targets().TARGETS
    )


@pytest.mark.parametrize(
    ("target", "path"), CASES, ids=[f"{t}/{p.name[:20]}" for t, p in CASES]
)
def test_kept_finding_is_handled(target: str, path: Path) -> None:
    _targets().TARGETS[target](path.read_bytes())
