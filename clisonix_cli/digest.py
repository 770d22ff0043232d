"""Content digests of the manifest: BLAKE3, named in every value (``"blake3:<hex>"``).

Every input byte of a conversion and every output byte is hashed so that ``--resume`` and
``clisonix verify`` can tell an intact output from a damaged one. sha256 cost about half of
a pure conversion's user CPU time (1.5 GB/s on this machine's SHA extensions, 2 GiB hashed
for 1 GiB converted); BLAKE3, as cryptographic, runs at 3.2-3.3 GB/s on one core (AVX2,
measured, ``max_threads=1``: the task array owns the cores).

A digest value names its algorithm, as OCI content digests do (``algorithm:encoded``):
``"blake3:9f86..."``. A bare 64-digit hex value is sha256, which manifests written before
the switch hold under their ``sha256``/``inputs_sha256`` keys: :func:`parse` reads both, so
old output folders stay verifiable and resumable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

from clisonix_cli.regular import open_regular

__all__ = [
    "ALGORITHM",
    "ALGORITHMS",
    "Hasher",
    "file_digest",
    "finish",
    "hasher",
    "matches",
    "parse",
]

#: The algorithm of every digest this version writes.
ALGORITHM = "blake3"
#: Algorithms a recorded digest may name (sha256: manifests of earlier versions).
ALGORITHMS = ("blake3", "sha256")

_CHUNK = 1 << 20


class Hasher(Protocol):
    """What the readers and writers feed: a ``hashlib``-like object."""

    @property
    def name(self) -> str:
        """The algorithm's name (``blake3``, ``sha256``)."""

    def update(self, data: Any, /) -> Any:
        """Add bytes (any C-contiguous buffer)."""

    def hexdigest(self) -> str:
        """The digest so far, as lowercase hex."""


def hasher(algorithm: str = ALGORITHM) -> Hasher:
    """A fresh hash object of ``algorithm`` (BLAKE3 on one thread by default).

    Raises
    ------
    ValueError
        An algorithm not in :data:`ALGORITHMS`.
    """
    if algorithm == "blake3":
        from blake3 import blake3

        h: Hasher = blake3(max_threads=1)
        return h
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown digest algorithm {algorithm!r}; known: {ALGORITHMS}")


def finish(h: Hasher) -> str:
    """The labelled digest of a hash object: ``"<algorithm>:<hex>"``."""
    return f"{h.name}:{h.hexdigest()}"


def parse(value: str) -> tuple[str, str]:
    """``(algorithm, hex)`` of a recorded digest; a bare hex value is sha256.

    Raises
    ------
    ValueError
        Not a string, or an algorithm this version does not know.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a digest: {value!r}")
    algorithm, sep, hexdigest = value.partition(":")
    if not sep:
        return "sha256", value
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown digest algorithm {algorithm!r} in {value[:80]!r}")
    return algorithm, hexdigest


def file_digest(path: Path, algorithm: str = ALGORITHM) -> str:
    """The labelled digest of a file's bytes (read 1 MiB at a time).

    Raises
    ------
    NotRegularFileError
        Not a regular file (a FIFO is never opened: no read can hang).
    OSError
        The file cannot be read.
    """
    h = hasher(algorithm)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open_regular(path, raw=True) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return finish(h)


def matches(path: Path, recorded: Any) -> bool:
    """True when the file's bytes have the ``recorded`` digest (in its own algorithm).

    A value that is not a digest, or names an unknown algorithm, never matches.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    try:
        algorithm, hexdigest = parse(recorded)
    except ValueError:
        return False
    return file_digest(path, algorithm) == f"{algorithm}:{hexdigest}"
