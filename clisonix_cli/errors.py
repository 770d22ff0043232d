"""The error types every room raises, each with a stable ``CLX-E`` code.

Codes are documented in ``docs/errors.md`` (generated from this module) and are never reused.
Exit codes follow DESIGN.md: 0 all ok, 1 some tasks failed, 2 usage or configuration error,
3 environment error, 4 internal error (a bug: :class:`ClisonixError` itself, ``CLX-E000``).
A task-level error (:class:`TaskError` and its children) is recorded in the manifest and the
batch goes on; the others stop the run before or while it starts.
"""

from __future__ import annotations

from typing import ClassVar


class ClisonixError(Exception):
    """Base of every clisonix error: a stable code, an exit code and a one-line message."""

    code: ClassVar[str] = "CLX-E000"
    exit_code: ClassVar[int] = 4
    summary: ClassVar[str] = (
        "Unexpected internal error: a bug in clisonix (please report it)."
    )

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, always

    def one_line(self) -> str:
        """``CLX-Exxx: message`` as printed on stderr and stored in the manifest."""
        return f"{self.code}: {self.message}"


class AbortedError(ClisonixError):
    code = "CLX-E002"
    exit_code = 1
    summary = "The command was aborted: its input ended (Ctrl-C exits 130 instead)."


# --- usage and configuration: exit 2, nothing was done -------------------------------------


class UsageError(ClisonixError):
    code = "CLX-E001"
    exit_code = 2
    summary = "Invalid command-line usage or option value."


class PipelineError(UsageError):
    code = "CLX-E010"
    summary = "Invalid pipeline: unknown op."


class UnknownParameterError(PipelineError):
    code = "CLX-E011"
    summary = "Invalid pipeline: unknown parameter for an op."


class MissingParameterError(PipelineError):
    code = "CLX-E012"
    summary = "Invalid pipeline: a required parameter is missing."


class ParameterTypeError(PipelineError):
    code = "CLX-E013"
    summary = "Invalid pipeline: a parameter value has the wrong type."


class ParameterRangeError(PipelineError):
    code = "CLX-E014"
    summary = "Invalid pipeline: a parameter value is out of range."


class PipelineFileError(PipelineError):
    code = "CLX-E015"
    summary = "The pipeline file cannot be read or is not valid TOML."


class PipelineSyntaxError(PipelineError):
    code = "CLX-E016"
    summary = "Invalid pipeline: an --op spec or a TOML [[op]] entry is malformed."


class OutputConflictError(UsageError):
    code = "CLX-E020"
    summary = (
        "OUT_DIR holds outputs of another pipeline; use a new folder or --overwrite."
    )


class ShardSpecError(UsageError):
    code = "CLX-E021"
    summary = "Invalid --shard I/N value."


class CompareError(UsageError):
    code = "CLX-E022"
    summary = "A benchmark file given to --compare cannot be read."


class BaselineError(UsageError):
    code = "CLX-E045"
    summary = "The QC baseline (--baseline qc.json) cannot be read or is not a qc.json."


class QcKeyError(UsageError):
    code = "CLX-E046"
    summary = "The key file for hashing station names is missing, too short or readable by others."


class BaselineKeyMismatchError(UsageError):
    code = "CLX-E047"
    summary = (
        "The QC baseline hashed station names with another key (or none): its scanner "
        "groups cannot match; use the same --key-file."
    )


class DeidKeyError(UsageError):
    code = "CLX-E190"
    summary = (
        "The de-identification key file is missing, unreadable, empty, readable by other "
        "users or shorter than 32 bytes."
    )


class DeidOptionError(UsageError):
    code = "CLX-E191"
    summary = "Unknown or contradictory de-identification --option."


class DeidPathError(UsageError):
    code = "CLX-E192"
    summary = (
        "--mapping (or --new-key) names a place inside OUT_DIR or IN_DIR, or an existing "
        "file; re-identification data are kept apart from the released data."
    )


class EmptyInputError(UsageError):
    code = "CLX-E214"
    summary = "IN_DIR holds no DICOM image at all (use --allow-empty to accept that)."


# --- environment: exit 3 -------------------------------------------------------------------


class EnvironmentProblem(ClisonixError):
    code = "CLX-E030"
    exit_code = 3
    summary = "The output folder cannot be created or written."


class SchedulerUnreachableError(EnvironmentProblem):
    code = "CLX-E031"
    summary = "The Dask scheduler cannot be reached."


