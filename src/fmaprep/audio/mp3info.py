"""What an mp3 says about its own length: the Xing/Info tag LAME and most encoders write in the
first frame. Lets every decoder notice a file that was cut short (a truncated download)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fmaprep.audio.sniff import ID3_MAGIC

_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_SEARCH_BYTES = 1 << 16  # how far past the ID3 tag to look for the first frame


@dataclass(frozen=True)
class Mp3Info:
    sample_rate: int
    channels: int
    declared_frames: int | None  # PCM frames per the Xing/Info tag; None without a tag


def _id3v2_size(head: bytes) -> int:
    if len(head) < 10 or not head.startswith(ID3_MAGIC):
        return 0
    size = 0
    for byte in head[6:10]:  # "syncsafe": 7 bits per byte
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _parse(buf: bytes) -> Mp3Info | None:
    for pos in range(len(buf) - 4):
        if buf[pos] != 0xFF or buf[pos + 1] & 0xE0 != 0xE0:
            continue
        b1, b2, b3 = buf[pos + 1], buf[pos + 2], buf[pos + 3]
        version, layer, rate_index = (b1 >> 3) & 3, (b1 >> 1) & 3, (b2 >> 2) & 3
        if version == 1 or layer != 1 or rate_index == 3 or (b2 >> 4) in (0, 15):
            continue  # not a Layer III frame header
        mono = (b3 >> 6) & 3 == 3
        side_info = (17 if mono else 32) if version == 3 else (9 if mono else 17)
        samples_per_frame = 1152 if version == 3 else 576
        info = Mp3Info(_SAMPLE_RATES[version][rate_index], 1 if mono else 2, None)
        tag = pos + 4 + side_info
        if buf[tag : tag + 4] in (b"Xing", b"Info") and len(buf) >= tag + 12:
            (flags,) = struct.unpack_from(">I", buf, tag + 4)
            if flags & 1:
                (frames,) = struct.unpack_from(">I", buf, tag + 8)
                return Mp3Info(info.sample_rate, info.channels, frames * samples_per_frame)
        return info
    return None


def read_mp3_info(path: str) -> Mp3Info | None:
    """The first Layer III frame's format and the length its Xing/Info tag declares, if any."""
    with open(path, "rb") as f:
        head = f.read(10)
        f.seek(_id3v2_size(head))
        return _parse(f.read(_SEARCH_BYTES))
