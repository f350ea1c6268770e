"""The checksum of xlprobe.integrity against the usual alternatives, on one large file.

    python benchmarks/bench_checksum.py --size-mb 1024 --out docs/checksum_speed.tsv

Writes a file of random float16 values (an activation dump's content), then for each algorithm reads
it `--repeats` times and keeps the fastest pass (the file is in the page cache after the first; a
cold read is bounded by the disk). Prints and writes: algorithm, MB/s, seconds for the file, and
xlprobe.integrity.file_record's own rate (chunked reading included). docs/faults.md quotes the TSV.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import xxhash

from xlprobe.integrity import file_record

CHUNK = 8 << 20


def digest_file(path: Path, make) -> str:
    digest = make()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


ALGORITHMS = {
    "xxh3_128": xxhash.xxh3_128,
    "blake2b": hashlib.blake2b,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
}


def fastest(func, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the test file goes (default: the temp dir)")
    parser.add_argument("--out", default=None, help="TSV of the results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp, "layer.npy")
        rng = np.random.default_rng(0)
        rows = args.size_mb * (1 << 20) // (2 * 1024)
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, 1024))
        for start in range(0, rows, 32768):  # 64 MB at a time
            block = array[start:start + 32768]
            block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        array.flush()
        del array
        size = os.path.getsize(path)
        lines = ["algorithm\tMB_per_s\tseconds\tsize_bytes"]
        for name, make in ALGORITHMS.items():
            seconds = fastest(lambda make=make: digest_file(path, make), args.repeats)
            lines.append(f"{name}\t{size / seconds / 1e6:.0f}\t{seconds:.3f}\t{size}")
        seconds = fastest(lambda: file_record(path), args.repeats)
        lines.append(f"file_record\t{size / seconds / 1e6:.0f}\t{seconds:.3f}\t{size}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
