"""What the first bytes of a file say it is: text (an HTML error page saved as .mp3) or mp3.

Used by the decoders (a clearer reason than "decode failed") and by the scraper (refuse a
non-audio answer before storing it).
"""

from __future__ import annotations

ID3_MAGIC = b"ID3"
# bytes that mark a file as text rather than audio (compared lower-cased, leading space dropped)
TEXT_MARKERS = (b"<!doctype", b"<html", b"<?xml", b"{", b"<head", b"<body")


def looks_like_text(head: bytes, any_tag: bool = False) -> bool:
    """True when ``head`` starts like HTML, XML or JSON (``any_tag``: or with any ``<``)."""
    start = head.lstrip().lower()
    return start.startswith(TEXT_MARKERS) or (any_tag and start[:1] == b"<")


def starts_like_mp3(head: bytes) -> bool:
    """True for an ID3v2 tag or an MPEG audio frame sync with a valid layer."""
    if head.startswith(ID3_MAGIC):
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and bool(head[1] & 0x06)
