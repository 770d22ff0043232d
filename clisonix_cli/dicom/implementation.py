"""The fixed implementation identity of every DICOM file clisonix writes (PS3.10 7.1).

Fixed so that output bytes do not follow pydicom's version; kept apart from the writers so
that reading it imports nothing heavy.
"""

from __future__ import annotations

import hashlib

IMPLEMENTATION_CLASS_UID = "2.25." + str(
    int.from_bytes(hashlib.sha256(b"clisonix").digest()[:16], "big")
)
IMPLEMENTATION_VERSION_NAME = "CLISONIX"
