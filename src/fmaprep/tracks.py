"""``_tracks.jsonl``: one JSON line per track acquisition, appended as tracks finish.

Fields of every line (``None`` when unknown):

- ``id``: str, the track id zero-padded to 6 digits (``"000002"``), the audio file's stem
- ``path``: str, the audio file relative to the destination (``"000/000002.mp3"``)
- ``title``, ``artist``, ``album``, ``genre``: str | None (FMA metadata; ``genre`` is the genre
  handle scraped from, or ``track.genre_top`` from a dataset's ``tracks.csv``)
- ``urls``: dict of str (``page``, ``file``, ``playback``, ``download``, ``final``, ``archive``)
- ``bytes``: int | None, ``sha1``: str | None (hex) of the stored file
- ``fetched_at``: str, UTC ISO 8601 (``2024-05-01T12:00:00Z``)
- ``status``: ``"ok"`` or ``"error"``; ``error``: reason text when ``status == "error"``
- ``source``: ``"scrape"`` or the dataset archive's name (``"fma_small"``)
- dataset lines also carry ``split`` and ``subset`` (``set.split``, ``set.subset``)

A track may have several lines (a failed attempt, then a success): the last line for an id wins.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Iterable, Iterator
from typing import Any

from fmaprep.model import METADATA_KEYS, track_path
from fmaprep.redaction import redact_text, strip_signed_query

log = logging.getLogger(__name__)

TRACKS_FILE = "_tracks.jsonl"
# error reasons that another attempt will not fix: a rerun skips these tracks (unless asked)
PERMANENT_ERRORS = (
    "not_audio",
    "robots_disallowed",
    "host_not_allowed",
    "address_not_allowed",
    "too_large",
    "bad_url",
    "no_url",
    "http_403",
    "http_404",
    "http_410",
)
FIELDS = (
    "id",
    "path",
    "title",
    "artist",
    "album",
    "genre",
    "urls",
    "bytes",
    "sha1",
    "fetched_at",
    "status",
    "error",
    "source",
)


# (json.dumps already escapes the C0 controls; these three it writes raw)
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})
# characters of one _tracks.jsonl line (a 50 MB line is not a track line)
MAX_LINE_CHARS = 1 << 20
# characters of one metadata value (title, artist, ...): longer ones are cut, with a "…" last
METADATA_VALUE_MAX = 1024


def cap_value(text: str) -> str:
    """``text`` cut to :data:`METADATA_VALUE_MAX` characters (docs/inputs.md, "Limits")."""
    return text if len(text) <= METADATA_VALUE_MAX else text[: METADATA_VALUE_MAX - 1] + "\u2026"


def shown(value: object) -> str:
    """A metadata value as a terminal shows it: capped, then quoted with its control
    characters escaped (``repr``), so a title cannot move the cursor or recolour the screen."""
    return repr(cap_value(str(value)))


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_line(track_id: int, **fields: Any) -> dict[str, Any]:
    """A ``_tracks.jsonl`` line with every field of :data:`FIELDS` present."""
    line: dict[str, Any] = dict.fromkeys(FIELDS)
    line.update(id=f"{track_id:06d}", path=track_path(track_id), urls={}, fetched_at=utc_now())
    line.update(fields)
    return line


def dumps_line(line: dict[str, Any]) -> str:
    """One ``_tracks.jsonl`` line as written (UTF-8 text, newline-terminated). URLs lose their
    signing query parameters (a presigned download link is a credential)."""
    clean = dict(line)
    if isinstance(clean.get("urls"), dict):
        clean["urls"] = {
            k: strip_signed_query(v) if isinstance(v, str) else v for k, v in clean["urls"].items()
        }
    if isinstance(clean.get("error"), str):
        clean["error"] = redact_text(clean["error"])
    text = json.dumps(clean, ensure_ascii=False)
    # characters str.splitlines() (and some JSON-lines readers) take for line ends, escaped
    # as JSON allows: a title holding one must not split its line
    return text.translate(_LINE_BREAKS) + "\n"


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_line(raw: str) -> dict[str, Any]:
    """One ``_tracks.jsonl`` line as data; ValueError for anything else: not JSON (``NaN``,
    ``Infinity``, a number out of float range, nesting too deep), not UTF-8 (read with
    ``surrogateescape``), over :data:`MAX_LINE_CHARS`, not an object, no integer ``id``."""
    if len(raw) > MAX_LINE_CHARS:
        raise ValueError(f"over {MAX_LINE_CHARS} characters")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not UTF-8 (character {exc.start})") from exc
    try:
        line = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError as exc:
        raise ValueError("nested too deep") from exc
    if not isinstance(line, dict):
        raise ValueError(f"a JSON {type(line).__name__}, not an object")
    try:
        line["id"] = f"{int(line['id']):06d}"
    except (KeyError, TypeError, OverflowError) as exc:
        raise ValueError(f"no integer id ({type(exc).__name__})") from exc
    return line


def parse_lines(lines: str | Iterable[str], where: str = TRACKS_FILE) -> Iterator[dict[str, Any]]:
    """The lines of a ``_tracks.jsonl`` text; a line that is not a track line (a torn last
    line of a killed run, or a hostile value) is a warning naming ``where`` and the line.

    ``id`` is normalized to the 6-digit string (hand-written files may hold a number).
    """
    # lines end at "\n" only: not at the U+2028, U+0085, ... str.splitlines() also splits at
    for number, raw in enumerate(lines.split("\n") if isinstance(lines, str) else lines, 1):
        if not raw.strip():
            continue
        try:
            line = parse_line(raw)
        except ValueError as exc:
            log.warning("%s line %d is not a track line (%s); ignored", where, number, exc)
            continue
        yield line


def track_metadata(
    lines: str | Iterable[str], where: str = TRACKS_FILE
) -> dict[str, dict[str, str]]:
    """{id: {title, artist, album, genre, split, subset}} for the preprocess job: the last line
    per id wins, ids whose last line is an error are left out, unknown (null or empty) fields
    are absent, and values are strings (design contract 4: what records carry), each at most
    :data:`METADATA_VALUE_MAX` characters."""
    latest: dict[str, dict[str, Any]] = {}
    for line in parse_lines(lines, where):
        latest[line["id"]] = line
    return {
        tid: {k: cap_value(str(line[k])) for k in METADATA_KEYS if line.get(k) not in (None, "")}
        for tid, line in latest.items()
        if line.get("status", "ok") == "ok"
    }
