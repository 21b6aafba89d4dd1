"""What a finished ``fetch-dataset`` remembers at the destination: ``_fetched/<name>.json``.

Written once the archive's sha1 is proven and its members are unpacked: the archive's sha1 and
size, and for every member it published (or refused for good) where the member lies in the
archive (local header offset, packed size, method), its unpacked size and the sha1 of its
content as the verified pass found it. A rerun with the same expected sha1 then checks the
destination against this record instead of the archive: a complete destination costs no
archive byte, and a member that went missing is read back alone by Range (two requests: its
header, its data) and must hash to the recorded sha1 before it is published again.

The record is only ever written from a verified archive, so it is as trustworthy as that sha1;
a record that does not parse is ignored (the archive is read again).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import astuple, dataclass

from fmaprep.acquire.dest import Destination

log = logging.getLogger(__name__)

RECORD_DIR = "_fetched"
FORMAT = 1
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Member:
    name: str  # the member's path in the archive
    key: str  # where it is published at the destination
    track_id: int | None  # None for a metadata file
    offset: int  # of its local header
    csize: int
    usize: int
    method: int
    sha1: str  # of its unpacked bytes
    error: str | None = None  # why it was refused (for good: the archive itself is wrong)


@dataclass(frozen=True)
class FetchRecord:
    name: str
    sha1: str
    size: int
    members: tuple[Member, ...]


def record_key(name: str) -> str:
    return f"{RECORD_DIR}/{re.sub(r'[^A-Za-z0-9_.-]', '_', name).lstrip('.-') or '_'}.json"


def write_record(dest: Destination, record: FetchRecord) -> None:
    body = {
        "format": FORMAT,
        "archive": record.name,
        "sha1": record.sha1,
        "size": record.size,
        "fields": [f for f in Member.__dataclass_fields__],
        "members": [list(astuple(m)) for m in record.members],
    }
    dest.write_bytes(record_key(record.name), json.dumps(body, separators=(",", ":")).encode())


def read_record(dest: Destination, name: str) -> FetchRecord | None:
    """The destination's record for archive ``name``, or None (none, or not one fmaprep wrote)."""
    key = record_key(name)
    try:
        text = dest.read_text(key)
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("%s/%s unreadable (%s): the archive is read again", dest.uri, key, exc)
        return None
    if text is None:
        return None
    try:
        body = json.loads(text)
        if body["format"] != FORMAT or not _HEX40.match(body["sha1"]):
            raise ValueError("not a format-1 record")
        members = tuple(Member(*row) for row in body["members"])
        for m in members:
            if not (isinstance(m.offset, int) and isinstance(m.csize, int)
                    and isinstance(m.usize, int) and _HEX40.match(str(m.sha1))):  # fmt: skip
                raise ValueError(f"bad member {m.name!r}")
        return FetchRecord(str(body["archive"]), body["sha1"], int(body["size"]), members)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("%s/%s is not a fetch record (%s): the archive is read again",
                    dest.uri, key, exc)  # fmt: skip
        return None
