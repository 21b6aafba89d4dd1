"""Listing the inputs: the audio files under INPUT, with acquisition's metadata attached.

Local inputs are walked here; remote ones are listed once by the driver's Hadoop FileSystem. The
hidden-name rule (names starting with ``.`` or ``_`` are skipped) applies below INPUT only.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterable
from typing import Any

from fmaprep.model import InputFile, track_id_for
from fmaprep.storage.hadoop_fs import HadoopFS
from fmaprep.storage.uris import StorageError, is_hidden, is_local, local_path
from fmaprep.tracks import TRACKS_FILE, track_metadata

_GLOB_CHARS = set("*?[")


def list_inputs(spark_context: Any, input_uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    """Every audio file under ``input_uri`` (a directory, a glob or one file), sorted by name."""
    if is_local(input_uri):
        return list_local_inputs(input_uri, extensions)
    fs = HadoopFS(spark_context, input_uri)
    files = list_remote_inputs(fs, input_uri, extensions)
    tracks = f"{input_uri.rstrip('/')}/{TRACKS_FILE}"
    if files and fs.exists(tracks):  # acquisition's metadata, next to the audio as locally
        table = track_metadata(fs.read_bytes(tracks).decode("utf-8"))
        files = [dataclasses.replace(f, metadata=table.get(f.track_id, {})) for f in files]
    return files


def _has_audio_extension(name: str, extensions: Iterable[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in extensions)


def list_local_inputs(uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    """Audio files under a local directory (recursively), matching a glob, or one file."""
    path = local_path(uri)
    if _GLOB_CHARS & set(path):
        candidates = sorted(p for p in glob.glob(path, recursive=True) if os.path.isfile(p))
        root = _glob_root(path)
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


def _glob_root(pattern: str) -> str:
    parts = pattern.split(os.sep)
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if _GLOB_CHARS & set(p))]]
    return os.sep.join(fixed) or os.sep


def _local_track_metadata(path: str) -> dict[str, dict[str, str]]:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return track_metadata(f)


def list_remote_inputs(fs: HadoopFS, uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    """Audio files under ``uri`` (recursively) or matching a glob, skipping hidden names."""
    found = fs.list_files(uri, is_glob=bool(_GLOB_CHARS & set(uri.split("://", 1)[-1])))
    files = []
    for source, size, mtime in sorted(found):
        rel = source[len(uri) :] if source.startswith(uri) else source
        if any(is_hidden(part) for part in rel.split("/") if part):
            continue
        if _has_audio_extension(source, extensions):
            files.append(InputFile(source, size, mtime=mtime))
    return files
