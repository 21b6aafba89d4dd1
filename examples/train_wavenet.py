"""Train a small WaveNet on an fmaprep OUTPUT (or a memmap export) through a torch DataLoader.

A few hundred steps on the demo output (``bash scripts/demo.sh``) bring the next-code loss below
the codes' unigram entropy: the model predicts from context, not just the code histogram. The
figures in docs/training.md come from this script.

    pip install -e '.[torch]'          # torch and torchdata are not fmaprep dependencies
    .venv/bin/python examples/train_wavenet.py build/demo/out --steps 300

Distributed (one process per GPU; each rank reads its own windows, see docs/training.md):

    torchrun --nproc_per_node 2 examples/train_wavenet.py build/demo/out

Resume: ``--checkpoint ckpt.pt`` saves the model, the optimizer and the DataLoader's state
(torchdata's StatefulDataLoader, which saves WindowSampler's state) every ``--save-every`` steps,
and a rerun with the same arguments continues mid-epoch where the checkpoint left off.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own spelling)
from torch import nn

from fmaprep import read_records
from fmaprep.train.data import WindowSampler, torch_dataset


class WaveNet(nn.Module):
    """Embedding, a stack of gated dilated causal convolutions (kernel 2, no padding: each layer
    shortens the sequence by its dilation, so an input of receptive_field + window - 1 codes
    yields exactly ``window`` predictions), skip connections, two 1x1 layers to 256 logits."""

    def __init__(self, dilations: list[int], channels: int = 32, skip: int = 64) -> None:
        super().__init__()
        self.dilations = dilations
        self.receptive_field = 1 + sum(dilations)
        self.embed = nn.Embedding(256, channels)
        self.filters = nn.ModuleList(nn.Conv1d(channels, channels, 2, dilation=d) for d in dilations)
        self.gates = nn.ModuleList(nn.Conv1d(channels, channels, 2, dilation=d) for d in dilations)
        self.residual = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in dilations)
        self.skips = nn.ModuleList(nn.Conv1d(channels, skip, 1) for _ in dilations)
        self.out1 = nn.Conv1d(skip, skip, 1)
        self.out2 = nn.Conv1d(skip, 256, 1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.embed(codes).transpose(1, 2)  # (batch, channels, time)
        length = codes.shape[1] - self.receptive_field + 1
        total: torch.Tensor | None = None
        for d, f, g, r, s in zip(
            self.dilations, self.filters, self.gates, self.residual, self.skips, strict=True
        ):
            z = torch.tanh(f(x)) * torch.sigmoid(g(x))
            skip = s(z)[..., -length:]
            total = skip if total is None else total + skip
            x = x[..., d:] + r(z)
        assert total is not None
        return self.out2(F.relu(self.out1(F.relu(total))))  # (batch, 256, window)


def unigram_entropy_bits(source: str, track_ids: list[str]) -> float:
    counts = np.zeros(256, np.int64)
    for record in read_records(source, track_ids=track_ids):
        counts += np.bincount(record["codes"], minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def loader(sampler: WindowSampler, batch: int, workers: int) -> Any:
    try:
        from torchdata.stateful_dataloader import StatefulDataLoader
    except ImportError:  # no mid-epoch resume without torchdata
        return torch.utils.data.DataLoader(torch_dataset(sampler), batch, num_workers=workers)
    return StatefulDataLoader(torch_dataset(sampler), batch, num_workers=workers)


def evaluate(model: WaveNet, sampler: WindowSampler, batches: int, batch: int) -> float:
    """Mean next-code loss (bits) over the first ``batches`` batches of held-out windows."""
    model.eval()
    total = n = 0.0
    with torch.no_grad():
        for i, (x, y) in enumerate(torch.utils.data.DataLoader(torch_dataset(sampler), batch)):
            if i == batches:
                break
            total += F.cross_entropy(model(x), y, reduction="sum").item()
            n += y.numel()
    model.train()
    return total / n / math.log(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default="build/demo/out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    # one intra-op thread: a model this small gains nothing from more, and on a busy machine
    # (2 cores shared here) idle threads spinning cost 10x the CPU per step (measured)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--save-every", type=int, default=100)
    args = ap.parse_args()
    if "RANK" in os.environ:  # under torchrun
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = WaveNet([1, 2, 4, 8, 16, 32, 64, 128] * 2)
    rf = model.receptive_field
    ids = sorted({str(r["track_id"]) for r in read_records(args.source)})
    held_out = ids[::10]  # every tenth track, never trained on
    train_ids = [t for t in ids if t not in held_out]
    sampler = WindowSampler(args.source, args.window, rf, seed=args.seed, track_ids=train_ids,
                            num_windows=args.steps * args.batch)  # fmt: skip
    data = loader(sampler, args.batch, args.workers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        saved = torch.load(args.checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        data.load_state_dict(saved["data"])
        step = saved["step"]
        print(f"resumed at step {step}")
    entropy = unigram_entropy_bits(args.source, train_ids)
    losses: list[float] = []
    start = time.time()
    for x, y in data:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(loss.item() / math.log(2))
        if step % 25 == 0:
            recent = np.mean(losses[-25:])
            print(f"step {step}: loss {recent:.3f} bits (unigram entropy {entropy:.3f})", flush=True)
        if args.checkpoint and step % args.save_every == 0:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "data": data.state_dict(), "step": step}, args.checkpoint)  # fmt: skip
    held = WindowSampler(args.source, args.window, rf, mode="sequential", track_ids=held_out)
    summary = {
        "source": args.source,
        "steps": step,
        "batch": args.batch,
        "window": args.window,
        "receptive_field": rf,
        "parameters": sum(p.numel() for p in model.parameters()),
        "unigram_entropy_bits": round(entropy, 3),
        "first_25_steps_loss_bits": round(float(np.mean(losses[:25])), 3),
        "last_25_steps_loss_bits": round(float(np.mean(losses[-25:])), 3),
        "held_out_loss_bits": round(evaluate(model, held, 20, args.batch), 3),
        "held_out_unigram_entropy_bits": round(unigram_entropy_bits(args.source, held_out), 3),
        "held_out_tracks": len(held_out),
        "seconds": round(time.time() - start, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
