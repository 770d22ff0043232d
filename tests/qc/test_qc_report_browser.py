"""report.html in a real browser: headless Chromium (Debian package ``chromium``) loads it
from disk with networking off; no console message, every series row and strip plot in
the rendered DOM, sortable tables, a screenshot that is not blank."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from clisonix_cli.qc.measure import METRICS

from .conftest import run_qc, synth

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found (Debian package `chromium`; .ci/run installs it)",
)
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def _chromium(tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _console(stderr: str) -> list[str]:
    """Console messages and uncaught errors of the page (Chromium logs them as CONSOLE)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("report")
    kw = dict(patients=2, series=3, slices=10, rows=64, cols=64, modality="mixed")
    run_qc(synth(root / "base", seed=11, **kw), root / "qc-base")
    res = run_qc(synth(root / "in", seed=12, **kw), root / "qc",
                 baseline=root / "qc-base" / "qc.json")  # fmt: skip
    return root / "qc" / "report.html", res.doc


def test_report_loads_without_console_errors_and_shows_everything(
    report: tuple[Path, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    path, doc = report
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no fetches
    res = _chromium(tmp_path, path.as_uri(), "--dump-dom")
    assert _console(res.stderr) == []
    dom = res.stdout
    tasks = {s["task"] for s in doc["series"]}
    rows = set(re.findall(r'<tr class="series" data-task="([^"]+)"', dom))
    assert rows == tasks and len(tasks) == 6
    kinds = {s["kind"] for s in doc["series"]}
    plots = re.findall(r'<svg class="strip" data-metric="([^"]+)"', dom)
    assert sorted(plots) == sorted(m for k in kinds for m in METRICS[k])
    assert dom.count('class="pt"') == sum(
        1
        for s in doc["series"]
        for m in METRICS[s["kind"]]
        if s["metrics"].get(m) is not None
    )
    assert dom.count('<img class="thumb"') == 6
    assert dom.count('class="drift"') > 0  # drift tables against the baseline


def test_tables_sort_when_a_header_is_clicked(
    report: tuple[Path, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    path, _ = report
    click = (
        "<script>var t=document.querySelector('table.sortable');"
        "var th=t.querySelectorAll('thead th')[1];th.click();th.click();"
        "document.body.setAttribute('data-order',Array.prototype.map.call("
        "t.tBodies[0].rows,function(r){return r.cells[1].textContent;}).join(','));"
        "</script></body>"
    )
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</body>", click))
    res = _chromium(tmp_path, probe.as_uri(), "--dump-dom")
    assert _console(res.stderr) == []
    order = re.search(r'data-order="([^"]*)"', res.stdout)
    assert order is not None
    ids = order.group(1).split(",")
    assert (
        ids == sorted(ids, reverse=True) and len(ids) >= 2
    )  # second click: descending


def test_screenshot_is_not_blank(
    report: tuple[Path, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    import imageio.v3 as iio

    path, _ = report
    shot = tmp_path / "shot.png"
    res = _chromium(
        tmp_path, path.as_uri(), f"--screenshot={shot}", "--window-size=1280,1600"
    )
    assert _console(res.stderr) == []
    img = np.asarray(iio.imread(shot))
    assert img.shape[:2] == (1600, 1280)
    grey = img[..., :3].mean(axis=-1)
    assert (grey < 200).mean() > 0.02 and grey.std() > 20  # text, thumbnails, plots


def test_console_check_sees_errors(
    report: tuple[Path, dict],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    """The console check is not blind: a page with an uncaught error and a console
    message (the report with a broken script appended) is caught."""
    path, _ = report
    probe = tmp_path / "broken.html"
    probe.write_text(
        path.read_text().replace(
            "</body>", "<script>console.error('qc-probe');notDefined();</script></body>"
        )
    )
    res = _chromium(tmp_path, probe.as_uri(), "--dump-dom")
    lines = _console(res.stderr)
    assert any("qc-probe" in x for x in lines), res.stderr[-2000:]
    assert any("notDefined" in x for x in lines), res.stderr[-2000:]
