"""The writer registry: every ``--format`` writes what it declares and reads back, streaming
writers take a slice source, names and suffixes are unique, lookups fail as before.

A new format module needs a reader in ``READERS`` below; the first test fails until it has
one.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clisonix_cli.dicom.volume import StackStream
from clisonix_cli.digest import file_digest
from clisonix_cli.errors import UsageError
from clisonix_cli.formats.registry import (
    Provenance,
    Source,
    VolumeSource,
    Writer,
    file_writers,
    writer_table,
)
from clisonix_cli.taskarray.config import RunConfig
from clisonix_cli.taskarray.writers import format_names, get_writer, writers

ROOT = Path(__file__).resolve().parents[2]

#: One representative type per numpy kind a writer may declare.
KIND_DTYPES = {"b": "?", "i": "<i2", "u": "<u2", "f": "<f4", "c": "<c8"}

SLOPE, INTERCEPT = 2.0, -10.0


def _read_nifti(path: Path) -> np.ndarray:
    nib = importlib.import_module("nibabel")  # untyped: keep mypy --strict quiet
    real = np.asarray(nib.load(path).get_fdata())
    return real.transpose(tuple(range(real.ndim))[::-1])  # (C, R, S[, T]) -> C order


def _read_npy(path: Path) -> np.ndarray:
    side = json.loads(path.with_suffix(".json").read_text())
    arr = np.load(path)
    return arr * side["slope"] + side["intercept"]


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    side = json.loads(path.with_name(path.name[:-4] + ".json").read_text())
    planes = [np.asarray(PILImage.open(path.with_name(f))) for f in side["files"]]
    arr = np.stack(planes).reshape(side["shape"]).astype(np.float64)
    return arr * side["slope"] + side["intercept"]


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom

    def series(folder: Path) -> np.ndarray:
        files = [pydicom.dcmread(f) for f in sorted(folder.glob("IM*.dcm"))]
        files.sort(key=lambda ds: int(ds.InstanceNumber))
        return np.stack(
            [
                ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                for ds in files
            ]
        )

    volumes = sorted(path.glob("t[0-9][0-9][0-9][0-9]"))
    return np.stack([series(v) for v in volumes]) if volumes else series(path)


#: Test-side reader per ``--format``: the real values (stored * slope + intercept).
READERS: dict[str, Callable[[Path], np.ndarray]] = {
    "nifti": _read_nifti,
    "nifti-gz": _read_nifti,
    "npy": _read_npy,
    "png": _read_png,
    "dicom": _read_dicom,
}


def _data(ndim: int, kind: str) -> np.ndarray:
    shape = (2, 3, 4, 5)[4 - ndim :]
    rng = np.random.default_rng(ndim * 31 + ord(kind))
    if kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype("<c8")
    values = rng.integers(-300 if kind == "i" else 0, 300, size=shape)
    if kind == "f":
        return (values * 0.37).astype("<f4")
    return values.astype(KIND_DTYPES[kind])


def _source(data: np.ndarray | VolumeSource) -> Source:
    return Source(
        data,
        np.diag([3.0, 0.8, 0.5, 1.0]),
        SLOPE,
        INTERCEPT,
        meta={"Modality": "MR", "RepetitionTime": 2000.0},
        sidecar=lambda: {"Modality": "MR", "RepetitionTime": 2000.0},
        provenance=Provenance("1.2.826.0.1.3680043.2.1125.1", "k0", (), "0" * 64),
    )


def _cases() -> list[Any]:
    return [
        pytest.param(writer, ndim, kind, id=f"{writer.name}-{ndim}d-{kind}")
        for writer in writers().values()
        for ndim in writer.ndims
        for kind in writer.kinds
    ]


@pytest.mark.parametrize(("writer", "ndim", "kind"), _cases())
def test_every_writer_writes_what_it_declares_and_reads_back(
    tmp_path: Path, writer: Writer, ndim: int, kind: str
) -> None:
    assert writer.name in READERS, f"add a reader for --format {writer.name}"
    data = _data(ndim, kind)
    target = tmp_path / f"out{writer.suffix}"
    digests: dict[Path, str] = {}
    paths = writer.write(target, _source(data), digests)
    assert paths and all(p.is_file() for p in paths)
    for path, sha in digests.items():  # digests computed on the way are the file's
        assert sha == file_digest(path)
    want = data.astype(np.complex128 if kind == "c" else np.float64) * SLOPE + INTERCEPT
    got = READERS[writer.name](target)
    span = float(np.ptp(want.real)) if want.size else 0.0
    # DICOM stores real values quantized to int16: within one quantum of the range.
    atol = span / 65534 if writer.name == "dicom" and kind == "f" else 1e-6
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def _stream(data: np.ndarray) -> StackStream:
    """What a pure conversion writes: the reader's stream, two slices at a time."""
    flat = data.reshape(-1, *data.shape[-2:])
    return StackStream(
        shape=tuple(data.shape),
        dtype=data.dtype,
        affine_lps=np.eye(4),
        slope=SLOPE,
        intercept=INTERCEPT,
        meta={},
        _source=lambda: (flat[at : at + 2] for at in range(0, len(flat), 2)),
    )


