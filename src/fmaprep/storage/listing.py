"""Listing the inputs: the audio files under INPUT, with acquisition's metadata attached.

Local inputs are walked here; remote ones are listed once by the driver with the store client
(:mod:`fmaprep.storage.stores`), never through the JVM. The hidden-name rule (names starting
with ``.`` or ``_`` are skipped) applies below INPUT only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import os
from collections.abc import Iterable

from fmaprep.model import InputFile, track_id_for
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.uris import StorageError, is_hidden, is_local, local_path
from fmaprep.tracks import TRACKS_FILE, track_metadata

_GLOB_CHARS = set("*?[")


def list_inputs(
    input_uri: str, extensions: tuple[str, ...], settings: StoreSettings
) -> list[InputFile]:
    """Every audio file under ``input_uri`` (a directory, a glob or one file), sorted by name,
    with acquisition's metadata. Remote inputs take one listing (paginated on S3, one request
    per directory on HDFS) and one read of ``_tracks.jsonl``: nothing per file."""
    if is_local(input_uri):
        return list_local_inputs(input_uri, extensions)
    input_uri = settings.full_uri(input_uri)  # hdfs:///x lists as hdfs://nn:8020/x
    store = open_store(input_uri, settings)
    root, pattern = _split_glob(input_uri)
    prefix = root.rstrip("/") + "/"
    files = []
    for entry in sorted(store.list_files(root), key=lambda e: e.uri):
        rel = entry.uri[len(prefix) :] if entry.uri.startswith(prefix) else ""
        if entry.uri != root and not rel:
            continue
        if pattern is not None and not fnmatch.fnmatchcase(entry.uri, pattern):
            continue
        if any(is_hidden(part) for part in rel.split("/") if part):
            continue  # the hidden-name rule: names below INPUT only
        if _has_audio_extension(entry.uri, extensions):
            files.append(InputFile(entry.uri, entry.size, mtime=entry.mtime, etag=entry.etag))
    tracks = prefix + TRACKS_FILE
    if files:
        try:
            table = track_metadata(store.read_bytes(tracks).decode("utf-8"))
        except FileNotFoundError:
            table = {}
        files = [dataclasses.replace(f, metadata=table.get(f.track_id, {})) for f in files]
    return files


def _split_glob(uri: str) -> tuple[str, str | None]:
    """(the fixed directory before the first glob character, the whole pattern or None)."""
    scheme, _, rest = uri.partition("://")
    if not _GLOB_CHARS & set(rest):
        return uri, None
    first = min(rest.index(c) for c in _GLOB_CHARS if c in rest)
    return f"{scheme}://{rest[:first].rsplit('/', 1)[0]}", uri


def _has_audio_extension(name: str, extensions: Iterable[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in extensions)


def list_local_inputs(uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    """Audio files under a local directory (recursively), matching a glob, or one file."""
    path = local_path(uri)
    if _GLOB_CHARS & set(path):
        candidates = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        root = glob_root(path)
    elif os.path.isdir(path):
        candidates = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
            candidates.extend(
                os.path.join(dirpath, f) for f in sorted(filenames) if not is_hidden(f)
            )
        root = path
    elif os.path.isfile(path):
        candidates, root = [path], os.path.dirname(path)
    else:
        raise StorageError(f"input {path} does not exist")
    metadata = _local_track_metadata(os.path.join(root, TRACKS_FILE))
    files = []
    for p in candidates:
        if not _has_audio_extension(p, extensions):
            continue
        st = os.stat(p)
        files.append(InputFile(p, st.st_size, metadata.get(track_id_for(p), {}), st.st_mtime))
    return files


def glob_root(pattern: str) -> str:
    """The directory a glob starts from (the part before its first wildcard)."""
    parts = pattern.split(os.sep)
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS & set(p))]]
    return os.sep.join(fixed) or os.sep


def _local_track_metadata(path: str) -> dict[str, dict[str, str]]:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return track_metadata(f)
