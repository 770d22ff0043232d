"""`clisonix deid` meets the same hostile input and OUT_DIR links as `transform`.

A deflate bomb fails its file within the decoding caps (the index in the driver and the
task both inflate through the bounded reader), a FIFO is set aside without being opened,
and a link planted where the run writes stops it with one CLX-E035 line (exit 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from clisonix_cli.errors import DecodeLimitError, OutputLinkError

PEAK_LIMIT = 300 * 2**20


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "deid.key"
    key.write_bytes(b"k" * 48)
    key.chmod(0o600)
    return key


def _deid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clisonix_cli", "deid", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_deflate_bomb_fails_its_file_within_the_caps(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    in_dir = tmp_path / "in"
    crafted.write_deflate_bomb(in_dir / "bomb.dcm", 16384, 32768, 1)  # 1 GiB inflated
    crafted.write_native(
        in_dir / "fine.dcm", 8, 8, 16, np.arange(64, dtype="<u2").tobytes()
    )
    before = crafted.tree_digest(in_dir)
    out = tmp_path / "out"
    run = crafted.run_measured(
        [
            "deid",
            str(in_dir),
            str(out),
            "--key-file",
            str(_key(tmp_path)),
            "--jobs",
            "1",
        ]
    )
    assert run["rc"] == 1, run["err"]
    assert run["peak"] < PEAK_LIMIT, f"peak {run['peak'] / 2**20:.0f} MiB"
    text = (out / "manifest.jsonl").read_text()
    assert DecodeLimitError.code in text
    assert [json.loads(ln)["status"] for ln in text.splitlines()].count("ok") == 1
    assert crafted.tree_digest(in_dir) == before


def test_a_fifo_is_set_aside_unopened(tmp_path: Path, crafted: SimpleNamespace) -> None:
    in_dir = tmp_path / "in"
    crafted.write_native(
        in_dir / "fine.dcm", 8, 8, 16, np.arange(64, dtype="<u2").tobytes()
    )
    os.mkfifo(in_dir / "pipe.dcm")
    proc = _deid(str(in_dir), str(tmp_path / "out"), "--key-file", str(_key(tmp_path)))
    assert proc.returncode in (0, 1), proc.stderr  # it returned: the FIFO never blocked
    records = [
        json.loads(ln)
        for ln in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    ]
    assert [r["status"] for r in records].count("ok") == 1


def test_a_link_planted_in_out_dir_is_refused(
    tmp_path: Path, crafted: SimpleNamespace
) -> None:
    in_dir = tmp_path / "in"
    crafted.write_native(
        in_dir / "fine.dcm", 8, 8, 16, np.arange(64, dtype="<u2").tobytes()
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"keep me\n")
    before = crafted.tree_digest(outside)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.jsonl").symlink_to(outside / "secret.txt")
    proc = _deid(str(in_dir), str(out), "--key-file", str(_key(tmp_path)))
    assert proc.returncode == 3, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(OutputLinkError.code), lines
    assert crafted.tree_digest(outside) == before
