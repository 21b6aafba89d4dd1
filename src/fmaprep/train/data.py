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

import os
import sys
from collections.abc import Collection, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fmaprep.storage.uris import is_local, local_path
from fmaprep.train import shards as sharding
from fmaprep.train.export import CODES_FILE, INDEX_FILE, read_index
from fmaprep.train.remote import RemoteExport, is_remote_export

Codes = npt.NDArray[np.uint8]
Mode = Literal["random", "sequential"]

__all__ = ["MemmapExport", "WindowSampler", "is_memmap_export", "torch_dataset"]


def is_memmap_export(path: str) -> bool:
    """A local memmap export (:func:`fmaprep.train.remote.is_remote_export`: on S3/HDFS)."""
    return is_local(path) and os.path.isfile(os.path.join(local_path(path), INDEX_FILE))


class MemmapExport:
    """A ``fmaprep export --to memmap`` directory: ``tracks`` (the index lines) and ``codes(i)``,
    a read-only view into ``codes.u8``. Pickles by path, so DataLoader workers reopen the file
    instead of copying it."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(local_path(path))
        with open(os.path.join(self.path, INDEX_FILE), encoding="utf-8") as f:
            text = f.read()
        size = os.path.getsize(os.path.join(self.path, CODES_FILE))
        self.tracks = read_index(text, self.path, size)
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
    windows per epoch (all ranks together), or endless when None. ``mode="sequential"``: tracks
    in order, chunk starts 0, hop, 2*hop, ... (``hop`` defaults to ``window``, so the targets
    tile each track); seed unused. ``set_epoch`` changes the random stream for the next pass.

    **Distributed.** ``rank``/``world_size`` default to ``torch.distributed``'s when it is
    initialized (else 0 and 1). Iteration, :meth:`positions` and :meth:`iter_shard` serve this
    rank's share only; :meth:`iter_shard` splits it further between DataLoader workers. Every
    rank serves the same number of windows; in sequential mode every window of the epoch is
    served once across ranks and workers, with the remainder rule of ``drop_last`` (False: the
    last rank's missing slots repeat the epoch's first windows; True: the last ``T mod
    world_size`` windows are dropped). Random mode is a function of (seed, epoch, rank, worker).
    The exact rules are in :mod:`fmaprep.train.shards`.

    **Resume.** :meth:`state_dict` (JSON-serializable) records the epoch and how many windows
    each shard served in the current pass; a new sampler with the same arguments given it by
    :meth:`load_state_dict` continues with exactly the windows an uninterrupted run would have
    served next, computed directly (no replay). These are the names torchdata's
    ``StatefulDataLoader`` calls (through :func:`torch_dataset`).

    ``one_hot=True`` yields the input as float32 of shape (len, mu + 1); the target stays codes.

    An OUTPUT (local, ``s3://``, ``hdfs://``) is read once with :func:`fmaprep.read_records` and
    the selected tracks' codes held in memory. For data larger than memory, export to memmap
    (``fmaprep export OUTPUT DEST --to memmap``) and sample from DEST: a local export through
    ``numpy.memmap``, an ``s3://``/``hdfs://`` one in place with ranged reads and a bounded cache
    (:class:`fmaprep.train.remote.RemoteExport`; pass one to set its cache size).
    """

    def __init__(
        self,
        source: str | MemmapExport | RemoteExport,
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
        rank: int | None = None,
        world_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if window < 1 or receptive_field < 1:
            raise ValueError(f"window {window} and receptive_field {receptive_field}: need >= 1")
        if mode not in ("random", "sequential"):
            raise ValueError(f"mode must be random or sequential, got {mode!r}")
        if hop is not None and hop < 1:
            raise ValueError(f"hop must be >= 1, got {hop}")
        if num_windows is not None and num_windows < 0:
            raise ValueError(f"num_windows must be >= 0, got {num_windows}")
        self.window, self.receptive_field, self.seed = window, receptive_field, seed
        self.span = receptive_field + window
        self.mode, self.num_windows, self.one_hot = mode, num_windows, one_hot
        self.hop = hop or window
        self.drop_last = drop_last
        self.rank, self.world_size = _distributed(rank, world_size)
        sharding.Shard(self.rank, self.world_size)  # checks the rank
        self.epoch = 0
        self._eyes: dict[int, npt.NDArray[np.float32]] = {}  # one-hot tables by channel count
        filters = (_as_set(track_ids), _as_set(genres), _as_set(splits))
        # selected tracks: metadata (with "length"); codes held (an OUTPUT) or read in place
        self._meta: list[dict[str, Any]] = []
        self._loaded: list[Codes] = []
        self._export: MemmapExport | RemoteExport | None = None
        self._rows: list[int] = []  # memmap: index rows of the selected tracks
        if isinstance(source, str) and not (is_memmap_export(source) or is_remote_export(source)):
            from fmaprep.formats.records import read_records

            for record in read_records(source, track_ids=filters[0], genres=filters[1],
                                       splits=filters[2]):  # fmt: skip
                codes = record.pop("codes")
                self._meta.append({**record, "length": int(codes.size)})
                self._loaded.append(codes)
        else:
            export = source if not isinstance(source, str) else _open_export(source)
            self._export = export
            for row, line in enumerate(export.tracks):
                if _selected(line, *filters):
                    self._rows.append(row)
                    self._meta.append(line)
        lengths = np.array([m["length"] for m in self._meta], np.int64)
        self._starts = np.maximum(lengths - self.span + 1, 0)
        self._cumulative = sharding.sequential_windows(lengths, self.span, self.hop)
        if not self._starts.any():
            raise ValueError(
                f"no selected track has {self.span} codes (receptive_field + window); "
                f"{len(self._meta)} tracks selected"
            )
        self._served: dict[str, int] = {}  # windows served this pass, by worker
        self._resume: dict[str, int] = {}  # from load_state_dict, for the next pass

    def __len__(self) -> int:
        """Windows this rank serves in an epoch (all its workers together)."""
        if self.mode == "sequential":
            total = int(self._cumulative[-1])
        elif self.num_windows is None:
            raise TypeError("an endless random WindowSampler (num_windows=None) has no length")
        else:
            total = self.num_windows
        return sharding.per_rank(total, self.world_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: the next pass of every worker begins at its first window."""
        self.epoch = epoch
        self._served.clear()
        self._resume.clear()

    def _track_codes(self, i: int) -> Codes:
        if self._export is not None:
            return self._export.codes(self._rows[i])
        return self._loaded[i]

    def _shard(self, worker: int, num_workers: int) -> sharding.Shard:
        return sharding.Shard(self.rank, self.world_size, worker, num_workers)

    def _positions(self, shard: sharding.Shard, skip: int) -> Iterator[tuple[int, int]]:
        if self.mode == "random":
            count = sharding.random_count(self.num_windows, shard, self.drop_last)
            return sharding.random_positions(
                self._starts, self.seed, self.epoch, shard, count=count, skip=skip
            )
        return sharding.sequential_positions(
            self._cumulative, self.hop, shard, self.drop_last, skip
        )

    def positions(self, shard: int = 0, shards: int = 1) -> Iterator[tuple[str, int]]:
        """(track_id, start) of each window of worker ``shard`` of ``shards`` of this rank, from
        the epoch's start, in the order :meth:`iter_shard` yields them (state untouched)."""
        for track, start in self._positions(self._shard(shard, shards), 0):
            yield self._meta[track]["track_id"], start

    def iter_shard(self, shard: int = 0, shards: int = 1) -> Iterator[tuple[Any, Codes]]:
        """The windows of DataLoader worker ``shard`` of ``shards`` within this rank. A pass
        starts at the worker's first window of the epoch, or where :meth:`load_state_dict`
        says; the windows served are counted for :meth:`state_dict`."""
        where = self._shard(shard, shards)
        skip = self._resume.pop(where.key, 0)
        self._served[where.key] = skip
        for track, start in self._positions(where, skip):
            chunk = np.array(self._track_codes(track)[start : start + self.span], np.uint8)
            inputs, target = chunk[:-1], chunk[self.receptive_field :]
            self._served[where.key] += 1  # counted when handed out: state_dict sees it
            if self.one_hot:
                channels = int(self._meta[track].get("mu", 255)) + 1
                if channels not in self._eyes:
                    self._eyes[channels] = np.eye(channels, dtype=np.float32)
                yield self._eyes[channels][inputs], target
            else:
                yield inputs, target

    def __iter__(self) -> Iterator[tuple[Any, Codes]]:
        return self.iter_shard(0, 1)

    def _fingerprint(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "seed": self.seed,
            "window": self.window,
            "receptive_field": self.receptive_field,
            "hop": self.hop,
            "num_windows": self.num_windows,
            "drop_last": self.drop_last,
            "rank": self.rank,
            "world_size": self.world_size,
            "tracks": len(self._meta),
            "windows": int(self._cumulative[-1]),
        }

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable: the epoch, the windows each worker served in its current pass,
        and what the state is only valid for (the arguments and the selected data's size)."""
        served = {**self._served, **self._resume}
        return {"version": STATE_VERSION, "epoch": self.epoch, "served": served,
                **self._fingerprint()}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (of a sampler made with the same arguments and data): the
        next pass of each worker resumes after the windows it had served."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"sampler state version {state.get('version')!r}, "
                             f"expected {STATE_VERSION}")  # fmt: skip
        mine = self._fingerprint()
        differ = sorted(k for k, v in mine.items() if state.get(k) != v)
        if differ:
            raise ValueError(
                "sampler state is of another sampler: "
                + ", ".join(f"{k} {state.get(k)!r} (this one: {mine[k]!r})" for k in differ)
            )
        self.epoch = int(state["epoch"])
        self._served.clear()
        self._resume = {str(k): int(v) for k, v in state["served"].items()}


STATE_VERSION = 1


def _open_export(source: str) -> MemmapExport | RemoteExport:
    return MemmapExport(source) if is_memmap_export(source) else RemoteExport(source)


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """The rank and world size given, else torch.distributed's when it is initialized."""
    if rank is None or world_size is None:
        dist = sys.modules.get("torch.distributed")  # never import torch for this
        if dist is not None and dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    world = 1 if world_size is None else int(world_size)
    if world < 1:
        raise ValueError(f"world_size must be >= 1, got {world}")
    return (0 if rank is None else int(rank)), world


def torch_dataset(sampler: WindowSampler) -> Any:
    """A ``torch.utils.data.IterableDataset`` over ``sampler`` (:class:`fmaprep.train.torch.
    WindowDataset`). torch is not a dependency of fmaprep: without it this raises ImportError."""
    try:
        from fmaprep.train.torch import WindowDataset
    except ImportError as exc:
        raise ImportError(f"torch_dataset needs PyTorch (pip install torch): {exc}") from exc
    return WindowDataset(sampler)
