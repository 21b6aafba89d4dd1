"""The Free Music Archive's pages, as published: listing pages hold one ``div.play-item`` per
track whose ``data-track-info`` attribute is JSON (``id``, ``handle``, ``url``, ``title``,
``artistName``, ``albumTitle``, ``playbackUrl``, ``downloadUrl``, ``fileName``, often
``fileUrl``); pagination is ``div.pagination-full a.pagination-next``.

Everything here is parsing: text in, data out. Values from the site are untrusted: ids must be
integers (they alone name files), URLs must be http(s), names are kept as metadata only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from bs4 import BeautifulSoup
from bs4.element import Tag

log = logging.getLogger(__name__)

MAX_TRACK_ID = 10**9


class BadTrackError(ValueError):
    """A play-item that cannot be used (no integer id, broken JSON)."""


@dataclass(frozen=True)
class TrackInfo:
    id: int
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    genre: str | None = None
    page_url: str | None = None
    file_url: str | None = None
    playback_url: str | None = None
    download_url: str | None = None
    file_name: str | None = None  # metadata only; never a path

    @property
    def id6(self) -> str:
        return f"{self.id:06d}"

    def urls(self) -> dict[str, str]:
        pairs = {
            "page": self.page_url,
            "file": self.file_url,
            "playback": self.playback_url,
            "download": self.download_url,
        }
        return {key: value for key, value in pairs.items() if value}


@dataclass
class Listing:
    tracks: list[TrackInfo] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # reasons, one per unusable play-item
    next_url: str | None = None


def parse_track_id(value: object) -> int:
    """An FMA id: a positive integer, given as a JSON number or a string of ASCII digits."""
    if isinstance(value, bool):
        raise BadTrackError(f"track id {value!r} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12:
        number = int(value)
    else:
        raise BadTrackError(f"track id {value!r} is not an integer")
    if not 0 < number < MAX_TRACK_ID:
        raise BadTrackError(f"track id {number} out of range")
    return number


def _web_url(value: object, base: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        url = urljoin(base, value.strip())
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        log.warning("ignoring unparsable URL %r", value)
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        log.warning("ignoring non-http(s) URL %r", value)
        return None
    return url


def _text(value: object) -> str | None:
    """A name as text: a JSON string or number; anything else (a list, an object) is dropped."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value).strip()
    return text or None


def track_from_info(info: dict[str, Any], base: str, genre: str | None = None) -> TrackInfo:
    """Build a :class:`TrackInfo` from one ``data-track-info`` object."""
    return TrackInfo(
        id=parse_track_id(info.get("id")),
        title=_text(info.get("title")),
        artist=_text(info.get("artistName")),
        album=_text(info.get("albumTitle")),
        genre=genre,
        page_url=_web_url(info.get("url"), base),
        file_url=_web_url(info.get("fileUrl"), base),
        playback_url=_web_url(info.get("playbackUrl"), base),
        download_url=_web_url(info.get("downloadUrl"), base),
        file_name=_text(info.get("fileName")),
    )


def _info_of(item: Tag) -> dict[str, Any]:
    raw = item.get("data-track-info")
    if not isinstance(raw, str):
        raise BadTrackError("play-item without data-track-info")
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise BadTrackError(f"data-track-info is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadTrackError("data-track-info is nested too deeply") from exc
    if not isinstance(info, dict):
        raise BadTrackError("data-track-info is not a JSON object")
    return info


def parse_listing(html: str, page_url: str, genre: str | None = None) -> Listing:
    """Tracks and the next page's URL from a listing page (genre, chart or search)."""
    soup = BeautifulSoup(html, "html.parser")
    listing = Listing()
    for item in soup.select("div.play-item[data-track-info]"):
        try:
            listing.tracks.append(track_from_info(_info_of(item), page_url, genre))
        except BadTrackError as exc:
            log.warning("skipping a track on %s: %s", page_url, exc)
            listing.rejected.append(str(exc))
    nxt = soup.select_one("div.pagination-full a.pagination-next")
    if nxt is not None:
        href = nxt.get("href")
        listing.next_url = _web_url(href, page_url) if isinstance(href, str) else None
    return listing


def parse_track_page(html: str, page_url: str, track_id: int) -> TrackInfo | None:
    """The play-item for ``track_id`` on its track page (that one usually has ``fileUrl``)."""
    soup = BeautifulSoup(html, "html.parser")
    for item in soup.select("[data-track-info]"):
        if not isinstance(item, Tag):
            continue
        try:
            track = track_from_info(_info_of(item), page_url)
        except BadTrackError:
            continue
        if track.id == track_id:
            return track
    return None


def listing_url(
    base_url: str,
    *,
    genre: str | None = None,
    chart: str | None = None,
    search: str | None = None,
    page: int = 1,
    page_size: int = 20,
) -> str:
    """The first (or ``page``-th) listing URL for one source."""
    base = base_url.rstrip("/")
    if sum(x is not None for x in (genre, chart, search)) != 1:
        raise ValueError("give exactly one of genre, chart, search")
    if genre is not None:
        query = urlencode({"pageSize": page_size, "page": page})
        return f"{base}/genre/{quote(genre, safe='')}/?{query}"
    if chart is not None:
        return f"{base}/music/charts/{quote(chart, safe='')}?{urlencode({'page': page})}"
    return f"{base}/search/?{urlencode({'quicksearch': search, 'page': page})}"
