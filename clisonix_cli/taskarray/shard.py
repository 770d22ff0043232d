"""Shard membership: which part of ``--shard I/N`` a study belongs to.

A study never splits across shards, and adding studies never moves existing ones: the shard
is a pure function of the StudyInstanceUID (sha256, never Python's per-process ``hash()``).
"""

from __future__ import annotations

import hashlib


def shard_of(study_uid: str, count: int) -> int:
    """The 0-based shard of a study among ``count`` shards.

    Parameters
    ----------
    study_uid : str
        (0020,000D) Study Instance UID.
    count : int
        Number of shards, >= 1.

    Returns
    -------
    int
        ``int(sha256(study_uid)[:16], 16) % count``.
    """
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    digest = hashlib.sha256(study_uid.encode("utf-8")).hexdigest()
    return int(digest[:16], 16) % count
