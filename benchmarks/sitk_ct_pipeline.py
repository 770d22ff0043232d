"""The standard CT pipeline written with SimpleITK: the peer of ``bench_speed.py``'s rows
``pipe1`` and ``pipe8`` (issue #13), and of ``clisonix bench --peers``.

The pipeline itself lives in ``clisonix_cli/bench/sitk_pipeline.py`` (one copy, checked
voxel for voxel against ``clisonix transform`` by tests/bench/test_bench_peers.py; it
imports only SimpleITK). For every DICOM series under IN_DIR: GDCM read (HU), the DICOM
linear window 40/400 onto [0, 1], ``Resample`` to 1.5 mm (linear) on clisonix's grid,
``Normalize``, ``WriteImage`` to ``OUT_DIR/<series uid>.nii``; SimpleITK on every core
unless ``--threads N``::

    .venv/bin/python benchmarks/sitk_ct_pipeline.py IN_DIR OUT_DIR [--threads N]
"""

from __future__ import annotations

import sys

from clisonix_cli.bench.sitk_pipeline import main

if __name__ == "__main__":
    main(sys.argv[1:])
