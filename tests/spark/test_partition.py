from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from fmaprep.spark.partition import choose_partition_count, pack_by_bytes


@dataclass(frozen=True)
class F:
    name: str
    size: int


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=300), st.integers(1, 64))
def test_every_file_lands_once_and_bins_are_balanced(sizes: list[int], n: int) -> None:
    files = [F(str(i), s) for i, s in enumerate(sizes)]
    bins = pack_by_bytes(files, n)
    assert sorted(f.name for b in bins for f in b) == sorted(f.name for f in files)
    assert 1 <= len(bins) <= min(n, len(files))
    loads = [sum(max(f.size, 1) for f in b) for b in bins]
    # LPT bound: the heaviest bin exceeds the lightest by at most the largest single file
    assert max(loads) - min(loads) <= max(max(f.size, 1) for f in files)


def test_partition_count() -> None:
    mb = 10**6
    assert choose_partition_count(0, 0, 2, 64 * mb) == 1
    assert choose_partition_count(300 * 5 * mb, 300, 2, 64 * mb) == 24  # by bytes
    assert choose_partition_count(10 * mb, 100, 2, 64 * mb) == 6  # a few tasks per core
    assert choose_partition_count(10 * mb, 4, 8, 64 * mb) == 4  # never more than files
    assert choose_partition_count(700 * mb, 180, 2, 64 * mb) == 12  # 11 by bytes: whole rounds
    assert choose_partition_count(700 * mb, 180, 3, 64 * mb) == 12
    assert choose_partition_count(650 * mb, 180, 4, 64 * mb) == 12
