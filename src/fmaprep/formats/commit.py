"""The commit object: ``OUTPUT/_SUCCESS``, a small JSON file published last, that names exactly
what belongs to the output (README, "Commit protocol"; ``docs/commit.md``).

::

    {"fmaprep_commit": 1, "generation": "20261203T090316Z-1a2b3c", "format": "pickle",
     "parts": [{"name": "part-00000-<run>-a0", "bytes": 123, "records": 10,
                "exclude": ["s3://b/x/000002.mp3"]}, ...],
     "manifest": [{"name": "_manifest/part-00000-<run>-a0.jsonl", "bytes": 456}, ...],
     "stats": {...}}

Names are relative to OUTPUT. ``exclude`` lists the sources whose records in that part were
superseded (a resume reprocessed a changed input): readers skip them. Spark's own ``_SUCCESS``
is empty; a reader seeing one reads every ``part-*`` file, as Spark would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SUCCESS_FILE = "_SUCCESS"
MANIFEST_DIR = "_manifest"
COMMIT_VERSION = 1


@dataclass(frozen=True)
class Part:
    name: str
    bytes: int
    records: int
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Commit:
    generation: str
    format: str
    parts: tuple[Part, ...]
    manifest: tuple[tuple[str, int], ...]  # (name, bytes) of each manifest shard
    stats: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "fmaprep_commit": COMMIT_VERSION,
            "generation": self.generation,
            "format": self.format,
            "parts": [
                {"name": p.name, "bytes": p.bytes, "records": p.records, "exclude": list(p.exclude)}
                for p in self.parts
            ],
            "manifest": [{"name": n, "bytes": b} for n, b in self.manifest],
            "stats": self.stats,
        }
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    def names(self) -> set[str]:
        """Every file (relative to OUTPUT) this commit keeps."""
        return {p.name for p in self.parts} | {n for n, _ in self.manifest}


def parse_commit(data: bytes, where: str = SUCCESS_FILE) -> Commit | None:
    """The commit in a ``_SUCCESS`` file's bytes; None for Spark's empty marker."""
    if not data.strip():
        return None
    try:
        doc = json.loads(data)
        if doc.get("fmaprep_commit") != COMMIT_VERSION:
            raise ValueError(f"commit version {doc.get('fmaprep_commit')!r}, expected 1")
        parts = tuple(
            Part(str(p["name"]), int(p["bytes"]), int(p["records"]), tuple(p.get("exclude", ())))
            for p in doc["parts"]
        )
        manifest = tuple((str(m["name"]), int(m["bytes"])) for m in doc["manifest"])
        for name in [p.name for p in parts] + [n for n, _ in manifest]:
            check_relative_name(name)
        return Commit(str(doc["generation"]), str(doc["format"]), parts, manifest, doc["stats"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: not a fmaprep commit: {exc}") from exc


def check_relative_name(name: str) -> str:
    """A name inside OUTPUT, as a commit may hold it: never absolute, never climbing out."""
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
        raise ValueError(f"unsafe name {name!r} in a commit")
    return name
