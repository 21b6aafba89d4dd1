"""sha1 of stored bytes: a local file or any binary stream (acquisition, --dedupe)."""

from __future__ import annotations

import hashlib
import os
from typing import IO

BLOCK = 1 << 20


def stream_sha1(stream: IO[bytes], block: int = BLOCK) -> str:
    digest = hashlib.sha1()
    while chunk := stream.read(block):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha1(path: str | os.PathLike[str], block: int = BLOCK) -> str:
    with open(path, "rb") as f:
        return stream_sha1(f, block)
