"""Probe training epoch: the implementation before issue 17 against today's, side by side in one run.

    python benchmarks/bench_probe_epoch.py                  # D = 1024 and 2048; then the selection check
    python benchmarks/bench_probe_epoch.py --dims 1024 --rounds 1 --seeds 0

The reference is src/xlprobe/probe.py as of commit REFERENCE, loaded with `git show`: the code that
ran before, not a copy. Old and new alternate `--rounds` times (CPU time); each round's ratio compares
two runs adjacent in time, and the median ratio is reported with its spread (the machine is shared:
the load changes between rounds).

The old code's speed depends on the memory allocator: each step allocates [2s, B, D] float tensors
(10 MB at D = 1024) that glibc hands back to the kernel when freed, so that the next step faults
their pages in again, unless the heap happens to keep them. Modes (`--mode`, default `all`):
  fresh      each fit in a new process with glibc's defaults, as a probe job runs (the old code
             faults all along: 12 epochs of one fit stay at the same speed);
  kept-heap  each fit in a new process whose glibc keeps freed memory (MALLOC_TRIM_THRESHOLD_,
             MALLOC_MMAP_THRESHOLD_, MALLOC_TOP_PAD_): the old code at its best, no page faults,
             which no job of the workflow sets;
  same       both in this process, alternating: what the old code gets depends on what the heap
             kept from earlier fits (between the two speeds above, from run to run).
Minor page faults per epoch (getrusage) are printed beside the times.

Selections. The new probe draws its masks from another random stream (numpy's PCG64, a byte at a
time, instead of torch's Mersenne Twister 16 bits at a time), so old and new cannot be compared draw
for draw; tests/test_probe.py shows the gradients equal given the same masks, and the masks the same
distribution. Here both train to early stopping on planted data with graded signal for `--seeds`
seeds, and greedy picks the top k on dev. The selections count as statistically equivalent when the
overlap between old and new of one seed is no lower than the overlap between two seeds of the old
code (minus 0.1: one neuron in k = 10), and the mean dev MI of the picks differs by less than two
standard errors of the seed-to-seed spread plus 0.01.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xlprobe.greedy import greedy_select
from xlprobe.probe import LatentSubsetProbe

REFERENCE = "54f479798bde9675be01c150838e249569985654"  # main before issue 17
MODES = ["fresh", "kept-heap", "same"]
ROOT = Path(__file__).resolve().parents[1]


def reference_probe_class():
    """LatentSubsetProbe as it was at REFERENCE (its source written to a temporary file and imported)."""
    source = subprocess.run(
        ["git", "show", f"{REFERENCE}:src/xlprobe/probe.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"probe_{REFERENCE[:7]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.LatentSubsetProbe


# glibc keeps freed memory in the heap instead of handing it back (and never serves large
# allocations from fresh mappings): the old step's tensors then reuse pages already mapped.
KEPT_HEAP = {
    "MALLOC_TRIM_THRESHOLD_": str(2**36),
    "MALLOC_MMAP_THRESHOLD_": str(2**32),
    "MALLOC_TOP_PAD_": str(2**28),
}


def timed_fit(cls, X, y, n_classes, epochs, seed):
    """(wall, CPU, minor page faults) per epoch of one fit."""
    probe = cls(max_epochs=epochs, patience=epochs + 1, seed=seed, progress=False)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    probe.fit(X, y, n_classes=n_classes)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / epochs, cpu / epochs, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / epochs


def speed_data(dim, n_train, n_classes, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_train, dim)).astype(np.float32), rng.integers(0, n_classes, n_train)


def fit_in_fresh_process(which, dim, n_train, n_classes, epochs, seed, threads, kept_heap):
    """(wall, CPU, page faults) per epoch of one fit in a new Python process (after one untimed
    epoch): the allocator starts from scratch, as in a probe job, whichever code ran before."""
    command = [sys.executable, __file__, "--child", which, "--dims", str(dim), "--n-train", str(n_train)]
    command += ["--classes", str(n_classes), "--epochs", str(epochs), "--threads", str(threads)]
    env = {**os.environ, **(KEPT_HEAP if kept_heap else {})}
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout
    return tuple(float(v) for v in out.split()[-3:])


def child(which, dim, n_train, n_classes, epochs, seed) -> None:
    cls = reference_probe_class() if which == "old" else LatentSubsetProbe
    X, y = speed_data(dim, n_train, n_classes, seed)
    timed_fit(cls, X, y, n_classes, 1, seed)
    print(*timed_fit(cls, X, y, n_classes, epochs, seed))


def bench_speed(old_cls, dim, n_train, n_classes, epochs, rounds, seed, threads, mode) -> np.ndarray:
    """Old and new alternate, `rounds` times: each round's ratio compares two runs adjacent in time,
    so a change of load on the shared machine between rounds cancels out; the median ratio is reported
    with its spread (quartiles, min, max). `mode`: see the module's docstring."""
    X, y = speed_data(dim, n_train, n_classes, seed)
    if mode == "same":
        for cls in (old_cls, LatentSubsetProbe):
            timed_fit(cls, X, y, n_classes, 1, seed)
    load = os.getloadavg()[0]
    times = {"old": [], "new": []}
    for _ in range(rounds):
        for name, cls in (("old", old_cls), ("new", LatentSubsetProbe)):
            if mode == "same":
                times[name].append(timed_fit(cls, X, y, n_classes, epochs, seed))
            else:
                run = (name, dim, n_train, n_classes, epochs, seed, threads, mode == "kept-heap")
                times[name].append(fit_in_fresh_process(*run))
    old, new = (np.array(times[k]) for k in ("old", "new"))  # [rounds, (wall, cpu, faults)] per epoch
    ratios = old[:, 1] / new[:, 1]
    q1, q3 = np.percentile(ratios, [25, 75])
    print(
        f"{mode}, {threads} thread(s): D={dim} N_train={n_train} C={n_classes}, {rounds} rounds x {epochs} "
        f"epochs, CPU s per epoch: old median {np.median(old[:, 1]):.3f} (min {old[:, 1].min():.3f}), "
        f"new median {np.median(new[:, 1]):.3f} (min {new[:, 1].min():.3f}); page faults per epoch: old "
        f"{np.median(old[:, 2]):.0f}, new {np.median(new[:, 2]):.0f}; speed-up per round "
        f"{' '.join(f'{r:.1f}' for r in ratios)} -> median {np.median(ratios):.2f}x CPU "
        f"(quartiles {q1:.2f}-{q3:.2f}, min {ratios.min():.2f}, max {ratios.max():.2f}), "
        f"{np.median(old[:, 0] / new[:, 0]):.2f}x wall; load average {load:.1f} -> {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return ratios


def planted(seed, n, dim, n_classes, informative=20):
    """Gaussian features; `informative` neurons carry class means scaled 1, 0.9, 0.81, ... (graded)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    means = np.random.default_rng(12345).normal(size=(n_classes, informative))
    strength = 0.9 ** np.arange(informative)
    X[:, :informative] += (means[y] * strength).astype(np.float32)
    return X, y


def selection(cls, seed, data, n_classes, k, patience):
    (train_X, train_y), (dev_X, dev_y) = data
    probe = cls(max_epochs=500, patience=patience, seed=seed, progress=False).fit(train_X, train_y, n_classes)
    picks = greedy_select(probe.weight_, probe.bias_, dev_X, dev_y, k, progress=False)
    return picks.selected, picks.dev_score[-1], probe.epochs_


def check_selections(old_cls, seeds, dim, n_train, n_classes, k, patience) -> bool:
    data = (planted(100, n_train, dim, n_classes), planted(101, n_train // 4, dim, n_classes))
    runs = {"old": [], "new": []}
    for seed in seeds:
        for name, cls in (("old", old_cls), ("new", LatentSubsetProbe)):
            runs[name].append(selection(cls, seed, data, n_classes, k, patience))
            selected, mi, epochs = runs[name][-1]
            print(
                f"  seed {seed} {name}: {epochs} epochs, dev MI {mi:.4f}, top-{k} {sorted(selected)}",
                flush=True,
            )

    def overlap(a, b):
        return len(set(a) & set(b)) / k

    cross = np.mean([overlap(o[0], n[0]) for o, n in zip(runs["old"], runs["new"])])
    within = {
        name: np.mean([overlap(a[0], b[0]) for a, b in itertools.combinations(runs[name], 2)])
        for name in runs
    }
    mi = {name: np.array([r[1] for r in runs[name]]) for name in runs}
    spread = np.sqrt((mi["old"].var(ddof=1) + mi["new"].var(ddof=1)) / len(seeds))
    same_overlap = cross >= within["old"] - 0.1
    same_mi = abs(mi["old"].mean() - mi["new"].mean()) < 2 * spread + 0.01
    print(
        f"selections D={dim} N_train={n_train} C={n_classes} k={k}, {len(seeds)} seeds: "
        f"overlap old-vs-new (same seed) {cross:.2f}, old-vs-old (two seeds) {within['old']:.2f}, "
        f"new-vs-new {within['new']:.2f}; dev MI old {mi['old'].mean():.4f}, new {mi['new'].mean():.4f} "
        f"(2 SE {2 * spread:.4f}) -> {'statistically equivalent' if same_overlap and same_mi else 'DIFFERENT'}",
        flush=True,
    )
    return same_overlap and same_mi


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3], help="none skips the check")
    parser.add_argument("--select-dim", type=int, default=256)
    parser.add_argument("--select-train", type=int, default=3000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="timed once per count")
    parser.add_argument(
        "--mode",
        choices=[*MODES, "all"],
        default="all",
        help="fresh processes as jobs run them, fresh processes keeping freed memory, one process (see above)",
    )
    parser.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    torch.set_num_threads(args.threads[0])
    if args.child:
        child(args.child, args.dims[0], args.n_train, args.classes, args.epochs, seed=0)
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    old_cls = reference_probe_class()
    modes = MODES if args.mode == "all" else [args.mode]
    for mode, threads, dim in itertools.product(modes, args.threads, args.dims):
        torch.set_num_threads(threads)
        bench_speed(old_cls, dim, args.n_train, args.classes, args.epochs, args.rounds, 0, threads, mode)
    torch.set_num_threads(args.threads[0])
    if args.seeds:
        check_selections(
            old_cls, args.seeds, args.select_dim, args.select_train, args.classes, args.k, args.patience
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
