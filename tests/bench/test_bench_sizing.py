"""Sizing math: rate parsing, images per hour, parallel efficiency, cores for a target."""

from __future__ import annotations

import pytest

from clisonix_cli.bench.sizing import (
    cores_for_target,
    images_per_hour,
    parallel_efficiency,
    parse_rate,
)
from clisonix_cli.bench.workload import parse_size
from clisonix_cli.errors import UsageError


@pytest.mark.parametrize(
    ("text", "per_s"),
    [
        ("1000/s", 1000.0),
        ("10M/h", 1e7 / 3600),
        ("50k/h", 5e4 / 3600),
        ("50K/hour", 5e4 / 3600),
        ("3600/h", 1.0),
        ("60/min", 1.0),
        ("86400/d", 1.0),
        ("1.5G/day", 1.5e9 / 86400),
        (" 2.5 k / s ", 2500.0),
        (".5/s", 0.5),
    ],
)
def test_parse_rate(text: str, per_s: float) -> None:
    assert parse_rate(text) == pytest.approx(per_s)


@pytest.mark.parametrize(
    "text", ["", "10", "10M", "10x/h", "fast", "10M/week", "-5/s", "0/s", "1e3/s"]
)
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_images_per_hour() -> None:
    assert images_per_hour(2.0) == 7200.0
    with pytest.raises(ValueError):
        images_per_hour(0.0)


def test_parallel_efficiency() -> None:
    assert parallel_efficiency(100.0, 200.0, 2) == pytest.approx(1.0)
    assert parallel_efficiency(100.0, 150.0, 2) == pytest.approx(0.75)
    assert parallel_efficiency(100.0, 100.0, 1) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        parallel_efficiency(0.0, 1.0, 2)


def test_cores_for_target() -> None:
    # 10M images/h = 2777.8/s; 100/s per core at 80% efficiency -> 80/s per core -> 35 cores
    s = cores_for_target(1e7 / 3600, 100.0, 0.8, cores_per_machine=16)
    assert s.cores_needed == 35
    assert s.machines_needed == 3
    d = s.as_dict()
    assert d["extrapolation"] is True
    assert d["target_images_per_hour"] == pytest.approx(1e7)


def test_cores_for_target_exact_and_capped() -> None:
    assert cores_for_target(200.0, 100.0, 1.0, cores_per_machine=2).cores_needed == 2
    # efficiency above 1 is noise: capped, so it never under-sizes
    s = cores_for_target(200.0, 100.0, 1.3, cores_per_machine=2)
    assert s.cores_needed == 2 and s.efficiency == 1.0
    assert cores_for_target(1.0, 100.0, 0.5, cores_per_machine=2).cores_needed == 1
    with pytest.raises(ValueError):
        cores_for_target(1.0, 0.0, 0.5, cores_per_machine=2)


@pytest.mark.parametrize(
    ("text", "quick", "expected"),
    [
        (None, False, (64, "medium")),
        (None, True, (4, "quick")),
        ("small", False, (16, "small")),
        ("LARGE", True, (256, "large")),
        ("7", False, (7, "custom")),
    ],
)
def test_parse_size(text: str | None, quick: bool, expected: tuple[int, str]) -> None:
    assert parse_size(text, quick=quick) == expected


@pytest.mark.parametrize("text", ["0", "-3", "huge", "1.5"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--size"):
        parse_size(text, quick=False)
