"""Training-side access: memmap exports and (input, target) windows for a WaveNet.

Window convention (tensorflow-wavenet's): a window of ``window`` predictions needs a chunk of
``span = receptive_field + window`` consecutive codes of one track, starting at ``start``::

    chunk  = codes[start : start + span]
    input  = chunk[:-1]               # receptive_field + window - 1 codes
    target = chunk[receptive_field:]  # window codes

so ``target[j] = codes[start + receptive_field + j]`` is predicted from the ``receptive_field``
codes before it, ``input[j : j + receptive_field]``. A chunk never crosses a track boundary;
tracks shorter than ``span`` give no windows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fmaprep.train.export import CODES_FILE, INDEX_FILE

Codes = npt.NDArray[np.uint8]
Mode = Literal["random", "sequential"]

__all__ = ["MemmapExport", "WindowSampler", "is_memmap_export", "torch_dataset"]


def is_memmap_export(path: str) -> bool:
    return os.path.isfile(os.path.join(path, INDEX_FILE))


class MemmapExport:
    """A ``fmaprep export --to memmap`` directory: ``tracks`` (the index lines) and ``codes(i)``,
    a read-only view into ``codes.u8``. Pickles by path, so DataLoader workers reopen the file
    instead of copying it."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        with open(os.path.join(self.path, INDEX_FILE), encoding="utf-8") as f:
            self.tracks: list[dict[str, Any]] = [json.loads(line) for line in f if line.strip()]
        size = os.path.getsize(os.path.join(self.path, CODES_FILE))
        end = 0
        for line in self.tracks:
            if line["offset"] != end or line["length"] < 0:
                raise ValueError(f"{self.path}: index line of {line['track_id']} is not contiguous")
            end += line["length"]
        if end != size:
            raise ValueError(f"{self.path}: index covers {end} bytes, {CODES_FILE} has {size}")
        self._data: Codes = (
            np.memmap(os.path.join(self.path, CODES_FILE), dtype=np.uint8, mode="r")
            if size
            else np.empty(0, np.uint8)
        )

    def __len__(self) -> int:
        return len(self.tracks)

    def codes(self, i: int) -> Codes:
        line = self.tracks[i]
        view: Codes = self._data[line["offset"] : line["offset"] + line["length"]]
        return view

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (MemmapExport, (self.path,))


def _selected(
    meta: dict[str, Any],
    track_ids: frozenset[str] | None,
    genres: frozenset[str] | None,
    splits: frozenset[str] | None,
) -> bool:
    return all(
        allowed is None or meta.get(key) in allowed
        for key, allowed in (("track_id", track_ids), ("genre", genres), ("split", splits))
    )


def _as_set(values: Collection[str] | str | None) -> frozenset[str] | None:
    return None if values is None else frozenset([values] if isinstance(values, str) else values)


