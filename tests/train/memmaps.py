"""Memmap exports written by hand for the training tests (independently of train.export)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def write_memmap(dest: Path, tracks: list[np.ndarray], **meta: Any) -> Path:
    """A memmap export written by hand (codes.u8 + index.jsonl), independently of train.export."""
    dest.mkdir(parents=True)
    offset = 0
    lines = []
    for i, codes in enumerate(tracks):
        line = {"track_id": f"t{i}", "offset": offset, "length": len(codes), "mu": 255}
        line["genre"] = ("Rock", "Jazz")[i % 2]
        lines.append({**line, **meta})
        offset += len(codes)
    (dest / "codes.u8").write_bytes(b"".join(np.asarray(t, np.uint8).tobytes() for t in tracks))
    (dest / "index.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return dest


def constant_tracks(lengths: list[int]) -> list[np.ndarray]:
    """Track k holds only the code 10 + k: a window mixing two tracks is not constant."""
    return [np.full(n, 10 + k, np.uint8) for k, n in enumerate(lengths)]


def random_tracks(lengths: list[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, n).astype(np.uint8) for n in lengths]
