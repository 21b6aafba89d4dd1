"""Pack input files into Spark partitions of similar total bytes.

One file per task drowns in scheduling overhead; two giant tasks leave cores idle at the end.
We choose enough partitions for ~target bytes each and a few per core, in a whole number of
rounds (a multiple of the cores), then place files
largest-first into the lightest partition (LPT), which keeps the slowest task close to the mean.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Sized(Protocol):
    @property
    def size(self) -> int: ...


T = TypeVar("T", bound=Sized)

TASKS_PER_CORE = (
    3  # enough to even out stragglers, few enough that JVM/Python task overhead stays small
)


def choose_partition_count(
    total_bytes: int, n_files: int, parallelism: int, target_bytes: int
) -> int:
    if n_files == 0:
        return 1
    slots = max(parallelism, 1)
    by_bytes = math.ceil(total_bytes / max(target_bytes, 1))
    # a whole number of rounds: 11 equal tasks on 2 cores leave one core idle for the last
    # task's length, 12 do not
    rounds = math.ceil(max(by_bytes, TASKS_PER_CORE * slots) / slots)
    return max(1, min(rounds * slots, n_files))


def pack_by_bytes(files: Sequence[T], n_partitions: int) -> list[list[T]]:
    """Split ``files`` into ``n_partitions`` non-empty lists of similar total size."""
    n = max(1, min(n_partitions, len(files)))
    bins: list[list[T]] = [[] for _ in range(n)]
    heap = [(0, i) for i in range(n)]
    for item in sorted(files, key=lambda f: f.size, reverse=True):
        load, i = heapq.heappop(heap)
        bins[i].append(item)
        heapq.heappush(heap, (load + max(item.size, 1), i))
    return [b for b in bins if b]
