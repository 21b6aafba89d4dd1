"""The DataLoader protocol for real: samplers pickled into separate worker processes (what a
DataLoader with workers does under the spawn start method), per-worker state saved and restored;
and, when torch is installed, torch's DataLoader, torchdata's StatefulDataLoader and gloo ranks.

Windows are identified by their bytes (random codes: each window's bytes occur once), against a
direct enumeration of the export's windows.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import pickle
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from memmaps import random_tracks, write_memmap

from fmaprep.train.data import WindowSampler

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_TORCHDATA = importlib.util.find_spec("torchdata") is not None
WINDOW, RF = 8, 5
LENGTHS = [100, 10, 57, 13, 300, 21, 77, 20]  # 66 windows with hop 8


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_memmap(tmp_path_factory.mktemp("loader") / "mm", random_tracks(LENGTHS, seed=8))


def window_index(source: Path) -> dict[bytes, tuple[str, int]]:
    """Every sequential window's (input + target) bytes -> its position, enumerated directly."""
    tracks = random_tracks(LENGTHS, seed=8)
    out = {}
    for i, codes in enumerate(tracks):
        for start in range(0, codes.size - WINDOW - RF + 1, WINDOW):
            chunk = codes[start : start + WINDOW + RF]
            out[chunk[:-1].tobytes() + chunk[RF:].tobytes()] = (f"t{i}", start)
    assert len(out) == 66
    return out


def _worker(blob: bytes, worker: int, workers: int, k: int, conn: Any) -> None:
    """A worker process: unpickle the sampler, serve k windows (all when k < 0), report them and
    the state; a state given in the pickle's place resumes first."""
    sampler, state = pickle.loads(blob)
    if state is not None:
        sampler.load_state_dict(state)
    got = []
    for inputs, target in sampler.iter_shard(worker, workers):
        got.append(inputs.tobytes() + target.tobytes())
        if len(got) == k:
            break
    conn.send((got, json.dumps(sampler.state_dict())))
    conn.close()


def run_workers(
    sampler: WindowSampler, workers: int, k: int, states: list[Any] | None = None
) -> list[tuple[list[bytes], str]]:
    ctx = multiprocessing.get_context("spawn")
    results = []
    for w in range(workers):
        ours, theirs = ctx.Pipe(duplex=False)
        blob = pickle.dumps((sampler, None if states is None else json.loads(states[w])))
        proc = ctx.Process(target=_worker, args=(blob, w, workers, k, theirs))
        proc.start()
        results.append(ours.recv())
        proc.join(60)
        assert proc.exitcode == 0
    return results


def test_worker_processes_split_ranks_and_resume_from_their_own_state(export: Path) -> None:
    index = window_index(export)
    seen: list[tuple[str, int]] = []
    for rank in range(2):
        sampler = WindowSampler(str(export), WINDOW, RF, mode="sequential", rank=rank, world_size=2)
        first = run_workers(sampler, 2, 5)  # each worker serves 5, then the job is "preempted"
        rest = run_workers(sampler, 2, -1, [state for _, state in first])
        for (a, _), (b, _) in zip(first, rest, strict=True):
            seen += [index[x] for x in a + b]
        assert sum(len(a) + len(b) for (a, _), (b, _) in zip(first, rest, strict=True)) == 33
    assert len(seen) == len(set(seen)) == 66 and set(seen) == set(index.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (it is optional)")
@pytest.mark.parametrize("world_size", [1, 3])
def test_torch_dataloader_workers_and_ranks(export: Path, world_size: int) -> None:
    from torch.utils.data import DataLoader

    from fmaprep.train.data import torch_dataset

    index = window_index(export)
    seen, counts = [], []
    for rank in range(world_size):
        sampler = WindowSampler(
            str(export), WINDOW, RF, mode="sequential", rank=rank, world_size=world_size
        )
        loader = DataLoader(torch_dataset(sampler), batch_size=4, num_workers=2)
        n = 0
        for x, y in loader:
            assert x.shape[1:] == (WINDOW + RF - 1,) and y.shape[1:] == (WINDOW,)
            for xi, yi in zip(x.numpy().astype(np.uint8), y.numpy().astype(np.uint8), strict=True):
                seen.append(index[xi.tobytes() + yi.tobytes()])
                n += 1
        counts.append(n)
    assert len(seen) == len(set(seen)) == 66 and set(counts) == {66 // world_size}


@pytest.mark.skipif(not HAVE_TORCHDATA, reason="torchdata is not installed (it is optional)")
@pytest.mark.parametrize("mode", ["sequential", "random"])
def test_stateful_dataloader_resumes_mid_epoch(export: Path, mode: str) -> None:
    from torchdata.stateful_dataloader import StatefulDataLoader

    from fmaprep.train.data import torch_dataset

    def loader() -> Any:
        sampler = WindowSampler(str(export), WINDOW, RF, seed=3, mode=mode, num_windows=64)  # type: ignore[arg-type]
        return StatefulDataLoader(torch_dataset(sampler), batch_size=4, num_workers=2)

    whole = [(x.numpy().tobytes(), y.numpy().tobytes()) for x, y in loader()]
    for k in (1, 3, 6):
        first = loader()
        it = iter(first)
        for _ in range(k):
            next(it)
        state = first.state_dict()
        # the workers' states are the sampler's own (not torchdata's replay of k batches)
        assert sampler_states(state) and all(s["epoch"] == 0 for s in sampler_states(state))
        again = loader()
        again.load_state_dict(state)
        rest = [(x.numpy().tobytes(), y.numpy().tobytes()) for x, y in again]
        assert rest == whole[k:], k


def sampler_states(state: Any) -> list[dict[str, Any]]:
    """The WindowSampler states inside a StatefulDataLoader's state (nested dicts)."""
    if isinstance(state, dict):
        if "served" in state and "world_size" in state:
            return [state]
        return [s for v in state.values() for s in sampler_states(v)]
    return []


def _gloo_rank(rank: int, port: int, source: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    sampler = WindowSampler(source, WINDOW, RF, mode="sequential")  # rank from torch
    Path(out, f"{rank}.json").write_text(
        json.dumps([sampler.rank, sampler.world_size, list(sampler.positions())])
    )
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (it is optional)")
def test_ranks_come_from_an_initialized_process_group(export: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_gloo_rank, args=(free_port(), str(export), str(tmp_path)), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert [g[:2] for g in got] == [[0, 2], [1, 2]]
    positions = [tuple(p) for g in got for p in g[2]]
    assert len(positions) == len(set(positions)) == 66
    assert set(positions) == set(window_index(export).values())
