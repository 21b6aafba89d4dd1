"""Just enough RIFF/WAVE parsing for ffmpeg's piped output (whose size fields are bogus)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fmaprep.model import TrackError


@dataclass(frozen=True)
class WavHeader:
    format_tag: int  # 1 = PCM, 3 = IEEE float
    channels: int
    sample_rate: int
    bits: int
    data_offset: int  # where the samples start in the stream

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def parse_wav_header(data: bytes) -> WavHeader:
    """Find the fmt and data chunks at the start of ``data``; the data runs to the stream's end."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise TrackError("decode_failed", "no wav stream")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", data, body)
            (bits,) = struct.unpack_from("<H", data, body + 14)
            if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID
                (tag,) = struct.unpack_from("<H", data, body + 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                break
            header = WavHeader(fmt[0], fmt[1], fmt[2], fmt[3], body)
            _check_supported(header)
            return header
        pos = body + size + (size & 1)
    raise TrackError("decode_failed", "wav stream has no fmt/data chunk")


def _check_supported(h: WavHeader) -> None:
    ok = (h.format_tag == 3 and h.bits in (32, 64)) or (
        h.format_tag == 1 and h.bits in (8, 16, 24, 32)
    )
    if not ok or h.channels < 1:
        raise TrackError("unsupported", f"wav format tag {h.format_tag} with {h.bits} bits")


def pcm_to_float(raw: bytes, h: WavHeader) -> npt.NDArray[np.float32]:
    """Whole frames of samples in ``h``'s format to float32 (n, channels), full scale 1.0."""
    if h.format_tag == 3:
        samples = np.frombuffer(raw, dtype="<f4" if h.bits == 32 else "<f8").astype(np.float32)
    elif h.bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif h.bits in (16, 32):
        ints = np.frombuffer(raw, dtype="<i2" if h.bits == 16 else "<i4")
        samples = ints.astype(np.float32) / float(2 ** (h.bits - 1))
    else:  # 24-bit: sign-extend three little-endian bytes
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints24 = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        samples = ints24.astype(np.float32) / float(2**23)
    return samples.reshape(-1, h.channels)
