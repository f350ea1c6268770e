"""Greedy selection, vectorized vs the per-candidate loop, and the probe's training time per epoch.

    python benchmarks/bench_greedy.py                      # D = 1024 and 2048, N_dev = 5000, k = 50
    python benchmarks/bench_greedy.py --dims 256 --loop-steps 2

The loop is timed on its first `--loop-steps` steps and extrapolated to k steps: a step costs one
masked forward pass per remaining candidate, so the total is (per-candidate time) x Σ_{t<k} (D - t).
Wall and CPU (process) times are both printed: on a shared machine the wall time depends on the load.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from xlprobe.greedy import greedy_select
from xlprobe.probe import LatentSubsetProbe


def timed(func):
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def problem(seed: int, n: int, dim: int, n_classes: int):
    """Labels from a sparse linear model on Gaussian features, and a probe close to that model."""
    rng = np.random.default_rng(seed)
    truth = np.zeros((n_classes, dim))
    informative = rng.choice(dim, 64, replace=False)
    truth[:, informative] = rng.normal(size=(n_classes, 64))
    X = rng.normal(size=(n, dim)).astype(np.float32)
    logits = X @ truth.T
    y = np.array([rng.choice(n_classes, p=np.exp(r - r.max()) / np.exp(r - r.max()).sum()) for r in logits])
    weight = truth + 0.02 * rng.normal(size=truth.shape)
    return weight, rng.normal(size=n_classes) * 0.1, X, y


def bench_greedy(dim: int, n_dev: int, k: int, n_classes: int, loop_steps: int, seed: int) -> None:
    weight, bias, X, y = problem(seed, n_dev, dim, n_classes)
    fast, fast_wall, fast_cpu = timed(lambda: greedy_select(weight, bias, X, y, k, progress=False))
    slow, loop_wall, loop_cpu = timed(
        lambda: greedy_select(weight, bias, X, y, loop_steps, method="loop", progress=False)
    )
    candidates_timed = sum(dim - t for t in range(loop_steps))
    candidates_all = sum(dim - t for t in range(min(k, dim)))
    loop_total_wall = loop_wall / candidates_timed * candidates_all
    loop_total_cpu = loop_cpu / candidates_timed * candidates_all
    agree = fast.selected[:loop_steps] == slow.selected
    print(
        f"D={dim} N_dev={n_dev} C={n_classes} k={k}: "
        f"vectorized {fast_wall:.2f} s wall / {fast_cpu:.2f} s CPU; "
        f"loop {loop_wall:.1f} s for {loop_steps} step(s) -> {loop_total_wall:.0f} s wall / "
        f"{loop_total_cpu:.0f} s CPU for k={k} (extrapolated); "
        f"ratio {loop_total_wall / fast_wall:.0f}x wall, {loop_total_cpu / fast_cpu:.0f}x CPU; "
        f"first picks agree: {agree}",
        flush=True,
    )


def bench_probe(dim: int, n_train: int, n_classes: int, epochs: int, seed: int) -> None:
    _, _, X, y = problem(seed, n_train, dim, n_classes)
    probe = LatentSubsetProbe(max_epochs=epochs, patience=epochs + 1, seed=seed, progress=False)
    _, wall, cpu = timed(lambda: probe.fit(X, y, n_classes=n_classes))
    print(
        f"probe training D={dim} N_train={n_train} C={n_classes}: "
        f"{wall / epochs:.2f} s wall / {cpu / epochs:.2f} s CPU per epoch (mean of {epochs})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--n-dev", type=int, default=5000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--loop-steps", type=int, default=1)
    parser.add_argument("--probe-dim", type=int, default=2048)
    parser.add_argument("--probe-train", type=int, default=20000)
    parser.add_argument("--probe-epochs", type=int, default=3, help="0 skips the probe benchmark")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    for dim in args.dims:
        bench_greedy(dim, args.n_dev, args.k, args.classes, args.loop_steps, args.seed)
    if args.probe_epochs:
        bench_probe(args.probe_dim, args.probe_train, args.classes, args.probe_epochs, args.seed)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
