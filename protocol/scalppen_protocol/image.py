"""The signed firmware image an update carries over SMP (docs/updates.md).

One image is the firmware bundle's application slot, packed for upload::

    header   ImageHeader (the fixed part below)
    index    count x FileEntry: every file of the slot, manifest.json included
    data     the files' bytes, in index order

``signature`` is Ed25519, by the release key, over ``SIGN_PREFIX`` + SHA-256 of
the header's first ``SIGNED_HEADER_SIZE`` bytes and the index. The pen holds only
the public key (its board.json ``release_key``); it checks the signature once,
when the index has landed, and each file's SHA-256 as the file lands
(``firmware/pen/update.py``, whose struct format is pinned to these by a test).
"""

from __future__ import annotations

from typing import Final

from construct import Bytes, Const, Int8ul, Int16ul, Int32ul, PascalString, Struct

MAGIC: Final = b"SPIMG\x00"
FORMAT: Final = 1
SIGN_PREFIX: Final = b"scalppen/image\x00"

#: The header up to (not including) the key id and signature: what is signed.
SignedHeader = Struct(
    "magic" / Const(MAGIC),
    "format" / Const(FORMAT, Int8ul),
    "flags" / Int8ul,  # 0
    "major" / Int8ul,
    "minor" / Int8ul,
    "patch" / Int16ul,
    "count" / Int16ul,  # files in the index
    "index_len" / Int32ul,  # bytes of the index
    "total_len" / Int32ul,  # bytes of the whole image
)
SIGNED_HEADER_SIZE: Final = 22

ImageHeader = Struct(
    *SignedHeader.subcons,
    "key_id" / Bytes(8),  # the first 8 bytes of SHA-256(release public key)
    "signature" / Bytes(64),
)
HEADER_SIZE: Final = 94

FileEntry = Struct(
    "path" / PascalString(Int8ul, "utf8"),  # relative to the slot, e.g. "pen/core.mpy"
    "size" / Int32ul,
    "sha256" / Bytes(32),
)

#: Largest image the pen takes (its inactive slot's share of the flash).
MAX_IMAGE: Final = 1 << 20
MAX_FILES: Final = 96
