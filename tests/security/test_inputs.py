"""Problems 6 and 9: FIFOs, --files-from with a relative IN_DIR, unreadable and linked
folders, and an IN_DIR without any image."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from clisonix_cli.cli.app import app
from clisonix_cli.dicom import discover as discover_mod
from clisonix_cli.dicom.index import read_header
from clisonix_cli.dicom.pixels import read_frames
from clisonix_cli.digest import file_digest
from clisonix_cli.errors import (
    EmptyInputError,
    LinkedFolderNote,
    NotRegularFileError,
    UnreadableFolderError,
)
from clisonix_cli.fsio import sha256_file

ARGS = ["--jobs", "1", "--backend", "threads", "--format", "nifti"]


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) when the block has not returned after ``seconds``."""

    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for {seconds:g} s: a FIFO was opened")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _invoke(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=stdin)


@pytest.fixture
def with_fifo(synth_study: Path, tmp_path: Path) -> Path:
    root = tmp_path / "in"
    shutil.copytree(synth_study, root)
    os.mkfifo(root / "pipe.dcm")
    return root


def test_a_fifo_is_never_opened(with_fifo: Path) -> None:
    fifo = with_fifo / "pipe.dcm"
    with within(1.0):
        got = read_header(fifo, "pipe.dcm")
        assert getattr(got, "code", None) == NotRegularFileError.code
        with pytest.raises(NotRegularFileError):
            read_frames(fifo)
        with pytest.raises(NotRegularFileError):
            sha256_file(fifo)
        with pytest.raises(NotRegularFileError):
            file_digest(fifo)  # --resume, verify and the inputs digest


@pytest.mark.parametrize("command", ["scan", "transform"])
def test_a_fifo_in_files_from_returns_at_once(
    with_fifo: Path, tmp_path: Path, command: str, crafted: SimpleNamespace
) -> None:
    names = sorted(
        p.relative_to(with_fifo).as_posix() for p in with_fifo.rglob("*.dcm")
    )
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(names) + "\n")
    before = crafted.tree_digest(with_fifo)
    args = [command, str(with_fifo)]
    if command == "transform":
        args += [str(tmp_path / "out"), *ARGS]
    with within(120.0):  # a hang guard for the whole command (main blocked forever)
        result = _invoke(*args, "--files-from", str(listing), "--json")
    assert result.exit_code == 1, result.output  # a listed input could not be read
    assert NotRegularFileError.code in result.stdout
    assert crafted.tree_digest(with_fifo) == before


def test_a_fifo_found_by_the_walk_is_set_aside(with_fifo: Path) -> None:
    with within(120.0):
        result = _invoke("scan", str(with_fifo), "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert [
        s["path"] for s in doc["skipped"] if s["code"] == NotRegularFileError.code
    ] == ["pipe.dcm"]
    assert doc["counts"]["stacks"] == 6


