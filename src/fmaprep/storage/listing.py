"""Listing the inputs: the audio files under INPUT, with acquisition's metadata attached.

Local inputs are walked here; remote ones are listed once by the driver with the store client
(:mod:`fmaprep.storage.stores`), never through the JVM. The hidden-name rule (names starting
with ``.`` or ``_`` are skipped) applies below INPUT only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
from collections.abc import Callable, Iterable

from fmaprep.model import InputFile, track_id_for
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.stores import Store
from fmaprep.storage.uris import StorageError, glob_cut, is_hidden, is_local, local_path
from fmaprep.tracks import TRACKS_FILE, track_metadata

log = logging.getLogger(__name__)


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
    if pattern is not None and _exists(store, input_uri):
        root, pattern = input_uri, None  # a name that exists is that name, never a pattern
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
            text = store.read_bytes(tracks).decode("utf-8", "surrogateescape")
            table = track_metadata(text, tracks)
        except FileNotFoundError:
            table = {}
        files = [dataclasses.replace(f, metadata=table.get(f.track_id, {})) for f in files]
    return files


def _exists(store: Store, uri: str) -> bool:
    """True when ``uri`` names a file, or a directory holding one."""
    top = uri.rstrip("/")
    for entry in store.list_files(top):
        if entry.uri == top or entry.uri.startswith(top + "/"):
            return True
    return False


def _split_glob(uri: str) -> tuple[str, str | None]:
    """(the fixed directory before the first glob character, the whole pattern or None)."""
    scheme, _, rest = uri.partition("://")
    cut = glob_cut(rest)
    return (uri, None) if cut is None else (f"{scheme}://{cut}", uri)


def _has_audio_extension(name: str, extensions: Iterable[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(ext) for ext in extensions)


def list_local_inputs(uri: str, extensions: tuple[str, ...]) -> list[InputFile]:
    """Audio files under a local directory (recursively), matching a glob, or one file.

    A path that exists is that path, whatever characters it holds (``take[1].mp3``); only a
    path that does not exist is a pattern, matched from the longest leading directory that
    does (docs/inputs.md). Links to directories below INPUT are not followed (so no loop is
    walked), and a file reached through links under several names is listed once, under the
    first; hard links are separate names of their own (the benchmarks' corpora use them).
    A dangling link, or a file gone before it is looked at, is listed with size 0: its task
    reports it as one ``read_failed`` line.
    """
    path = local_path(uri)
    if os.path.isdir(path):
        candidates, root = _walk(path), path
    elif os.path.lexists(path):
        candidates, root = [path], os.path.dirname(path)
    elif glob_cut(path) is not None:
        root = glob_root(path)
        match = _glob_regex(path[len(root.rstrip(os.sep)) :], root.rstrip(os.sep))
        candidates = [p for p in _walk(root) if match(p)] if os.path.isdir(root) else []
    else:
        raise StorageError(f"input {path} does not exist")
    metadata = _local_track_metadata(os.path.join(root, TRACKS_FILE))
    files = []
    seen: set[str] = set()
    for p in candidates:
        if not _has_audio_extension(p, extensions):
            continue
        try:
            st = os.stat(p)
        except OSError:  # a dangling link, a loop of links, a file deleted since the walk
            files.append(InputFile(p, 0, metadata.get(track_id_for(p), {})))
            continue
        real = os.path.realpath(p)
        if real in seen:
            log.info("%s links to a file already listed: skipped", p)
            continue
        seen.add(real)
        files.append(InputFile(p, st.st_size, metadata.get(track_id_for(p), {}), st.st_mtime))
    return files


def _walk(root: str) -> list[str]:
    """Every non-hidden name below ``root`` that is not a directory (files, links to files,
    dangling links), sorted; links to directories are not entered (no loop is ever walked)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # followlinks=False
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        found += [os.path.join(dirpath, f) for f in filenames if not is_hidden(f)]
    return sorted(found)


def glob_root(pattern: str) -> str:
    """The directory a pattern is matched from: the longest leading part of it that exists
    as a directory, taken literally whatever it holds (``album [2024]/*.mp3``)."""
    parts = pattern.split(os.sep)
    for i in range(len(parts) - 1, 0, -1):
        head = os.sep.join(parts[:i]) or os.sep
        if os.path.isdir(head):
            return head
    return os.sep if pattern.startswith(os.sep) else os.curdir


def _glob_regex(pattern: str, root: str) -> Callable[[str], bool]:
    """A matcher for paths ``root + pattern``: ``*`` and ``?`` within one name, ``**/`` any
    number of directories, ``[...]`` a character class (``[!...]`` negated); the root literal."""
    out, i = [re.escape(root)], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        close = pattern.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif close > 0:
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
            i = close
        else:
            out.append(re.escape(c))
        i += 1
    regex = re.compile("".join(out) + r"\Z", re.DOTALL)
    return lambda path: regex.match(path) is not None


def _local_track_metadata(path: str) -> dict[str, dict[str, str]]:
    if not os.path.isfile(path):
        return {}
    # (a line that is not UTF-8 is one warning: surrogateescape keeps it to that line)
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return track_metadata(f, path)
