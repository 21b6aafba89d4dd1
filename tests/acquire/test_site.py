"""Parsing FMA listing and track pages (markup as the site publishes it)."""

from __future__ import annotations

import html
import json

import pytest

from fmaprep.acquire.site import (
    BadTrackError,
    listing_url,
    parse_listing,
    parse_track_id,
    parse_track_page,
)

BASE = "https://freemusicarchive.org/genre/Rock/?pageSize=20&page=1"


def item(info: object) -> str:
    return f'<div class="play-item" data-track-info="{html.escape(json.dumps(info))}"></div>'


def test_listing_tracks_rejects_and_next_page() -> None:
    page = (
        item({"id": 2, "title": "Food", "artistName": "AWOL", "albumTitle": "A Way",
              "url": "/music/AWOL/A_Way/Food", "fileUrl": "https://files.example/2.mp3",
              "playbackUrl": "/track/2/stream", "fileName": "../../etc/passwd"})
        + item({"id": "135", "title": "string id"})
        + item({"id": "12a", "title": "bad"})
        + item({"id": -4})
        + item({"id": True})
        + item({"id": 9, "fileUrl": "javascript:alert(1)"})
        + '<div class="play-item" data-track-info="{not json"></div>'
        + '<div class="pagination-full"><a class="pagination-next" href="?page=2">Next</a></div>'
    )  # fmt: skip
    listing = parse_listing(page, BASE, genre="Rock")
    assert [t.id for t in listing.tracks] == [2, 135, 9]
    assert len(listing.rejected) == 4
    first = listing.tracks[0]
    assert first.id6 == "000002" and first.genre == "Rock" and first.artist == "AWOL"
    assert first.page_url == "https://freemusicarchive.org/music/AWOL/A_Way/Food"
    assert first.playback_url == "https://freemusicarchive.org/track/2/stream"
    assert first.file_name == "../../etc/passwd"  # kept as metadata, never a path
    assert listing.tracks[2].file_url is None  # a javascript: URL is dropped
    assert listing.next_url == "https://freemusicarchive.org/genre/Rock/?page=2"
    assert parse_listing("<html></html>", BASE).next_url is None


def test_track_page_finds_its_own_item() -> None:
    page = item({"id": 3, "fileUrl": "/x/3.mp3"}) + item({"id": 7, "fileUrl": "/x/7.mp3"})
    found = parse_track_page(page, "https://fma.example/track/7/", 7)
    assert found is not None and found.file_url == "https://fma.example/x/7.mp3"
    assert parse_track_page(page, "https://fma.example/", 8) is None


@pytest.mark.parametrize("value", ["1.5", "", None, "٣", 10**9, 0, "0x10", 2.0])
def test_track_id_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(BadTrackError):
        parse_track_id(value)


def test_listing_urls() -> None:
    base = "https://freemusicarchive.org/"
    assert listing_url(base, genre="Old-Time__Historic", page=3, page_size=200) == (
        "https://freemusicarchive.org/genre/Old-Time__Historic/?pageSize=200&page=3"
    )
    assert listing_url(base, chart="all") == "https://freemusicarchive.org/music/charts/all?page=1"
    assert listing_url(base, search="a b&c") == (
        "https://freemusicarchive.org/search/?quicksearch=a+b%26c&page=1"
    )
    with pytest.raises(ValueError):
        listing_url(base)


def test_unparsable_urls_and_hostile_values_are_dropped_not_raised() -> None:
    page = (
        item({"id": 4, "fileUrl": "http://[::1/x.mp3", "title": [[["x"]]], "artistName": 7})
        + item({"id": "9" * 5000})
        + '<div class="pagination-full"><a class="pagination-next" href="http://[bad">n</a></div>'
    )
    listing = parse_listing(page, BASE)
    assert [t.id for t in listing.tracks] == [4] and len(listing.rejected) == 1
    track = listing.tracks[0]
    assert track.file_url is None and track.title is None and track.artist == "7"
    assert listing.next_url is None