@pytest.mark.parametrize("writer", writers().values(), ids=lambda w: w.name)
def test_a_streaming_writer_writes_a_slice_source_as_the_array(
    tmp_path: Path, writer: Writer
) -> None:
    data = _data(4, "i")
    stream = _stream(data)
    assert isinstance(stream, VolumeSource)
    source = _source(stream)
    if not writer.streams:
        with pytest.raises(UsageError, match="whole array"):
            writer.write(tmp_path / f"s{writer.suffix}", source, None)
        return
    whole = writer.write(tmp_path / f"a{writer.suffix}", _source(data), None)
    streamed = writer.write(tmp_path / f"s{writer.suffix}", source, None)
    assert [p.read_bytes() for p in whole] == [p.read_bytes() for p in streamed]


def test_the_sidecar_is_built_after_the_data_are_written(tmp_path: Path) -> None:
    for writer in writers().values():
        target = tmp_path / f"v{writer.suffix}"
        seen: list[bool] = []

        def late(
            target: Path = target, seen: list[bool] = seen, suffix: str = writer.suffix
        ) -> dict[str, Any]:
            # the data are already in place (png: one file per plane, v_0000.png...)
            seen.append(target.exists() or any(tmp_path.glob(f"v_*{suffix}")))
            return {"Modality": "MR"}

        kind = "i" if "i" in writer.kinds else writer.kinds[0]
        source = replace(_source(_data(3, kind)), sidecar=late)
        paths = writer.write(target, source, None)
        wrote_sidecar = any(p.suffix == ".json" for p in paths)
        assert seen == ([True] if wrote_sidecar else []), writer.name


def test_names_and_suffixes_are_unique() -> None:
    table = writers()
    assert list(table) == list(format_names())
    assert len({w.suffix for w in table.values()}) == len(table)
    assert set(file_writers()) == set(table) - {"dicom"}
    npy = table["npy"]
    with pytest.raises(RuntimeError, match="declared twice"):
        writer_table([npy, replace(npy, suffix=".other")])
    with pytest.raises(RuntimeError, match="both write '.npy'"):
        writer_table([npy, replace(npy, name="other")])


def test_unknown_format_error_unchanged(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    message = (
        "--format 'bogus': unknown output format; "
        "choose one of nifti, nifti-gz, npy, png, dicom"
    )
    with pytest.raises(UsageError) as caught:
        RunConfig(in_dir=tmp_path / "in", out_dir=tmp_path / "out", format="bogus")
    assert caught.value.message == message
    with pytest.raises(UsageError) as again:
        get_writer("bogus")
    assert again.value.message == message


def test_every_format_is_documented() -> None:
    cli_page = (ROOT / "docs" / "cli.md").read_text()  # generated from --help
    (help_line,) = [ln for ln in cli_page.splitlines() if ln.startswith("* `--format")]
    page = (ROOT / "docs" / "transform.md").read_text()
    for name in format_names():
        assert f" {name}" in help_line, f"--format help does not name {name}"
        assert f"`{name}`" in page, f"docs/transform.md does not name {name}"


def test_the_registry_imports_nothing_heavy() -> None:
    probe = (
        "import sys\n"
        "heavy = ('numpy', 'nibabel', 'pydicom', 'numba')\n"
        "import clisonix_cli.formats.registry, clisonix_cli.taskarray.config\n"
        "print('import:', *[m for m in heavy if m in sys.modules])\n"
        "from clisonix_cli.taskarray.writers import writers\n"
        "writers()\n"
        "print('listing:', *[m for m in heavy if m in sys.modules])\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # listing imports the format modules (numpy), never a reader or a kernel library
    assert run.stdout.splitlines() == ["import:", "listing: numpy"]
