"""The de-identification key and the keyed mapping of identifiers (no tables, no state).

Every new identifier is a keyed hash (HMAC-SHA256) of the original, so that shards, workers
and later runs with the same key agree without sharing anything, and another key gives
unrelated identifiers:

- a UID becomes ``2.25.<integer of the first 128 bits of HMAC(key, "uid|" + uid)>``
  (PS3.5 B.2: a UUID-sized integer under the 2.25 root, at most 44 characters);
- a patient (the original PatientID, or the study when the ID is empty) gets one pseudonym,
  used as both PatientID and PatientName, and one date offset: every date of that patient
  moves back by the same 365 to 3,650 days, so intervals between a patient's studies are
  kept and a shifted date never lands inside the year it came from;
- an input's relative path becomes ``f<16 hex digits>`` (manifest, messages).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import os
import stat
from functools import lru_cache
from pathlib import Path

from clisonix_cli.errors import DeidKeyError

#: Shortest key accepted, in bytes (after surrounding white space is stripped).
MIN_KEY_BYTES = 32
#: Dates move back by MIN_SHIFT_DAYS .. MAX_SHIFT_DAYS - 1 days.
MIN_SHIFT_DAYS = 365
MAX_SHIFT_DAYS = 3650
KEY_ENV = "CLISONIX_DEID_KEY_FILE"


class DeidKey:
    """Key bytes that never show in a ``repr``, a log or a traceback's locals."""

    __slots__ = ("_fingerprint", "_secret")

    def __init__(self, secret: bytes) -> None:
        self._secret = bytes(secret)
        self._fingerprint = self.digest("fingerprint", b"clisonix").hex()[:16]

    def __repr__(self) -> str:
        return f"DeidKey(fingerprint={self.fingerprint})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeidKey) and hmac.compare_digest(
            self._secret, other._secret
        )

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self) -> tuple[type[DeidKey], tuple[bytes]]:
        return (DeidKey, (self._secret,))  # workers receive it with the task context

    def digest(self, label: str, value: str | bytes) -> bytes:
        """HMAC-SHA256 of ``label|value`` (the label keeps the uses apart)."""
        data = value if isinstance(value, bytes) else value.encode("utf-8")
        return hmac.new(self._secret, label.encode() + b"|" + data, "sha256").digest()

    @property
    def fingerprint(self) -> str:
        """16 hex digits naming the key (safe to record: it reveals nothing of it)."""
        return self._fingerprint


def read_key(path: Path) -> DeidKey:
    """Read and check a key file.

    Parameters
    ----------
    path : Path
        A file of at least :data:`MIN_KEY_BYTES` bytes (surrounding white space is
        ignored) that other users cannot read.

    Returns
    -------
    DeidKey

    Raises
    ------
    DeidKeyError
        Missing, unreadable, empty, world-readable or too short (exit 2).
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise DeidKeyError(
            f"key file {path}: cannot be read ({exc.strerror or exc}); give an existing "
            "file with --key-file, or make one with `clisonix deid --new-key FILE`"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise DeidKeyError(f"key file {path}: is not a regular file")
    if st.st_mode & stat.S_IROTH:
        raise DeidKeyError(
            f"key file {path}: other users can read it (mode {stat.S_IMODE(st.st_mode):o}"
            f"); whoever holds the key can re-identify the data - run chmod 600 {path}"
        )
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise DeidKeyError(
            f"key file {path}: cannot be read ({exc.strerror or exc})"
        ) from None
    if not secret:
        raise DeidKeyError(
            f"key file {path}: is empty; make a key with `clisonix deid --new-key FILE`"
        )
    if len(secret) < MIN_KEY_BYTES:
        raise DeidKeyError(
            f"key file {path}: holds {len(secret)} bytes, expected at least "
            f"{MIN_KEY_BYTES}; make a key with `clisonix deid --new-key FILE`"
        )
    return DeidKey(secret)


def write_new_key(path: Path) -> DeidKey:
    """Write a new random key (64 hex digits) to a new file readable by its owner only.

    Raises
    ------
    DeidKeyError
        The file exists (a key is never overwritten) or cannot be created.
    """
    text = os.urandom(32).hex() + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DeidKeyError(
            f"--new-key {path}: the file exists; a key is never overwritten (data "
            "de-identified with it could not be linked any more) - choose a new name"
        ) from None
    except OSError as exc:
        raise DeidKeyError(
            f"--new-key {path}: cannot be created ({exc.strerror or exc})"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # whatever the umask
    return DeidKey(text.strip().encode())


class Mapper:
    """The keyed functions of one key: new UIDs, pseudonyms, date offsets, file tokens.

    Parameters
    ----------
    key : DeidKey
    """

    def __init__(self, key: DeidKey) -> None:
        self.key = key
        self.uid = lru_cache(maxsize=4096)(self._uid)  # studies, series, frames of ref.
        self.offset_days = lru_cache(maxsize=4096)(self._offset_days)
        self.pseudonym = lru_cache(maxsize=4096)(self._pseudonym)

    def _uid(self, uid: str) -> str:
        value = int.from_bytes(self.key.digest("uid", uid)[:16], "big")
        return f"2.25.{value}"

    def _pseudonym(self, patient: str) -> str:
        """PatientID and PatientName of a patient: ``ANON`` + 12 base32 characters (60
        bits; 16 characters, so that it fits even a Short String)."""
        digest = self.key.digest("patient", patient)
        return "ANON" + base64.b32encode(digest).decode()[:12]

    def _offset_days(self, patient: str) -> int:
        span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS
        n = int.from_bytes(self.key.digest("date-offset", patient)[:8], "big")
        return -(MIN_SHIFT_DAYS + n % span)

    def file_token(self, rel: str) -> str:
        """An input's relative path as ``f`` + 16 hex digits."""
        return "f" + self.key.digest("file", rel).hex()[:16]

    def token(self, label: str, text: str, n: int = 16) -> str:
        """``n`` hex digits of the keyed hash of ``text`` under ``label``."""
        return self.key.digest(label, text).hex()[:n]

    def shift_date(self, value: str, patient: str) -> str | None:
        """A DA value (``YYYYMMDD``; ACR-NEMA ``YYYY.MM.DD`` accepted) moved by the
        patient's offset, or None when it is not a valid date."""
        text = value.strip()
        if len(text) == 10 and text[4] == "." and text[7] == ".":
            text = text[:4] + text[5:7] + text[8:]
        if len(text) != 8 or not text.isdigit():
            return None
        try:
            day = _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            moved = day + _dt.timedelta(days=self.offset_days(patient))
        except (ValueError, OverflowError):
            return None
        if moved.year < 1:
            return None
        return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"

    def shift_datetime(self, value: str, patient: str) -> str | None:
        """A DT value with its date part moved (time, fraction and UTC offset kept), or
        None when it holds less than a full date."""
        text = value.strip()
        moved = self.shift_date(text[:8], patient) if len(text) >= 8 else None
        return None if moved is None else moved + text[8:]


def patient_of(patient_id: str, study_uid: str) -> str:
    """The patient key of an object: its PatientID, or its study when the ID is empty."""
    pid = patient_id.strip()
    return pid if pid else "study:" + study_uid.strip()


def sha256_text(text: str) -> str:
    """Hex sha256 of a text (settings hashes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
