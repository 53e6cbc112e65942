"""The peer of `geonoise bench-step`: the project's toy model and training step in PyTorch (CPU).

Same architecture as crate/src/model.rs, same loss and optimizer as crate/src/train.rs:

    u (D) -> Linear -> [h <- h + fc2(SiLU(fc1(SiLU(h)) + time(emb)))] x depth -> SiLU -> z
    f(u) = output(z) + gain(z) * u

Flow Matching, noise-conditioned: u = (1 - t) x + t eps, target eps - x, t ~ U[1e-3, 1], 32
sinusoidal time features, MSE, each parameter's gradient clipped to norm 1, Adam (eps 1e-8) with
the cosine learning rate of TrainConfig::lr_at. Sampling: Euler steps u <- u + h f(u, t) of 2,000
trajectories (FM: mu = 0, nu = 1).

Prints one JSON object: the median ms per training step and per sampling step after a warm-up.
Run by `node bench/run.mjs native`; needs `torch` (bench/run.mjs --install-torch). `--device cuda`
runs it on a GPU (the peer of `geonoise bench-step --device wgpu` on the same machine); each timed
step ends with its result on the host, so the GPU's queue is drained inside the timing.
"""

import argparse
import json
import math
import statistics
import time

import torch
from torch import nn

R_INNER = 2 / math.sqrt(5)
R_OUTER = 4 / math.sqrt(5)
FREQS = 16


class Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.fc1 = nn.Linear(w, w)
        self.time = nn.Linear(2 * FREQS, w)
        self.fc2 = nn.Linear(w, w)


class Net(nn.Module):
    def __init__(self, d, w, depth):
        super().__init__()
        self.input = nn.Linear(d, w)
        self.blocks = nn.ModuleList(Block(w) for _ in range(depth))
        self.output = nn.Linear(w, d)
        self.gain = nn.Linear(w, 1)
        for layer in (self.output, self.gain):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, u, emb):
        h = self.input(u)
        for b in self.blocks:
            z = b.fc1(nn.functional.silu(h)) + b.time(emb)
            h = h + b.fc2(nn.functional.silu(z))
        z = nn.functional.silu(h)
        return self.output(z) + self.gain(z) * u


def time_features(t):
    k = torch.arange(FREQS, dtype=torch.float32)
    w = torch.exp(-math.log(10000.0) * k / FREQS)
    arg = 1000.0 * t[:, None] * w[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def projection(d):
    q, _ = torch.linalg.qr(torch.randn(d, 2))
    return q.T.contiguous()  # 2 x D


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    torch.set_default_device(dev)

    net = Net(a.dim, a.width, a.depth)
    proj = projection(a.dim).to(dev)
    lr, total = 5e-3, 1_000_000
    opt = torch.optim.Adam(net.parameters(), lr=lr, eps=1e-8)
    params = list(net.parameters())

    def train_step(k):
        b = a.batch
        r = torch.where(torch.rand(b) < 0.5, R_INNER, R_OUTER)
        th = 2 * math.pi * torch.rand(b)
        x = torch.stack([r * torch.cos(th), r * torch.sin(th)], dim=1) @ proj
        t = 1e-3 + (1 - 1e-3) * torch.rand(b)
        eps = torch.randn(b, a.dim)
        u = (1 - t)[:, None] * x + t[:, None] * eps
        target = eps - x
        loss = ((net(u, time_features(t)) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in params:
            torch.nn.utils.clip_grad_norm_(p, 1.0)
        p = min(k / total, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
        opt.step()
        return loss.item()

    def timed(f, n):
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            f(i)
            out.append(1e3 * (time.perf_counter() - t0))
        return statistics.median(out)

    timed(train_step, 3)
    train_ms = timed(train_step, a.steps)

    u = torch.randn(a.n, a.dim)
    grid = [1 - i / 100 * (1 - 1e-3) for i in range(101)]

    @torch.no_grad()
    def sample_step(i):
        nonlocal u
        t0, t1 = grid[i % 100], grid[i % 100 + 1]
        emb = time_features(torch.full((1,), t0)).expand(a.n, -1)
        u = u + (t1 - t0) * net(u, emb)
        (u @ proj.T).cpu().numpy()  # the plane coordinates on the host, as the project reads each step

    timed(sample_step, 3)
    sample_ms = timed(sample_step, a.steps)
    print(json.dumps({"torch": torch.__version__, "device": str(dev), "threads": torch.get_num_threads(), "train_ms": train_ms, "sample_ms": sample_ms, "batch": a.batch, "n": a.n}))


if __name__ == "__main__":
    main()