def test_files_from_with_a_relative_in_dir(
    synth_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(synth_study, tmp_path / "in")
    names = sorted(
        p.relative_to(tmp_path / "in").as_posix()
        for p in (tmp_path / "in").rglob("*.dcm")
    )
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    monkeypatch.chdir(tmp_path)
    scan = _invoke("scan", "in", "--files-from", "list.txt", "--json")
    assert scan.exit_code == 0, scan.output
    doc = json.loads(scan.stdout)
    assert doc["counts"]["skipped"] == 0 and doc["counts"]["stacks"] == 6
    run = _invoke("transform", "in", "out", *ARGS, "--files-from", "list.txt", "--json")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["counts"]["ok"] == 6


@pytest.fixture
def unreadable(
    synth_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """IN_DIR with one study folder that cannot be listed (chmod 000; as root, a listing
    that fails the way it fails for other users)."""
    root = tmp_path / "in"
    shutil.copytree(synth_study, root)
    locked = sorted(p for p in root.iterdir() if p.is_dir())[0]
    if os.geteuid() == 0:
        real = os.scandir

        def scandir(path: str):  # type: ignore[no-untyped-def]
            if os.path.abspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(discover_mod.os, "scandir", scandir)
        yield root
    else:
        locked.chmod(0)
        yield root
        locked.chmod(0o755)


@pytest.mark.parametrize("command", ["scan", "transform"])
def test_unreadable_folders_are_reported_and_fail_the_run(
    unreadable: Path, tmp_path: Path, command: str
) -> None:
    args = [command, str(unreadable)]
    if command == "transform":
        args += [str(tmp_path / "out"), *ARGS]
    result = _invoke(*args)
    assert result.exit_code == 1, result.output
    assert UnreadableFolderError.code in result.stderr
    assert "cannot be listed" in result.stderr


def _linked_in_dir(synth_study: Path, tmp_path: Path, *, inside: bool) -> Path:
    """IN_DIR whose study folders are symbolic links (into a folder inside or outside)."""
    root = tmp_path / "in"
    store = (root / ".store") if inside else (tmp_path / "store")
    shutil.copytree(synth_study, store)
    root.mkdir(exist_ok=True)
    for study in sorted(p for p in store.iterdir() if p.is_dir()):
        (root / study.name).symlink_to(study, target_is_directory=True)
    return root


def test_linked_study_folders_are_reported_then_followed(
    synth_study: Path, tmp_path: Path
) -> None:
    root = _linked_in_dir(synth_study, tmp_path, inside=False)
    result = _invoke("scan", str(root))
    assert result.exit_code == 2, result.output  # nothing but links: no image
    assert (
        EmptyInputError.code in result.stderr and "--follow-symlinks" in result.stderr
    )
    # links that leave IN_DIR are not followed by --follow-symlinks alone
    result = _invoke("scan", str(root), "--follow-symlinks", "--json", "--allow-empty")
    doc = json.loads(result.stdout)
    assert doc["counts"]["stacks"] == 0
    assert doc["skipped_by_code"][LinkedFolderNote.code]["count"] == 2
    result = _invoke("scan", str(root), "--follow-symlinks-outside", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["stacks"] == 6


def test_follow_symlinks_is_loop_safe_and_prefers_real_paths(
    synth_study: Path, tmp_path: Path
) -> None:
    root = _linked_in_dir(synth_study, tmp_path, inside=True)
    (root / ".store" / "loop").symlink_to(root, target_is_directory=True)
    (root / "again").symlink_to(root / ".store", target_is_directory=True)
    found = discover_mod.discover(root, follow_symlinks=True)
    assert found.files and all(f.startswith(".store/") for f in found.files)
    assert len(found.files) == len(set(found.files))
    notes = {s.path for s in found.skipped if s.code == LinkedFolderNote.code}
    assert notes >= {"again", ".store/loop"}
    result = _invoke(
        "transform",
        str(root),
        str(tmp_path / "out"),
        *ARGS,
        "--follow-symlinks",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["ok"] == 6


@pytest.mark.parametrize("command", ["scan", "transform"])
def test_an_in_dir_without_images_is_a_usage_error(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not DICOM\n")
    args = [command, str(tmp_path / "in")]
    if command == "transform":
        args += [str(tmp_path / "out"), *ARGS]
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(EmptyInputError.code)
    assert not (tmp_path / "out").exists()
    assert _invoke(*args, "--allow-empty").exit_code == 0


def _deid_key(tmp_path: Path) -> str:
    key = tmp_path / "deid.key"
    key.write_bytes(b"k" * 48)
    key.chmod(0o600)
    return str(key)


def _manifest_codes(out: Path) -> list[str]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return [r["error"]["code"] for r in map(json.loads, lines) if r.get("error")]


def test_deid_reports_unreadable_folders_and_fails_the_run(
    unreadable: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _invoke("deid", str(unreadable), str(out), "--key-file",
                     _deid_key(tmp_path), "--jobs", "1")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert _manifest_codes(out) == [UnreadableFolderError.code]
    locked = sorted(p.name for p in unreadable.iterdir() if p.is_dir())[0]
    assert locked not in (out / "manifest.jsonl").read_text()  # named by its token


def test_deid_follows_linked_folders_only_when_asked(
    synth_study: Path, tmp_path: Path
) -> None:
    root = _linked_in_dir(synth_study, tmp_path, inside=False)
    key = _deid_key(tmp_path)
    result = _invoke("deid", str(root), str(tmp_path / "o0"), "--key-file", key)
    assert result.exit_code == 2, result.output  # nothing but links: no DICOM object
    assert (
        EmptyInputError.code in result.stderr and "--follow-symlinks" in result.stderr
    )
    assert not (tmp_path / "o0").exists()
    result = _invoke("deid", str(root), str(tmp_path / "o1"), "--key-file", key,
                     "--allow-empty", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output  # reported, the user's choice
    assert _manifest_codes(tmp_path / "o1") == [LinkedFolderNote.code] * 2
    assert json.loads(result.stdout)["counts"]["written"] == 0
    result = _invoke("deid", str(root), str(tmp_path / "o2"), "--key-file", key,
                     "--follow-symlinks-outside", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    n_files = sum(1 for p in synth_study.rglob("*") if p.is_file())
    assert json.loads(result.stdout)["counts"]["written"] == n_files
