"""``fmaprep export --to webdataset``: an OUTPUT as tar shards for streaming loaders (webdataset,
Mosaic-style pipelines), written straight to local disk, ``s3://`` or ``hdfs://``.

Layout of DEST::

    shard-<gen>-000000.tar   one sample per track: <key>.codes.npy (the uint8 codes, numpy's
    shard-<gen>-000001.tar   .npy format) and <key>.json (track_id and the record's metadata)
    ...
    shards.json              the shard list, published last: the commit

``key`` is ``<n>-<track_id>`` (n: the track's number in the export, 7 digits; characters other
than letters, digits, ``_`` and ``-`` of the track id become ``_``, since webdataset splits a
name at its first dot). A shard is closed once it holds ``shard_bytes`` or more (a track is never
split), so shards are about that size. Every shard is written under its final name by the
store's atomic writer (nothing visible until complete); ``shards.json`` names them and is
written last, so a reader that starts from it sees a whole export. A new export into the same
DEST (``overwrite``) writes a new generation, publishes its list, then deletes exactly the
shards the previous list named.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import tarfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.stores import Store, Writer
from fmaprep.train.export import json_value

log = logging.getLogger(__name__)

SHARD_LIST = "shards.json"
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SHARD_NAME = re.compile(r"shard-[0-9a-f]{12}-\d{6}\.tar")


@dataclass(frozen=True)
class WebDatasetResult:
    dest: str
    tracks: int
    samples: int
    shards: list[str]


def sample_key(n: int, track_id: str) -> str:
    return f"{n:07d}-{_UNSAFE.sub('_', track_id)}"


def _npy(codes: np.ndarray[Any, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(codes, dtype=np.uint8), allow_pickle=False)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


class _ShardWriter:
    """One tar shard streamed into a store writer (published on close)."""

    def __init__(self, store: Store, uri: str) -> None:
        self.uri = uri
        self._out: Writer = store.open_write(uri)
        # streaming mode ("w|"): the writer is only written to, never sought; closed in commit
        self._tar = tarfile.open(  # noqa: SIM115
            fileobj=cast(Any, self._out),
            mode="w|",
            format=tarfile.USTAR_FORMAT,
        )
        self.samples = 0

    def add(self, key: str, codes: np.ndarray[Any, Any], meta: dict[str, Any]) -> None:
        now = time.time()
        _add(self._tar, f"{key}.codes.npy", _npy(codes), now)
        _add(self._tar, f"{key}.json", json.dumps(meta, default=json_value).encode(), now)
        self.samples += 1

    @property
    def size(self) -> int:
        return self._out.size

    def commit(self) -> None:
        self._tar.close()  # writes the end-of-archive blocks into the writer
        self._out.commit()

    def abort(self) -> None:
        self._out.abort()


def read_shard_list(dest: str, settings: StoreSettings | None = None) -> dict[str, Any] | None:
    """DEST's committed shard list, or None when there is none."""
    settings = settings or StoreSettings.from_env()
    store = open_store(dest, settings)
    try:
        doc: dict[str, Any] = json.loads(store.read_bytes(f"{dest.rstrip('/')}/{SHARD_LIST}"))
    except FileNotFoundError:
        return None
    return doc


def export_webdataset(
    output: str,
    dest: str,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    overwrite: bool = False,
    track_ids: Collection[str] | None = None,
    genres: Collection[str] | None = None,
    splits: Collection[str] | None = None,
    settings: StoreSettings | None = None,
) -> WebDatasetResult:
    """Write the records of ``output`` (``read_records`` order and filters) as tar shards of
    about ``shard_bytes`` each into ``dest`` (a path, ``s3://`` or ``hdfs://``)."""
    from fmaprep.formats.records import read_records

    if shard_bytes < 1:
        raise ValueError(f"shard size must be >= 1 byte, got {shard_bytes}")
    dest = dest.rstrip("/")
    settings = settings or StoreSettings.from_env()
    store = open_store(dest, settings)
    previous = read_shard_list(dest, settings)
    if previous is not None and not overwrite:
        raise FileExistsError(f"{dest} holds a webdataset export (use --overwrite to replace it)")
    generation = secrets.token_hex(6)
    shards: list[str] = []
    tracks = samples = 0
    current: _ShardWriter | None = None
    try:
        for record in read_records(
            output, track_ids=track_ids, genres=genres, splits=splits, settings=settings
        ):
            if current is None:
                name = f"shard-{generation}-{len(shards):06d}.tar"
                current = _ShardWriter(store, f"{dest}/{name}")
            codes = record.pop("codes")
            current.add(sample_key(tracks, str(record["track_id"])), codes, record)
            tracks += 1
            samples += int(codes.size)
            if current.size >= shard_bytes:
                current.commit()
                shards.append(current.uri.rsplit("/", 1)[1])
                current = None
        if current is not None:
            current.commit()
            shards.append(current.uri.rsplit("/", 1)[1])
            current = None
    except BaseException:
        if current is not None:
            current.abort()
        store.delete(f"{dest}/{name}" for name in shards)  # this run's shards, never listed
        raise
    doc = {"fmaprep_webdataset": 1, "generation": generation, "tracks": tracks,
           "samples": samples, "shards": shards}  # fmt: skip
    store.write_bytes(f"{dest}/{SHARD_LIST}", (json.dumps(doc, indent=1) + "\n").encode())
    if previous is not None:  # only names of our own shape that the old list held
        old = [
            n for n in previous.get("shards", []) if isinstance(n, str) and _SHARD_NAME.fullmatch(n)
        ]
        store.delete(f"{dest}/{n}" for n in old if n not in shards)
    log.info(
        "exported %d tracks (%d samples) in %d shards to %s", tracks, samples, len(shards), dest
    )
    return WebDatasetResult(dest, tracks, samples, shards)
