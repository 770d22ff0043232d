"""``clisonix synth``: write synthetic DICOM studies (CT/MR phantoms) for tests and demos."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from clisonix_cli.cli._console import emit_json, reporting_errors, say
from clisonix_cli.cli._options import JsonFlag
from clisonix_cli.errors import EnvironmentProblem, UsageError
from clisonix_cli.fsio import prepare_out_dir

#: Files besides the studies that may sit in a synth folder (sample_data/ keeps these).
_ALLOWED_EXTRA = frozenset({"SHA256SUMS", "README.md"})


def prepare_synth_dir(out_dir: Path, expected: set[str]) -> None:
    """Create OUT_DIR, refusing a folder whose other files would mix with the new set.

    Writing again into a folder this same command wrote is fine (the files are replaced by
    identical bytes); a folder holding anything else would end up as a mixture of two
    synthetic sets (or of real and synthetic files) that no seed describes.

    Parameters
    ----------
    out_dir : Path
        The synth output folder.
    expected : set of str
        Paths, relative to ``out_dir`` with ``/`` separators, that this run writes.

    Raises
    ------
    UsageError
        OUT_DIR holds files this run would not write (exit 2).
    EnvironmentProblem
        OUT_DIR is a file, or cannot be created or written (exit 3).
    """
    if out_dir.is_dir():
        stale = sorted(
            rel
            for p in out_dir.rglob("*")
            if p.is_file() and not p.name.endswith(".clxtmp")
            for rel in [p.relative_to(out_dir).as_posix()]
            if rel not in expected and rel not in _ALLOWED_EXTRA
        )
        if stale:
            raise UsageError(
                f"{out_dir} holds {len(stale)} file(s) this command would not write (e.g. "
                f"{stale[0]}); the folder would mix two sets - use a new or empty folder"
            )
    prepare_out_dir(out_dir)


def _count(envvar: str, help_text: str) -> Any:
    """A whole-number option of the study layout, also read from ``envvar``."""
    return typer.Option(envvar=envvar, help=help_text)


class Modality(StrEnum):
    """Phantom modality."""

    CT = "CT"
    MR = "MR"
    mixed = "mixed"


class Syntax(StrEnum):
    """Transfer syntax of the written files."""

    explicit = "explicit"
    rle = "rle"
    j2k = "j2k"
    mixed = "mixed"


def synth(
    out_dir: Annotated[
        Path,
        typer.Argument(
            metavar="OUT_DIR",
            help="Folder to write the studies into (created; new or empty, or a folder "
            "this same command wrote before).",
        ),
    ],
    seed: Annotated[
        int,
        typer.Option(envvar="CLISONIX_SEED", help="Seed for UIDs, dates and noise."),
    ] = 0,
    patients: Annotated[int, _count("CLISONIX_PATIENTS", "Number of patients.")] = 2,
    studies: Annotated[int, _count("CLISONIX_STUDIES", "Studies per patient.")] = 1,
    series: Annotated[int, _count("CLISONIX_SERIES", "Series per study.")] = 2,
    slices: Annotated[int, _count("CLISONIX_SLICES", "Slices per series.")] = 24,
    rows: Annotated[int, _count("CLISONIX_ROWS", "Rows per slice.")] = 64,
    cols: Annotated[int, _count("CLISONIX_COLS", "Columns per slice.")] = 64,
    modality: Annotated[
        Modality,
        typer.Option(
            envvar="CLISONIX_MODALITY",
            help="CT, MR, or mixed (CT and MR series alternate).",
        ),
    ] = Modality.CT,
    syntax: Annotated[
        Syntax,
        typer.Option(
            envvar="CLISONIX_SYNTAX",
            help="explicit (VR little endian), rle, j2k (lossless), or mixed "
            "(explicit and RLE series alternate).",
        ),
    ] = Syntax.explicit,
    noise_sd: Annotated[
        float | None,
        typer.Option(
            envvar="CLISONIX_NOISE_SD",
            help="SD of the added noise: HU for CT (default 10), per channel for MR "
            "(default 20).",
        ),
    ] = None,
    hu_offset: Annotated[
        float,
        typer.Option(
            envvar="CLISONIX_HU_OFFSET",
            help="CT: calibration error added to every HU value (air = -1000 + offset).",
        ),
    ] = 0.0,
    kernel: Annotated[
        str,
        typer.Option(
            envvar="CLISONIX_KERNEL", help="CT: the Convolution Kernel written."
        ),
    ] = "STANDARD",
    jobs: Annotated[
        int,
        typer.Option(
            envvar="CLISONIX_JOBS",
            help="Worker processes (output bytes do not depend on it).",
        ),
    ] = 1,
    sums: Annotated[
        bool,
        typer.Option(
            "--sha256sums",
            envvar="CLISONIX_SHA256SUMS",
            help="Also write OUT_DIR/SHA256SUMS (sha256sum -c format) of the files written.",
        ),
    ] = False,
    phi: Annotated[
        bool,
        typer.Option(
            "--phi",
            envvar="CLISONIX_PHI",
            help="Put a unique canary string in every identifying attribute, private "
            "tag, nested sequence, folder and file name, and add a KOS, SR, presentation "
            "state and PDF per study (to test de-identification).",
        ),
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Write synthetic DICOM studies (phantoms); the same options give identical bytes.

    Example: clisonix synth demo_in --patients 2 --series 3 --modality mixed --syntax mixed
    """
    from clisonix_cli.dicom.synth import (
        plan,
        series_summary,
        sha256sums,
        slice_name,
        synthesize,
    )
    from clisonix_cli.dicom.synth_phi import nonimage_names
    from clisonix_cli.fsio import atomic_write_bytes

    # The same values plan the file names (to check OUT_DIR) and write the files.
    layout: dict[str, Any] = {
        "patients": patients,
        "studies": studies,
        "series": series,
        "slices": slices,
        "rows": rows,
        "cols": cols,
        "modality": modality.value,
        "syntax": syntax.value,
        "noise_sd": noise_sd,
        "hu_offset": hu_offset,
        "kernel": kernel,
    }
    with reporting_errors():
        plans = plan(**layout, phi=phi, seed=seed)
        expected = {
            f"{sp.rel_dir}/{slice_name(seed, sp, k)}"
            for sp in plans
            for k in range(sp.slices)
        }
        if phi:
            expected.update(nonimage_names(seed, plans))
        prepare_synth_dir(out_dir, expected)
        try:
            paths = synthesize(out_dir, seed=seed, jobs=jobs, phi=phi, **layout)
            if sums:
                text = sha256sums(out_dir, paths)
                atomic_write_bytes(out_dir / "SHA256SUMS", text.encode("ascii"))
        except OSError as exc:
            raise EnvironmentProblem(
                f"{out_dir}: cannot write the synthetic files ({exc.strerror or exc}); "
                "check free space and permissions, or choose another folder"
            ) from None
    n_bytes = sum(p.stat().st_size for p in paths)
    if json_out:
        emit_json(
            {
                "out_dir": str(out_dir),
                "seed": seed,
                "files": len(paths),
                "bytes": n_bytes,
                "series": series_summary(plans),
            }
        )
    else:
        say(
            f"wrote {len(paths)} files in {len(plans)} series "
            f"({n_bytes / 1e6:.1f} MB) under {out_dir}"
        )