class WorkerVersionError(EnvironmentProblem):
    code = "CLX-E032"
    summary = "Dask workers run a different clisonix version than the client."


class MissingDependencyError(EnvironmentProblem):
    code = "CLX-E033"
    summary = "An optional dependency needed for this option is not installed."


class InputUnreadableError(EnvironmentProblem):
    code = "CLX-E034"
    summary = "The input folder or file list cannot be read."


class OutputLinkError(EnvironmentProblem):
    code = "CLX-E035"
    summary = (
        "A path clisonix would write inside OUT_DIR is a symbolic link or lies under one: "
        "refused, nothing written through it."
    )


class SchedulerTlsError(EnvironmentProblem):
    code = "CLX-E036"
    summary = (
        "TLS to the Dask scheduler failed: certificate files missing or unreadable, or "
        "the scheduler and clisonix disagree on TLS."
    )


# --- per file / per task: recorded in the manifest, the batch goes on (exit 1 at the end) --


class TaskError(ClisonixError):
    code = "CLX-E170"
    exit_code = 1
    summary = (
        "The executor could not run the task (not sent to or not unpacked on a worker)."
    )


# reading, decoding and geometry: the input is at fault


class InputError(TaskError):
    code = "CLX-E100"
    summary = "A file cannot be read as DICOM."


class TruncatedFileError(InputError):
    code = "CLX-E101"
    summary = "A DICOM file ends before its declared content (truncated)."


class NoPixelDataError(InputError):
    code = "CLX-E102"
    summary = "The object has no pixel data (SR, RT plan, KOS, ...): skipped."


class UnsupportedSyntaxError(InputError):
    code = "CLX-E110"
    summary = "No installed decoder handles the file's transfer syntax."


class DecodeError(InputError):
    code = "CLX-E111"
    summary = "The compressed pixel data could not be decoded."


class PixelDataSizeError(InputError):
    code = "CLX-E112"
    summary = "The header claims more pixel data than the file holds (rejected before allocation)."


class PixelDataLengthError(PixelDataSizeError):
    code = "CLX-E212"
    summary = (
        "Uncompressed Pixel Data is longer than the header's matrix (more than one pad "
        "byte): the header or the data is corrupt."
    )


class DecodeLimitError(InputError):
    code = "CLX-E210"
    summary = (
        "The file would decode to more bytes than the decoding caps allow (a "
        "decompression bomb or a wrong header): rejected before decoding."
    )


class CodestreamMismatchError(InputError):
    code = "CLX-E211"
    summary = (
        "The codec's own header (JPEG SOF, JPEG 2000 SIZ, RLE header) disagrees with the "
        "DICOM header, or the codestream ends early: rejected before decoding."
    )


class BitDepthError(InputError):
    code = "CLX-E213"
    summary = "Bits Allocated / Bits Stored / High Bit form a combination PS3.5 does not allow."


class NotRegularFileError(InputError):
    code = "CLX-E215"
    summary = "An input is not a regular file (FIFO, socket, device): never opened, set aside."


class UnreadableFolderError(InputError):
    code = "CLX-E216"
    summary = (
        "A folder under IN_DIR cannot be listed: the files in it were not looked at."
    )


class LinkedFolderNote(InputError):
    code = "CLX-E217"
    summary = (
        "A symbolic link to a folder inside IN_DIR was not followed (informational; "
        "--follow-symlinks follows links that stay inside IN_DIR)."
    )


class UnsupportedImageError(InputError):
    code = "CLX-E113"
    summary = "The pixel layout is not a greyscale image stack clisonix can convert (e.g. RGB)."


class GeometryError(InputError):
    code = "CLX-E120"
    summary = "Geometry attributes are missing or invalid."


class InconsistentStackError(InputError):
    code = "CLX-E121"
    summary = (
        "Slices of a stack disagree (missing slices, uneven spacing, uneven repeats): "
        "the stack is not converted."
    )


class DuplicateInstanceError(InputError):
    code = "CLX-E122"
    summary = (
        "A duplicate instance (same SOP Instance UID as a kept file) is set aside; "
        "informational, the kept copy is converted."
    )


# image objects of every kind (issue 9): 2-D, colour, display, legacy multi-frame


class SpacingError(GeometryError):
    code = "CLX-E171"
    summary = (
        "A pixel spacing attribute (Pixel Spacing, Imager Pixel Spacing, magnification) is "
        "zero, negative or malformed."
    )


