"""Listen to what the model learns from: one track's mu-law codes decoded to a 16-bit PCM wav.

Conversion (exact, documented so tests can restate it):
``x = fmaprep.audio.signal.mu_law_decode(codes, mu)`` lies in [-1, 1]; the sample is
``round(x * 32767)`` as int16 (round half to even, numpy's ``rint``), so codes 0 and mu map to
-32767 and 32767 (for mu = 255 the codes next to zero, 127 and 128, map to -3 and 3: an odd mu
has no exact zero level). The wav's rate is the record's ``sample_rate`` (8000 Hz by default),
one channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.atomic_file import atomic_path
from fmaprep.audio.signal import mu_law_decode

PCM_SCALE = 32767


def codes_to_pcm16(codes: npt.NDArray[np.integer], mu: int = 255) -> npt.NDArray[np.int16]:
    pcm: npt.NDArray[np.int16] = np.rint(mu_law_decode(codes, mu) * PCM_SCALE).astype(np.int16)
    return pcm


def find_track(source: str, track_id: str) -> dict[str, Any]:
    """The record of ``track_id`` in an OUTPUT or a memmap export (codes included)."""
    from fmaprep.train.data import MemmapExport, is_memmap_export

    if is_memmap_export(source):
        export = MemmapExport(source)
        for i, line in enumerate(export.tracks):
            if line["track_id"] == track_id:
                return {**line, "codes": np.array(export.codes(i))}
    else:
        from fmaprep.formats.records import read_records

        for record in read_records(source, track_ids=[track_id]):
            return record
    raise KeyError(f"track {track_id!r} is not in {source}")


def write_preview(source: str, track_id: str, out: str) -> dict[str, Any]:
    """Write ``out`` (a wav, atomically: temp file then rename); return the track's record
    without its codes, plus ``samples`` and ``seconds``."""
    import soundfile as sf

    record = find_track(source, track_id)
    codes = record.pop("codes")
    rate = int(record.get("sample_rate", 8000))
    pcm = codes_to_pcm16(codes, int(record.get("mu", 255)))
    with atomic_path(out) as tmp:
        sf.write(tmp, pcm, rate, subtype="PCM_16", format="WAV")
    return {**record, "samples": int(pcm.size), "seconds": pcm.size / rate}
