"""WindowSampler across distributed ranks and DataLoader workers, and its mid-epoch resume.

Expected windows are enumerated here from the track lengths (sequential) or restated from the
documented draw rule of fmaprep.train.shards (random), never taken from the sampler's output.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from memmaps import random_tracks, write_memmap

from fmaprep.train.data import WindowSampler

WINDOW, RF = 8, 5  # span 13
# windows per track with hop 8: floor((L - 13) / 8) + 1 for L >= 13
LENGTHS = [100, 10, 57, 13, 300, 21, 77, 20]


def all_windows(lengths: list[int], span: int, hop: int) -> list[tuple[str, int]]:
    """The epoch's windows in order, enumerated directly."""
    out = []
    for i, n in enumerate(lengths):
        start = 0
        while start + span <= n:
            out.append((f"t{i}", start))
            start += hop
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    tracks = random_tracks(LENGTHS, seed=5)
    return write_memmap(tmp_path_factory.mktemp("ranks") / "mm", tracks), tracks


def served(
    source: Path, world_size: int, num_workers: int, **kw: object
) -> dict[int, list[list[tuple[str, int]]]]:
    """Positions by rank, then by worker (num_workers 0: the main process iterates)."""
    by_rank = {}
    for rank in range(world_size):
        sampler = WindowSampler(
            str(source),
            WINDOW,
            RF,
            rank=rank,
            world_size=world_size,
            **kw,  # type: ignore[arg-type]
        )
        if num_workers == 0:
            by_rank[rank] = [list(sampler.positions())]
        else:
            by_rank[rank] = [list(sampler.positions(w, num_workers)) for w in range(num_workers)]
    return by_rank


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_sequential_windows_are_served_once_across_ranks_and_workers(
    export: tuple[Path, list[np.ndarray]], world_size: int, num_workers: int
) -> None:
    source, tracks = export
    expected = all_windows(LENGTHS, WINDOW + RF, WINDOW)
    assert len(expected) == 66  # divisible by 1, 2 and 3: no remainder rule involved
    by_rank = served(source, world_size, num_workers, mode="sequential")
    got = [p for workers in by_rank.values() for positions in workers for p in positions]
    assert len(got) == len(set(got))  # no duplicates
    assert set(got) == set(expected)  # the single-process set
    counts = {rank: sum(len(w) for w in workers) for rank, workers in by_rank.items()}
    assert set(counts.values()) == {66 // world_size}
    # and the windows themselves are those slices of those tracks
    rank = world_size - 1
    sampler = WindowSampler(
        str(source), WINDOW, RF, mode="sequential", rank=rank, world_size=world_size
    )
    assert len(sampler) == 66 // world_size
    worker = num_workers - 1 if num_workers else 0
    shards = max(num_workers, 1)
    pairs = zip(by_rank[rank][worker], sampler.iter_shard(worker, shards), strict=True)
    for (tid, start), (inputs, target) in pairs:
        codes = tracks[int(tid[1:])]
        np.testing.assert_array_equal(inputs, codes[start : start + RF + WINDOW - 1])
        np.testing.assert_array_equal(target, codes[start + RF : start + RF + WINDOW])


def test_the_remainder_rule(export: tuple[Path, list[np.ndarray]]) -> None:
    """66 windows on 4 ranks: 17 each with the first two windows served twice (padding), or
    16 each without the last two (drop_last)."""
    source, _ = export
    expected = all_windows(LENGTHS, WINDOW + RF, WINDOW)
    padded = served(source, 4, 2, mode="sequential")
    got = [p for workers in padded.values() for positions in workers for p in positions]
    assert [sum(map(len, w)) for w in padded.values()] == [17, 17, 17, 17]
    assert set(got) == set(expected)
    assert sorted(p for p, n in Counter(got).items() if n > 1) == sorted(expected[:2])
    dropped = served(source, 4, 2, mode="sequential", drop_last=True)
    got = [p for workers in dropped.values() for positions in workers for p in positions]
    assert [sum(map(len, w)) for w in dropped.values()] == [16, 16, 16, 16]
    assert sorted(got) == sorted(expected[:64])
    # more ranks than windows: every rank still gets one
    tiny = served(source, 3, 0, mode="sequential", track_ids=["t3"])
    assert [w[0] for w in tiny.values()] == [[("t3", 0)]] * 3


def restated_draw(seed: int, epoch: int, rank: int, worker: int, k: int) -> tuple[str, int]:
    """fmaprep.train.shards' documented rule, restated: draw k of a worker is draw k % 1024 of
    default_rng([seed, epoch, rank, worker, k // 1024]).integers(0, S, 1024)."""
    starts = [max(0, n - WINDOW - RF + 1) for n in LENGTHS]
    edges = np.cumsum(starts)
    rng = np.random.default_rng([seed, epoch, rank, worker, k // 1024])
    u = int(rng.integers(0, int(edges[-1]), 1024)[k % 1024])
    track = next(t for t in range(len(starts)) if u < edges[t])
    return f"t{track}", u - int(edges[track] - starts[track])


def restated_random(
    seed: int, epoch: int, rank: int, worker: int, count: int
) -> list[tuple[str, int]]:
    return [restated_draw(seed, epoch, rank, worker, k) for k in range(count)]


def test_random_mode_is_a_function_of_seed_epoch_rank_and_worker(
    export: tuple[Path, list[np.ndarray]],
) -> None:
    source, _ = export
    by_rank = served(source, 3, 2, seed=9, num_windows=3001)
    # 3001 windows on 3 ranks: ceil -> 1001 each, split 500 / 501 between the two workers
    assert {r: [len(w) for w in ws] for r, ws in by_rank.items()} == {
        r: [500, 501] for r in range(3)
    }
    for rank, workers in by_rank.items():
        for worker, positions in enumerate(workers):
            assert positions == restated_random(9, 0, rank, worker, len(positions))
    sampler = WindowSampler(str(source), WINDOW, RF, seed=9, num_windows=40, rank=1, world_size=2)
    sampler.set_epoch(3)
    assert list(sampler.positions(1, 2)) == restated_random(9, 3, 1, 1, 10)


def take_positions(sampler: WindowSampler, k: int, shard: int = 0, shards: int = 1) -> list:
    """Iterate k windows of one worker; return the (input, target) pairs."""
    out = []
    it = sampler.iter_shard(shard, shards)
    for _ in range(k):
        out.append(next(it))
    return out


def as_positions(pairs: list, tracks: list[np.ndarray]) -> list[tuple[str, int]]:
    """Where each window's target lies (the tracks are random: each 8-code target is unique)."""
    found = []
    for inputs, target in pairs:
        hits = [
            (f"t{i}", s - RF)
            for i, codes in enumerate(tracks)
            for s in range(RF, codes.size - WINDOW + 1)
            if codes[s : s + WINDOW].tobytes() == target.tobytes()
            and codes[s - RF : s + WINDOW - 1].tobytes() == inputs.tobytes()
        ]
        assert len(hits) == 1
        found.append(hits[0])
    return found


@pytest.mark.parametrize("k", [0, 1, 5, 21, 33])
def test_sequential_resume_continues_where_the_run_stopped(
    export: tuple[Path, list[np.ndarray]], k: int
) -> None:
    source, tracks = export
    kw = {"mode": "sequential", "rank": 1, "world_size": 2}
    first = WindowSampler(str(source), WINDOW, RF, **kw)  # type: ignore[arg-type]
    take_positions(first, k)
    state = json.loads(json.dumps(first.state_dict()))  # JSON all the way
    fresh = WindowSampler(str(source), WINDOW, RF, **kw)  # type: ignore[arg-type]
    fresh.load_state_dict(state)
    rest = as_positions(list(fresh), tracks)
    # rank 1 of 2 holds windows 33..65 of the epoch, enumerated directly
    assert rest == all_windows(LENGTHS, WINDOW + RF, WINDOW)[33 + k : 66]
    assert list(fresh) != [] and len(list(fresh)) == 33  # the pass after that starts over


@pytest.mark.parametrize("k", [0, 3, 1023, 1024, 1500])
def test_random_resume_continues_with_the_windows_of_an_uninterrupted_run(
    export: tuple[Path, list[np.ndarray]], k: int
) -> None:
    source, tracks = export
    kw = {"seed": 4, "num_windows": 1600 * 2 * 3, "rank": 2, "world_size": 3}
    first = WindowSampler(str(source), WINDOW, RF, **kw)  # type: ignore[arg-type]
    first.set_epoch(2)
    take_positions(first, k, 1, 2)
    state = json.loads(json.dumps(first.state_dict()))
    fresh = WindowSampler(str(source), WINDOW, RF, **kw)  # type: ignore[arg-type]
    fresh.load_state_dict(state)
    assert fresh.epoch == 2
    rest = list(fresh.iter_shard(1, 2))
    assert len(rest) == 1600 - k
    want = restated_random(4, 2, 2, 1, 1600)[k : k + 40]
    assert as_positions(rest[:40], tracks) == want


def test_resume_does_not_replay(export: tuple[Path, list[np.ndarray]]) -> None:
    """A trillion windows in: replaying them would never finish."""
    source, tracks = export
    sampler = WindowSampler(str(source), WINDOW, RF, seed=1)  # endless
    state = sampler.state_dict()
    state["served"] = {"0/1": 10**12 + 7}
    sampler.load_state_dict(state)
    first = next(iter(sampler))
    assert as_positions([first], tracks) == [restated_draw(1, 0, 0, 0, 10**12 + 7)]
    assert sampler.state_dict()["served"] == {"0/1": 10**12 + 8}


def test_a_state_from_another_sampler_is_refused(export: tuple[Path, list[np.ndarray]]) -> None:
    source, _ = export
    state = WindowSampler(str(source), WINDOW, RF, seed=1, rank=0, world_size=2).state_dict()
    other = WindowSampler(str(source), WINDOW, RF, seed=1, rank=1, world_size=2)
    with pytest.raises(ValueError, match=r"rank 0 \(this one: 1\)"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match=r"rank 2 not in 0\.\.1"):
        WindowSampler(str(source), WINDOW, RF, rank=2, world_size=2)
