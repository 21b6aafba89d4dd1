"""Who serves which window: the arithmetic behind :class:`fmaprep.train.data.WindowSampler`'s
distributed ranks, DataLoader workers and mid-epoch resume. Pure numpy, no I/O.

**Sequential mode.** The epoch's windows are numbered ``0 .. T-1`` in track order (chunk starts
0, hop, 2*hop, ... of each track). Every rank gets the same count ``per_rank``:

- ``drop_last=False`` (the default, as torch's ``DistributedSampler``): ``per_rank =
  ceil(T / world_size)``; the ``world_size * per_rank - T`` missing slots (fewer than
  ``world_size``) are filled with the epoch's first windows again, so every window is served at
  least once and at most that many windows twice.
- ``drop_last=True``: ``per_rank = floor(T / world_size)``; the last ``T mod world_size``
  windows of the epoch are not served.

When ``world_size`` divides ``T`` both rules serve every window exactly once. Slots are dealt in
contiguous blocks (rank r holds slots ``r*per_rank .. (r+1)*per_rank - 1``, slot s is window
``s mod T``), so a rank reads only its share of the bytes. Inside a rank, DataLoader worker w of
n takes the contiguous block ``floor(w*per_rank/n) .. floor((w+1)*per_rank/n) - 1`` of the
rank's slots: workers' counts differ by at most one, ranks' counts never.

**Random mode.** Each (rank, worker) draws its own stream: its k-th window is draw
``k mod 1024`` of batch ``k // 1024``, where batch b is
``numpy.random.default_rng([seed, epoch, rank, worker, b]).integers(0, S, 1024)`` and S is the
number of valid chunk starts of all selected tracks (draw u is start ``u - C[t-1]`` of the track
t with ``C[t-1] <= u < C[t]``, C the cumulative starts). ``num_windows`` (per epoch, all ranks
together) gives each rank ``ceil(num_windows / world_size)`` windows (``floor`` with
``drop_last``), split over its workers as in sequential mode; None is endless.

**Resume.** The k-th window of any shard is computed directly (a search in the cumulative
counts, one batch of 1024 draws), so continuing after K windows costs the same for every K.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RANDOM_BATCH = 1024

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Shard:
    """One consumer of windows: a distributed rank and one of its DataLoader workers."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} not in 0..{self.world_size - 1}")
        if not 0 <= self.worker < self.num_workers:
            raise ValueError(f"worker {self.worker} not in 0..{self.num_workers - 1}")

    @property
    def key(self) -> str:
        """The worker's name in a state dict (a rank saves its own state)."""
        return f"{self.worker}/{self.num_workers}"


def per_rank(total: int, world_size: int, drop_last: bool) -> int:
    """Windows each rank serves in an epoch of ``total`` (see the module doc)."""
    return total // world_size if drop_last else -(-total // world_size)


def worker_block(count: int, shard: Shard) -> tuple[int, int]:
    """[first, end) of worker ``shard.worker``'s contiguous block of its rank's ``count`` slots."""
    n, w = shard.num_workers, shard.worker
    return w * count // n, (w + 1) * count // n


def sequential_windows(lengths: Ints, span: int, hop: int) -> Ints:
    """Cumulative window counts per track: track t holds windows ``C[t-1] .. C[t]-1``."""
    counts = np.where(lengths >= span, (lengths - span) // hop + 1, 0)
    return np.cumsum(counts, dtype=np.int64)


def sequential_slots(shard: Shard, total: int, drop_last: bool) -> tuple[int, int]:
    """The global slots [first, end) this shard serves; slot s is window ``s mod total``."""
    n = per_rank(total, shard.world_size, drop_last)
    first, end = worker_block(n, shard)
    return shard.rank * n + first, shard.rank * n + end


def sequential_positions(
    cumulative: Ints, hop: int, shard: Shard, drop_last: bool, skip: int = 0
) -> Iterator[tuple[int, int]]:
    """(track index, start) of the shard's windows, from its ``skip``-th on."""
    total = int(cumulative[-1]) if cumulative.size else 0
    if total == 0:
        return
    first, end = sequential_slots(shard, total, drop_last)
    slot = first + skip
    while slot < end:
        window = slot % total
        track = int(np.searchsorted(cumulative, window, side="right"))
        before = int(cumulative[track - 1]) if track else 0
        # the rest of this track's windows (in this shard) without another search
        stop = min(end, slot + int(cumulative[track]) - window)
        for w in range(window - before, window - before + stop - slot):
            yield track, w * hop
        slot = stop


def random_count(num_windows: int | None, shard: Shard, drop_last: bool) -> int | None:
    """Windows this shard draws in an epoch (None: endless)."""
    if num_windows is None:
        return None
    first, end = worker_block(per_rank(num_windows, shard.world_size, drop_last), shard)
    return end - first


def random_positions(
    starts: Ints, seed: int, epoch: int, shard: Shard, *, count: int | None, skip: int = 0
) -> Iterator[tuple[int, int]]:
    """(track index, start) of the shard's random windows, from its ``skip``-th on.
    ``starts[t]`` is the number of valid chunk starts of track t."""
    cumulative = np.cumsum(starts, dtype=np.int64)
    total = int(cumulative[-1])
    k = skip
    while count is None or k < count:
        batch, offset = divmod(k, RANDOM_BATCH)
        rng = np.random.default_rng([seed, epoch, shard.rank, shard.worker, batch])
        draws = rng.integers(0, total, RANDOM_BATCH)
        take = RANDOM_BATCH - offset if count is None else min(RANDOM_BATCH - offset, count - k)
        chosen = draws[offset : offset + take]
        tracks = np.searchsorted(cumulative, chosen, side="right")
        for u, t in zip(chosen.tolist(), tracks.tolist(), strict=True):
            yield t, u - int(cumulative[t] - starts[t])
        k += take
