"""Whether a byte stream is MPEG audio, frame by frame: a check that reads the whole body as it
streams in (no decoder, constant memory) and so sees what a magic number cannot: ``ID3`` then
an HTML page, a frame sync followed by noise, a file cut short (a last frame missing bytes, or
fewer frames than the Xing/Info header declares).

A frame header gives the frame's length, so a real stream is a chain: each header sits where
the previous frame ends, in the same format. A chain may start only where two headers chain
(random bytes rarely do); bytes outside frames and ID3v2 tags are junk, and a little is allowed
(an ID3v1 or APE tag at the end, padding).
"""

from __future__ import annotations

import struct

from fmaprep.audio.sniff import ID3_MAGIC

_KBPS = {  # (version is MPEG-1, layer) -> bitrate index -> kbit/s
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
MIN_FRAMES = 2
JUNK_ALLOWED = 8192  # bytes outside frames always tolerated (trailing tags), besides 5 %
HOPELESS_AFTER = 256 * 1024  # no frame in this many bytes (tags aside): not audio, stop reading
MAX_TAG = 16 * 1024 * 1024  # an ID3v2 tag claiming more is not one (cover art is far smaller)


def frame_at(buf: bytes | bytearray, i: int) -> tuple[int, tuple[int, int, int, int]] | None:
    """(frame length, format) of an MPEG audio frame header at ``buf[i:i+4]``, else None."""
    if len(buf) < i + 4 or buf[i] != 0xFF or buf[i + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = buf[i + 1], buf[i + 2], buf[i + 3]
    version, layer, rate_index = (b1 >> 3) & 3, (b1 >> 1) & 3, (b2 >> 2) & 3
    bitrate_index, padding = b2 >> 4, (b2 >> 1) & 1
    if version == 1 or layer == 0 or rate_index == 3 or bitrate_index in (0, 15) or b3 & 3 == 2:
        return None  # reserved values, or free format (whose length a header does not give)
    mpeg1 = version == 3
    bitrate = _KBPS[(mpeg1, layer)][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    if layer == 3:  # Layer I: 4-byte slots
        length = (12 * bitrate // rate + padding) * 4
    elif layer == 1 and not mpeg1:  # Layer III of MPEG-2/2.5: half the samples per frame
        length = 72 * bitrate // rate + padding
    else:
        length = 144 * bitrate // rate + padding
    channels = (b3 >> 6) & 3
    return length, (version, layer, rate_index, 1 if channels == 3 else 2)


def _id3v2_length(buf: bytes | bytearray, i: int) -> int | None:
    header = buf[i : i + 10]
    if len(header) < 10 or any(byte & 0x80 for byte in header[6:10]) or header[3] == 0xFF:
        return None
    size = 0
    for byte in header[6:10]:  # "syncsafe": 7 bits per byte
        size = (size << 7) | byte
    return 10 + size + (10 if header[5] & 0x10 else 0) if size <= MAX_TAG else None


def _declared_frames(buf: bytes | bytearray, i: int, fmt: tuple[int, int, int, int]) -> int | None:
    """The frame count of a Xing/Info header in the Layer III frame at ``i``, if it has one."""
    version, layer, _, channels = fmt
    if layer != 1:
        return None
    side = (32 if channels == 2 else 17) if version == 3 else (17 if channels == 2 else 9)
    tag = i + 4 + side
    if bytes(buf[tag : tag + 4]) not in (b"Xing", b"Info") or len(buf) < tag + 12:
        return None
    (flags,) = struct.unpack_from(">I", buf, tag + 4)
    return struct.unpack_from(">I", buf, tag + 8)[0] if flags & 1 else None


class FrameCheck:
    """Feed a body with :meth:`feed`; :meth:`problem` says what is wrong with it (None: it is
    MPEG audio), :meth:`hopeless` already while it streams."""

    def __init__(self) -> None:
        self.frames = 0
        self.junk = 0
        self.total = 0
        self.declared: int | None = None  # frames, per the Xing/Info header
        self.tagged = 0  # bytes in ID3v2 tags
        self._buf = bytearray()
        self._pos = 0  # absolute offset of _buf[0]
        self._skip = 0  # bytes still to pass over (a frame or tag that ran past _buf)
        self._format: tuple[int, int, int, int] | None = None  # of the chain being followed
        self._end = 0  # absolute offset where the last frame (or tag) ends

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self._skip >= len(data):
            self._skip -= len(data)
            self._pos += len(data)
            return
        self._pos += self._skip
        self._buf += data[self._skip :]
        self._skip = 0
        self._scan(final=False)

    def _scan(self, final: bool) -> None:
        buf, i = self._buf, 0
        while len(buf) - i >= 4:
            if buf[i : i + 3] == ID3_MAGIC:  # a tag: at the start, or between joined files
                size = _id3v2_length(buf, i)
                if size is None and len(buf) - i < 10 and not final:
                    break
                if size is not None:
                    i += size
                    self.tagged += size
                    self._end = self._pos + i
                    self._format = None
                    continue
            found = frame_at(buf, i)
            if found is not None:
                length, fmt = found
                if fmt != self._format:  # a new chain starts only where two headers chain
                    if len(buf) - i < length + 4 and not final:
                        break
                    following = frame_at(buf, i + length)
                    if (following is None or following[1] != fmt) and len(buf) - i > length:
                        found = None
                    elif self.frames == 0:
                        self.declared = _declared_frames(buf, i, fmt)
            if found is not None:
                self._format = found[1]
                self.frames += 1
                i += found[0]
                self._end = self._pos + i
                continue
            self._format = None
            stop = buf.find(0xFF, i + 1)
            tag = buf.find(ID3_MAGIC, i + 1)
            stop = len(buf) - 3 if stop < 0 else stop
            if 0 <= tag < stop:
                stop = tag
            self.junk += max(1, stop - i)
            i = max(i + 1, stop)
        if i > len(buf):
            self._skip = i - len(buf)
            i = len(buf)
        del buf[:i]
        self._pos += i

    def hopeless(self) -> str | None:
        """Already certain the body is not MPEG audio (stop reading it)."""
        if self.frames == 0 and self.total - self.tagged >= HOPELESS_AFTER:
            return f"no MPEG audio frame in the first {self.total} bytes"
        if self.junk > max(HOPELESS_AFTER, self.total // 20):
            return f"{self.junk} of the first {self.total} bytes are not MPEG audio frames"
        return None

    def problem(self) -> str | None:
        """At the end of the body: why it is not a whole MPEG audio stream, or None."""
        self._scan(final=True)
        self.junk += len(self._buf)  # (fewer than 4 bytes: no header fits)
        self._buf.clear()
        if self.frames < MIN_FRAMES:
            return f"{self.frames} MPEG audio frames in {self.total} bytes"
        if self._end > self.total:
            return f"cut short: the last MPEG frame ends at byte {self._end} of {self.total}"
        if self.declared is not None and self.frames < self.declared:
            return f"cut short: {self.frames} MPEG frames of the {self.declared} declared"
        if self.junk > max(JUNK_ALLOWED, self.total // 20):
            return f"{self.junk} of {self.total} bytes are not MPEG audio frames"
        return None