class ColourLayoutError(UnsupportedImageError):
    code = "CLX-E172"
    summary = (
        "Photometric Interpretation and Samples per Pixel disagree (e.g. MONOCHROME2 with "
        "3 samples), or the colour model is not one clisonix decodes."
    )


class PaletteError(InputError):
    code = "CLX-E173"
    summary = (
        "A PALETTE COLOR image has missing, short or inconsistent lookup table data."
    )


class VoiLutError(InputError):
    code = "CLX-E174"
    summary = (
        "A VOI or Modality LUT Sequence is malformed (data length disagrees with its "
        "descriptor) or the requested window does not exist."
    )


class FrameCountError(InputError):
    code = "CLX-E175"
    summary = (
        "The number of frames disagrees with the pixel data or with the per-frame vectors "
        "(Grid Frame Offset Vector, Frame Time Vector)."
    )


class DisplayValuesError(TaskError):
    code = "CLX-E176"
    summary = (
        "The output format cannot hold the pipeline's values (PNG takes 8- or 16-bit "
        "display values: end the pipeline with voi, or window:dtype=uint8)."
    )


# running the task: ops, writing, workers, time limits, verification


class TransformFailedError(TaskError):
    code = "CLX-E130"
    summary = "A transform op failed on this volume."


class WriteFailedError(TaskError):
    code = "CLX-E140"
    summary = "An output file could not be written."


class WorkerDiedError(TaskError):
    code = "CLX-E150"
    summary = "The worker process running this task died (crash or out-of-memory kill)."


class TaskTimeoutError(TaskError):
    code = "CLX-E151"
    summary = "The task ran longer than --task-timeout."


class TaskCancelledError(TaskError):
    code = "CLX-E152"
    summary = "The task was not run because --fail-fast stopped the batch."


class QcMeasureError(TaskError):
    code = "CLX-E230"
    summary = (
        "QC metrics could not be computed for this series (its QC status is fail)."
    )


class PHIGuardError(TaskError):
    code = "CLX-E195"
    summary = (
        "The PHI guard found an identifying value of the task's inputs in an output: the "
        "output is withheld and the task fails."
    )


# de-identification policy: a file is withheld (not copied), informational (exit 0)


class WithheldError(TaskError):
    code = "CLX-E196"
    summary = "A file is withheld by the de-identification policy (not released)."


class BurnedInWithheldError(WithheldError):
    code = "CLX-E197"
    summary = (
        "Withheld: the object may carry burned-in text (BurnedInAnnotation YES, or a US, "
        "SC or OT object that does not say NO); --allow-burned-in releases it."
    )


class DocumentWithheldError(WithheldError):
    code = "CLX-E198"
    summary = (
        "Withheld: an encapsulated document (PDF, CDA, ...) cannot be de-identified."
    )


class FreeTextWithheldError(WithheldError):
    code = "CLX-E199"
    summary = (
        "Withheld: free text in structured content or graphics; the Clean Structured "
        "Content / Clean Graphics option releases it cleaned."
    )


class MissingUIDWithheldError(WithheldError):
    code = "CLX-E200"
    summary = (
        "Withheld: the object lacks a Study, Series or SOP Instance UID, so it cannot be "
        "placed consistently."
    )


class DicomdirWithheldError(WithheldError):
    code = "CLX-E201"
    summary = (
        "Withheld: a DICOMDIR indexes the input's own file names; make a new one for the "
        "output if needed."
    )


class VerifyMismatchError(TaskError):
    code = "CLX-E160"
    summary = "An output is missing, extra or changed against the manifest."


class ManifestTamperedError(VerifyMismatchError):
    code = "CLX-E218"
    summary = (
        "A manifest record names an output outside OUT_DIR or through a symbolic link: "
        "treated as tampering, the path is never read."
    )


def all_errors() -> list[type[ClisonixError]]:
    """Every error class defined here, sorted by code (docs and tests read this)."""
    seen: list[type[ClisonixError]] = []
    stack: list[type[ClisonixError]] = [ClisonixError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return sorted(set(seen), key=lambda c: c.code)


def by_code(code: str) -> type[ClisonixError] | None:
    """Return the error class of a ``CLX-E`` code (as in a manifest or scan document).

    Parameters
    ----------
    code : str
        A code such as ``"CLX-E121"``.

    Returns
    -------
    type or None
        The class, or None when no class has that code (an empty string, a code of a newer
        clisonix): callers choose their fallback, no ``KeyError`` to catch.
    """
    for cls in all_errors():
        if cls.code == code:
            return cls
    return None
