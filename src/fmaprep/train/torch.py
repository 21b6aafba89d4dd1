"""A PyTorch ``IterableDataset`` over :class:`fmaprep.train.data.WindowSampler`.

Imported only on request (:func:`fmaprep.train.data.torch_dataset`): PyTorch is not a dependency of
fmaprep, and this module fails to import without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info


class Sampler(Protocol):
    """What :class:`fmaprep.train.data.WindowSampler` offers (no import: data imports us)."""

    one_hot: bool

    def iter_shard(self, shard: int, shards: int) -> Iterator[tuple[Any, Any]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class WindowDataset(IterableDataset):  # type: ignore[type-arg,unused-ignore]
    """Yields (input, target) tensors: input int64 codes (float32 of shape (len, mu + 1) when the
    sampler is one-hot), target int64 codes, ready for an embedding or one-hot WaveNet and
    ``cross_entropy``. Each DataLoader worker iterates its own shard of the sampler's rank
    (random mode: its own stream; sequential: its own block of the rank's windows), so neither
    workers nor ranks repeat each other. ``state_dict``/``load_state_dict`` are the sampler's:
    torchdata's ``StatefulDataLoader`` saves and restores them in each worker.
    """

    def __init__(self, sampler: Sampler) -> None:
        super().__init__()
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        info = get_worker_info()
        shard, shards = (info.id, info.num_workers) if info is not None else (0, 1)
        for inputs, target in self.sampler.iter_shard(shard, shards):
            x = inputs if self.sampler.one_hot else inputs.astype(np.int64)
            yield torch.from_numpy(x), torch.from_numpy(target.astype(np.int64))

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