class WindowSampler:
    """(input, target) uint8 windows from an OUTPUT or a memmap export (see the module doc).

    ``mode="random"``: every valid chunk of every selected track is equally likely (a track is
    drawn in proportion to its number of chunk starts, then a start uniformly); ``num_windows``
    windows, or endless when None. Deterministic for a (``seed``, epoch); ``set_epoch`` changes
    the stream for the next pass. ``mode="sequential"``: tracks in order, chunk starts 0, hop,
    2*hop, ... (``hop`` defaults to ``window``, so the targets tile each track); seed unused.

    ``one_hot=True`` yields the input as float32 of shape (len, mu + 1); the target stays codes.

    An OUTPUT is read with :func:`fmaprep.read_records`: sequential mode streams it, random mode
    holds the selected tracks' codes in memory. For data larger than memory, export to memmap
    (``fmaprep export OUTPUT DEST --to memmap``) and sample from DEST.
    """

    def __init__(
        self,
        source: str | MemmapExport,
        window: int,
        receptive_field: int = 1,
        seed: int = 0,
        *,
        mode: Mode = "random",
        num_windows: int | None = None,
        hop: int | None = None,
        one_hot: bool = False,
        track_ids: Collection[str] | str | None = None,
        genres: Collection[str] | str | None = None,
        splits: Collection[str] | str | None = None,
    ) -> None:
        if window < 1 or receptive_field < 1:
            raise ValueError(f"window {window} and receptive_field {receptive_field}: need >= 1")
        if mode not in ("random", "sequential"):
            raise ValueError(f"mode must be random or sequential, got {mode!r}")
        if hop is not None and hop < 1:
            raise ValueError(f"hop must be >= 1, got {hop}")
        self.window, self.receptive_field, self.seed = window, receptive_field, seed
        self.span = receptive_field + window
        self.mode, self.num_windows, self.one_hot = mode, num_windows, one_hot
        self.hop = hop or window
        self.epoch = 0
        self._eyes: dict[int, npt.NDArray[np.float32]] = {}  # one-hot tables by channel count
        self._filters = (_as_set(track_ids), _as_set(genres), _as_set(splits))
        if isinstance(source, str) and not is_memmap_export(source):
            self._output: str | None = source
            self._export: MemmapExport | None = None
        else:
            self._output = None
            self._export = source if isinstance(source, MemmapExport) else MemmapExport(source)
        # selected tracks: metadata (with "length") and, for an OUTPUT in random mode, codes
        self._meta: list[dict[str, Any]] = []
        self._loaded: list[Codes] = []
        self._rows: list[int] = []  # memmap: index rows of the selected tracks
        if self._export is not None:
            for row, line in enumerate(self._export.tracks):
                if _selected(line, *self._filters):
                    self._rows.append(row)
                    self._meta.append(line)
        elif mode == "random":
            for record in self._records():
                codes = record.pop("codes")
                self._meta.append({**record, "length": int(codes.size)})
                self._loaded.append(codes)
        if mode == "random":
            self._check_long_enough()

    def _records(self) -> Iterator[dict[str, Any]]:
        from fmaprep.formats.records import read_records

        assert self._output is not None
        track_ids, genres, splits = self._filters
        return read_records(self._output, track_ids=track_ids, genres=genres, splits=splits)

    def _check_long_enough(self) -> None:
        if not any(m["length"] >= self.span for m in self._meta):
            raise ValueError(
                f"no selected track has {self.span} codes (receptive_field + window); "
                f"{len(self._meta)} tracks selected"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _track_codes(self, i: int) -> Codes:
        if self._export is not None:
            return self._export.codes(self._rows[i])
        return self._loaded[i]

    def _random_positions(self, shard: int, shards: int) -> Iterator[tuple[int, int]]:
        starts = np.array([max(0, m["length"] - self.span + 1) for m in self._meta], np.int64)
        cumulative = np.cumsum(starts)
        total = int(cumulative[-1])
        rng = np.random.default_rng([self.seed, self.epoch, shard])
        if self.num_windows is None:
            count: int | None = None
        else:  # split num_windows over the shards
            count = self.num_windows // shards + (1 if shard < self.num_windows % shards else 0)
        drawn = 0
        while count is None or drawn < count:
            batch = 1024 if count is None else min(1024, count - drawn)
            for u in rng.integers(0, total, batch):
                track = int(np.searchsorted(cumulative, u, side="right"))
                yield track, int(u - (cumulative[track] - starts[track]))
            drawn += batch

    def _sequential(self) -> Iterator[tuple[dict[str, Any], Codes]]:
        if self._output is not None:
            for record in self._records():
                codes = record.pop("codes")
                yield {**record, "length": int(codes.size)}, codes
        else:
            for i, meta in enumerate(self._meta):
                yield meta, self._track_codes(i)

    def positions(self, shard: int = 0, shards: int = 1) -> Iterator[tuple[str, int]]:
        """(track_id, start) of each window, in the order ``iter_shard`` yields them."""
        for meta, _, start in self._chunks(shard, shards):
            yield meta["track_id"], start

    def _chunks(self, shard: int, shards: int) -> Iterator[tuple[dict[str, Any], Codes, int]]:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} not in 0..{shards - 1}")
        if self.mode == "random":
            for track, start in self._random_positions(shard, shards):
                yield self._meta[track], self._track_codes(track), start
            return
        n = 0
        for meta, codes in self._sequential():
            for start in range(0, codes.size - self.span + 1, self.hop):
                if n % shards == shard:
                    yield meta, codes, start
                n += 1

    def iter_shard(self, shard: int = 0, shards: int = 1) -> Iterator[tuple[Any, Codes]]:
        """The windows of one shard of ``shards`` (for data-loader workers): random mode draws
        from its own stream (seed, epoch, shard); sequential mode takes every shards-th window."""
        for meta, codes, start in self._chunks(shard, shards):
            chunk = np.array(codes[start : start + self.span], dtype=np.uint8)  # a copy
            inputs, target = chunk[:-1], chunk[self.receptive_field :]
            if self.one_hot:
                channels = int(meta.get("mu", 255)) + 1
                if channels not in self._eyes:
                    self._eyes[channels] = np.eye(channels, dtype=np.float32)
                yield self._eyes[channels][inputs], target
            else:
                yield inputs, target

    def __iter__(self) -> Iterator[tuple[Any, Codes]]:
        return self.iter_shard(0, 1)


def torch_dataset(sampler: WindowSampler) -> Any:
    """A ``torch.utils.data.IterableDataset`` over ``sampler`` (:class:`fmaprep.train.torch.
    WindowDataset`). torch is not a dependency of fmaprep: without it this raises ImportError."""
    try:
        from fmaprep.train.torch import WindowDataset
    except ImportError as exc:
        raise ImportError(f"torch_dataset needs PyTorch (pip install torch): {exc}") from exc
    return WindowDataset(sampler)
