"""Hardware sizing from measured throughput: images per hour and cores for a target rate.

:func:`sizing_section` builds the ``sizing`` section of the benchmark document from the
end-to-end suite's figures.

An "image" is one DICOM image (one slice of a series): the unit a PACS export counts. The
number of cores needed for a target rate is an **extrapolation**: it assumes the per-core
rate measured with ``--jobs 1`` and the parallel efficiency measured on this machine's cores
both hold on a machine of the same kind with more cores (in practice efficiency falls with
more cores once memory bandwidth or storage saturates, so treat the figure as a lower bound).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clisonix_cli.errors import UsageError

_MULTIPLIER = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_PERIODS = {
    ("s", "sec", "secs", "second", "seconds"): 1.0,
    ("min", "mins", "minute", "minutes"): 60.0,
    ("h", "hr", "hrs", "hour", "hours"): 3600.0,
    ("d", "day", "days"): 86400.0,
}
_PER_SECONDS = {name: secs for names, secs in _PERIODS.items() for name in names}
_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kKMG]?)\s*/\s*([a-z]+)\s*$")


def parse_rate(text: str) -> float:
    """Parse a target rate such as ``10M/h``, ``50k/h``, ``1000/s`` into images per second.

    Parameters
    ----------
    text : str
        A number, an optional multiplier (``k``/``K`` = 1e3, ``M`` = 1e6, ``G`` = 1e9), a
        slash and a period (``s``, ``min``, ``h``, ``d``; long forms ``second``, ``minute``,
        ``hour``, ``day`` also work).

    Returns
    -------
    float
        Images per second, > 0.

    Raises
    ------
    UsageError
        When the text does not match the format or the rate is zero.
    """
    match = _RATE.match(text)
    if match is None or match.group(3) not in _PER_SECONDS:
        raise UsageError(
            f"--target '{text}' is not a rate: expected NUMBER[k|M|G]/PERIOD with PERIOD "
            "one of s, min, h, d - e.g. 10M/h, 50k/h or 1000/s"
        )
    seconds = _PER_SECONDS[match.group(3)]
    value = float(match.group(1)) * _MULTIPLIER[match.group(2)] / seconds
    if value <= 0:
        raise UsageError(f"--target '{text}' is zero: give a rate > 0, e.g. 50k/h")
    return value


@dataclass(frozen=True)
class Sizing:
    """Cores needed for a target rate, extrapolated from one machine's measurements."""

    target_per_s: float
    per_core_per_s: float
    efficiency: float
    cores_needed: int
    machines_needed: int
    cores_per_machine: int

    def as_dict(self) -> dict[str, Any]:
        """The figures as stored in the benchmark document."""
        return {
            "target_images_per_s": self.target_per_s,
            "target_images_per_hour": self.target_per_s * 3600.0,
            "per_core_images_per_s": self.per_core_per_s,
            "parallel_efficiency_used": self.efficiency,
            "cores_needed": self.cores_needed,
            "machines_needed": self.machines_needed,
            "cores_per_machine": self.cores_per_machine,
            "extrapolation": True,
        }


def images_per_hour(images_per_s: float) -> float:
    """Images per hour at a rate in images per second."""
    if not images_per_s > 0:
        raise ValueError(f"rate must be > 0, got {images_per_s}")
    return images_per_s * 3600.0


def parallel_efficiency(rate_1: float, rate_n: float, n: int) -> float:
    """Speed-up on ``n`` workers divided by ``n``: ``rate_n / (n * rate_1)``.

    1.0 means perfect scaling; values slightly above 1 are measurement noise (or cache
    effects) and are reported as measured.
    """
    if n < 1 or not rate_1 > 0 or not rate_n > 0:
        raise ValueError(f"need n >= 1 and positive rates, got {n}, {rate_1}, {rate_n}")
    return rate_n / (n * rate_1)


def cores_for_target(
    target_per_s: float,
    per_core_per_s: float,
    efficiency: float,
    *,
    cores_per_machine: int,
) -> Sizing:
    """Cores (and machines like this one) needed to sustain ``target_per_s``.

    ``cores = ceil(target / (per_core_rate * efficiency))`` with the efficiency capped at 1
    (a measured value above 1 is noise and would under-size).

    Parameters
    ----------
    target_per_s : float
        Target images per second.
    per_core_per_s : float
        Images per second of one worker (``--jobs 1``).
    efficiency : float
        Parallel efficiency measured with all cores of this machine.
    cores_per_machine : int
        Cores of this machine, to state the answer in machines too.
    """
    if not (target_per_s > 0 and per_core_per_s > 0 and efficiency > 0):
        raise ValueError(
            f"target, per-core rate and efficiency must be > 0, got "
            f"{target_per_s}, {per_core_per_s}, {efficiency}"
        )
    if cores_per_machine < 1:
        raise ValueError(f"cores_per_machine must be >= 1, got {cores_per_machine}")
    eff = min(efficiency, 1.0)
    # tiny epsilon: 2.0000000000000004 cores is 2 cores, not 3
    cores = max(1, math.ceil(target_per_s / (per_core_per_s * eff) - 1e-9))
    return Sizing(
        target_per_s=target_per_s,
        per_core_per_s=per_core_per_s,
        efficiency=eff,
        cores_needed=cores,
        machines_needed=math.ceil(cores / cores_per_machine),
        cores_per_machine=cores_per_machine,
    )


def sizing_section(
    e2e: Mapping[str, Any], *, target: str | None, cores: int
) -> dict[str, Any]:
    """Images per hour at the measured rates, and cores for ``--target`` (extrapolated)."""
    jobs = e2e["jobs"]
    one = float(jobs["1"]["slices_per_s"])
    top_jobs = max(int(j) for j in jobs)
    top = float(jobs[str(top_jobs)]["slices_per_s"])
    eff = float(e2e.get("parallel_efficiency", 1.0))
    out: dict[str, Any] = {
        "images_per_hour_1": images_per_hour(one),
        "images_per_hour_all": images_per_hour(top),
        "jobs_all": top_jobs,
    }
    if target is not None:
        sized = cores_for_target(parse_rate(target), one, eff, cores_per_machine=cores)
        out["target"] = {"text": target, **sized.as_dict()}
    return out
