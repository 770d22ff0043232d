"""Manifest records of de-identifying runs: keyed tokens and new UIDs, never originals.

A de-identifying run (``clisonix deid``, ``transform --deidentify``) lists each input by the
keyed token of its relative path and the digest of its content (``"blake3:<hex>"``, the
manifest's algorithm), names studies and series
by their new UIDs, and records the hash of its settings (``deid_sha256``: key fingerprint,
options) so that ``--resume`` never mixes runs of two keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clisonix_cli.dicom.deid.guard import Terms, hits
from clisonix_cli.dicom.deid.settings import DeidSettings
from clisonix_cli.digest import finish, hasher
from clisonix_cli.taskarray.manifest import dumps_record

if TYPE_CHECKING:
    from clisonix_cli.taskarray.plan import Task

Record = dict[str, Any]


def new_uid(settings: DeidSettings, uid: str) -> str:
    """A UID as the outputs of a run show it (kept under Retain UIDs)."""
    if not uid or settings.profile.has("retain-uids"):
        return uid
    return settings.mapper.uid(uid)


def deidentified_record(rec: Record, task: Task, settings: DeidSettings) -> Record:
    """A task's base record with its identifiers replaced (see the module docstring)."""
    st = task.stack
    rec["study_uid"] = new_uid(settings, st.study_uid)
    rec["series_uid"] = new_uid(settings, st.series_uid)
    rec["inputs"] = [
        {"file": settings.file_token(rel)} for rel in dict.fromkeys(st.files)
    ]
    rec["deid_sha256"] = settings.sha256()
    return rec


def keyed_inputs(
    settings: DeidSettings, files: Sequence[str], digests: Mapping[str, str]
) -> tuple[list[dict[str, str]], str]:
    """Inputs as ``{"file": token, "digest": content}`` and their combined labelled digest
    (over the lines ``"<token>\\t<digest>\\n"``, as ``inputs_digest`` of other runs)."""
    out: list[dict[str, str]] = []
    h = hasher()
    for rel in dict.fromkeys(files):
        token, digest = settings.file_token(rel), digests.get(rel, "")
        out.append({"file": token, "digest": digest})
        h.update(f"{token}\t{digest}\n".encode())
    return out, finish(h)


def deidentified_skipped(
    rec: Record, settings: DeidSettings, others: Sequence[str] = ()
) -> Record:
    """A skipped-file record with its path replaced by its token (message scrubbed of it
    and of the ``others`` input paths it names)."""
    paths = [str(p) for p in rec.get("inputs") or []]
    error = dict(rec.get("error") or {})
    if "message" in error:
        error["message"] = settings.scrub(str(error["message"]), [*paths, *others])
    token = settings.file_token(paths[0]) if paths else ""
    return {
        **rec,
        "task": "f" + token[1:],
        "inputs": [{"file": settings.file_token(p)} for p in paths],
        "error": error,
    }


def guard_record(rec: Record, terms: Terms) -> list[str]:
    """Kinds of identifying value the record's JSON line would carry (empty: clean)."""
    return hits(dumps_record(rec).encode(), terms) if terms else []
